"""KL bookkeeping of the Keras layers (docs/design-notes.md section 3): records, collection, scopes."""

import copy
import pickle

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from idrop.backends.tensorflow import InfoDropout, ib_loss, kl_loss  # noqa: E402
from idrop.core import spec  # noqa: E402

L = keras.layers
N = 100


def _x(*shape, seed=0):
    return tf.constant(np.random.default_rng(seed).standard_normal(shape).astype("float32"))


def _records(layer):
    return len(layer._kl_records.kls)


def test_a_layer_called_twice_counts_twice_eagerly_and_traced():
    layer = InfoDropout(L.Dense(4), seed=0)
    x1, x2 = _x(3, 5), _x(6, 5, seed=1)

    def forward():
        with tf.GradientTape():
            layer(x1, training=True)
            kl1 = layer.kl
            layer(x2, training=True)
            kl2 = layer.kl
        return kl_loss(layer, N), (tf.reduce_mean(kl1) + tf.reduce_mean(kl2)) / N, kl_loss(layer, N)

    for fn in (forward, tf.function(forward)):
        total, want, again = fn()
        np.testing.assert_allclose(total, want, rtol=1e-6)
        assert float(want) > 0 and float(again) == 0.0  # collected: a second kl_loss gives 0


def test_a_layer_not_called_since_the_last_collection_contributes_nothing():
    first, second = InfoDropout(L.Dense(4), seed=0), InfoDropout(L.Dense(4), seed=1)
    model = keras.Sequential([first, second])
    with tf.GradientTape():
        model(_x(3, 5), training=True)
    kl_loss(model, N)
    with tf.GradientTape():
        first(_x(3, 5), training=True)  # the second layer is skipped this time
    np.testing.assert_allclose(kl_loss(model, N), tf.reduce_mean(first.kl) / N, rtol=1e-6)
    second(_x(3, 4), training=False)  # an evaluation call without eval_kl records nothing
    assert second.kl is None and float(kl_loss(model, N)) == 0.0


def test_ib_loss_collects_too():
    layer = InfoDropout(L.Dense(4), seed=0)
    with tf.GradientTape():
        layer(_x(3, 5), training=True)
    want = 2.0 + 0.5 * float(tf.reduce_mean(layer.kl)) / N
    np.testing.assert_allclose(ib_loss(2.0, layer, beta=0.5, n_train=N), want, rtol=1e-6)
    assert float(ib_loss(2.0, layer, beta=0.5, n_train=N)) == 2.0


def test_an_empty_batch_contributes_zero():
    layer = InfoDropout(L.Dense(4), seed=0)
    with tf.GradientTape():
        layer(tf.zeros((0, 5)), training=True)
    assert layer.kl.shape == (0,) and float(kl_loss(layer, N)) == 0.0

    @tf.function(input_signature=[tf.TensorSpec((None, 5), tf.float32)])  # batch size unknown while traced
    def step(x):
        with tf.GradientTape():
            layer(x, training=True)
        return kl_loss(layer, N)

    assert float(step(tf.zeros((0, 5)))) == 0.0 and np.isfinite(step(tf.zeros((0, 5)))).all()
    assert float(step(_x(3, 5))) > 0


def test_an_unbatched_input_is_one_sample():
    layer = InfoDropout(L.Dense(4), seed=0, eval_kl=True)
    for training in (True, False):
        with tf.GradientTape():
            z = layer(_x(5), training=training)
        assert z.shape == (4,) and layer.kl.shape == ()
        np.testing.assert_allclose(kl_loss(layer, N), layer.kl / N, rtol=1e-6)


def test_records_do_not_grow_without_a_tape_or_in_evaluation():
    layer = InfoDropout(L.Dense(4), seed=0, eval_kl=True)
    for _ in range(5):
        layer(_x(3, 5), training=False)  # an evaluation loop that never collects
    assert _records(layer) == 1
    for _ in range(5):
        layer(_x(3, 5), training=True)  # eager, no tape: nothing can differentiate it (MC sampling)
    assert _records(layer) == 1
    with tf.GradientTape():
        for _ in range(3):
            layer(_x(3, 5), training=True)
    assert _records(layer) == 3  # the sampling call's record is not one of them


def test_an_evaluation_record_does_not_join_the_next_training_sum():
    layer = InfoDropout(L.Dense(4), seed=0, eval_kl=True)
    layer(_x(7, 5, seed=1), training=False)  # validation, between two steps
    np.testing.assert_allclose(kl_loss(layer, N), tf.reduce_mean(layer.kl) / N, rtol=1e-6)  # still readable
    layer(_x(7, 5, seed=1), training=False)
    with tf.GradientTape():
        layer(_x(3, 5), training=True)
    np.testing.assert_allclose(kl_loss(layer, N), tf.reduce_mean(layer.kl) / N, rtol=1e-6)


def test_copies_start_with_no_records():
    layer = InfoDropout(L.Dense(4), seed=0)
    with tf.GradientTape():
        layer(_x(3, 5), training=True)
    for twin in (copy.deepcopy(layer), pickle.loads(pickle.dumps(layer))):
        assert twin.kl is None and _records(twin) == 0 and float(kl_loss(twin, N)) == 0.0
    assert _records(layer) == 1 and layer.kl is not None


def test_building_a_functional_model_records_nothing():
    inputs = keras.Input((5,))
    model = keras.Model(inputs, InfoDropout(L.Dense(4), seed=0, eval_kl=True)(inputs))
    assert float(kl_loss(model, N)) == 0.0 and model.layers[-1].kl is None


def test_a_traced_record_is_collected_in_its_trace_only():
    layer = InfoDropout(L.Dense(4), seed=0)

    @tf.function
    def forward(x):
        with tf.GradientTape():
            return layer(x, training=True)

    forward(_x(3, 5))
    with pytest.raises(RuntimeError) as info:
        kl_loss(layer, N)
    assert str(info.value) == str(spec.kl_outside_its_trace("a traced function (a tf.function or a model.fit step)"))
    with tf.GradientTape():
        layer(_x(3, 5), training=True)  # an eager call starts the records afresh
    assert float(kl_loss(layer, N)) > 0


def test_add_loss_keeps_keras_scope_and_fit_trains():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((5,))
    h = InfoDropout(L.Dense(8), beta=1.0, n_train=N, seed=0, name="id")(inputs)
    model = keras.Model(inputs, L.Dense(2)(h))
    x = _x(16, 5)
    model(x, training=True)
    model(x, training=True)
    assert len(model.losses) == 1  # Keras clears its losses at each outermost call
    np.testing.assert_allclose(model.losses[0], tf.reduce_mean(model.get_layer("id").kl) / N, rtol=1e-6)
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(x, np.arange(16) % 2, epochs=2, batch_size=8, verbose=0).history
    assert np.isfinite(history["loss"]).all() and history["id_kl"][-1] > 0


def test_global_ib_loss_collects_the_records():
    from idrop.distributed.tensorflow import global_ib_loss

    layer = InfoDropout(L.Dense(4), seed=0)
    task = tf.constant([1.0, 2.0, 3.0])
    with tf.GradientTape():
        layer(_x(3, 5), training=True)
        layer(_x(3, 5, seed=1), training=True)
        second = layer.kl
    want = (6.0 + 0.5 * float(tf.reduce_sum(layer._kl_records.kls[0]) + tf.reduce_sum(second)) / N) / 3
    np.testing.assert_allclose(global_ib_loss(task, layer, 0.5, N, 3), want, rtol=1e-6)
    assert float(global_ib_loss(task, layer, 0.5, N, 3)) == 2.0  # collected: the task loss alone
