"""Keras export: the evaluation and sampling graphs as a SavedModel and as ONNX (onnxruntime) give
the model's own outputs to float32 rounding."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
import keras  # noqa: E402

from idrop.backends.tensorflow import InfoDropout, export, info_dropout, noise_shapes  # noqa: E402


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    layers = keras.layers
    net = keras.Sequential([
        keras.Input((8, 8, 1)),
        InfoDropout(layers.Conv2D(4, 3), norm=layers.BatchNormalization(), seed=1),
        layers.Flatten(),
        InfoDropout(layers.Dense(8), activation="softplus", seed=2),
        layers.Dense(3),
    ])  # fmt: skip
    norm = net.layers[0].norm
    norm.moving_mean.assign(np.full(4, 0.3, "float32"))  # running statistics that differ from a batch's own
    return net


def _own(net, x, eps):
    """The sampling graph by hand: the layers with their noise, the batch norm on its running statistics."""
    h, a = net.layers[0]._maps(x)  # the norm called without `training`: evaluation
    z, _ = info_dropout(keras.ops.relu(h), a, noise=eps[0], training=True)
    return net.layers[3](net.layers[2](net.layers[1](z), training=True, noise=eps[1]))


@pytest.mark.parametrize("fmt", ["tf_saved_model", "onnx"])
def test_both_graphs_match_the_model(model, tmp_path, fmt):
    x = np.random.default_rng(0).standard_normal((2, 8, 8, 1)).astype("float32")
    shapes = noise_shapes(model, x)
    assert shapes == [(2, 6, 6, 4), (2, 8)]
    eps = [np.random.default_rng(i).standard_normal(s).astype("float32") for i, s in enumerate(shapes)]
    want_eval, want_sampling = np.asarray(model(x, training=False)), np.asarray(_own(model, x, eps))
    assert not np.allclose(want_eval, want_sampling)
    for sampling, want in ((False, want_eval), (True, want_sampling)):
        path = tmp_path / (f"graph_{sampling}" + (".onnx" if fmt == "onnx" else ""))
        export(model, path, x, sampling=sampling, format=fmt)
        inputs = [x, *eps] if sampling else [x]
        if fmt == "onnx":
            ort = pytest.importorskip("onnxruntime")
            session = ort.InferenceSession(str(path))
            got = session.run(None, {i.name: v for i, v in zip(session.get_inputs(), inputs)})[0]
        else:
            loaded = tf.saved_model.load(str(path))
            got = loaded.serve(inputs if sampling else x).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert model.layers[0].kl is None or not tf.is_symbolic_tensor(model.layers[0].kl)  # no leaked trace


@pytest.mark.parametrize("fmt", ["tf_saved_model", "onnx"])
def test_dynamic_batch(model, tmp_path, fmt):
    """Exported at batch 2, called at batch 5: the sampling graph still gives the model's own outputs."""
    rng = np.random.default_rng(3)
    path = tmp_path / ("dyn.onnx" if fmt == "onnx" else "dyn")
    export(
        model, path, rng.standard_normal((2, 8, 8, 1)).astype("float32"), sampling=True, format=fmt, dynamic_batch=True
    )
    x = rng.standard_normal((5, 8, 8, 1)).astype("float32")
    eps = [rng.standard_normal(s).astype("float32") for s in noise_shapes(model, x)]
    want = np.asarray(_own(model, x, eps))
    if fmt == "onnx":
        ort = pytest.importorskip("onnxruntime")
        session = ort.InferenceSession(str(path))
        got = session.run(None, {i.name: v for i, v in zip(session.get_inputs(), [x, *eps])})[0]
    else:
        loaded = tf.saved_model.load(str(path))
        got = loaded.serve([x, *eps]).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_export_leaves_the_kl_records_of_a_step(model, tmp_path):
    from idrop.backends.tensorflow import kl_loss

    x = np.random.default_rng(0).standard_normal((2, 8, 8, 1)).astype("float32")
    with tf.GradientTape():
        model(x, training=True)  # a training step's forward: its KL records wait for kl_loss
        before, metric = model.layers[0].kl, float(model.layers[0].kl_metric.result())
        export(model, tmp_path / "s", x, sampling=True)
        assert model.layers[0].kl is before and float(model.layers[0].kl_metric.result()) == metric
        assert float(kl_loss(model, 10)) > 0


def test_the_evaluation_graph_of_an_eval_kl_layer_holds_no_kl(tmp_path):
    """A layer built with eval_kl=True is exported with it off: the served graph assigns no variable (its KL
    metric's update was traced into it), export warns of nothing, and the flag is put back."""
    keras.utils.set_random_seed(0)
    net = keras.Sequential([keras.Input((4,)), InfoDropout(keras.layers.Dense(3), eval_kl=True, seed=1)])
    x = np.random.default_rng(0).standard_normal((2, 4)).astype("float32")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        export(net, tmp_path / "e", x, format="tf_saved_model")
    assert [str(w.message) for w in caught if not issubclass(w.category, DeprecationWarning)] == []
    assert net.layers[0].eval_kl is True
    loaded = tf.saved_model.load(str(tmp_path / "e"))
    library = loaded.signatures["serving_default"].graph.as_graph_def().library.function
    assert not {node.op for f in library for node in f.node_def if "Assign" in node.op}
    np.testing.assert_allclose(loaded.serve(x).numpy(), np.asarray(net(x, training=False)), rtol=1e-6, atol=1e-6)
