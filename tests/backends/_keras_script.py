"""Keras conventions of ``idrop.backends.keras`` on one Keras backend (run by test_keras_backends.py).

``python _keras_script.py OUT [--load-only] [LOAD_DIR ...]`` under ``KERAS_BACKEND``: checks config, fit (KL in the
history, add_loss), jit_compile, mixed precision, ``.keras`` save/load with the prior's ``mu``/``sigma``,
the tools (mc_predict, sampling, kl_maps, alpha_stats, diagnostics, BetaScheduler per step, surgery, export
in the formats Keras writes on the backend and the error for the others), and on JAX ``keras.distribution``
data parallelism; saves ``OUT/<backend>.keras`` and its outputs (evaluation, and training with injected
noise) in ``OUT/<backend>.npz``; then loads every ``LOAD_DIR/<other>.keras`` and checks it gives the
outputs saved beside it. Prints ``OK <backend>``.
"""

from __future__ import annotations

import importlib.util
import sys
import warnings
from pathlib import Path

import keras
import numpy as np
from keras import ops

from idrop.backends.keras import (
    BetaScheduler,
    InfoDropout,
    alpha_stats,
    beta_schedule,
    diagnostics,
    export,
    kl_maps,
    mc_predict,
    noise_shapes,
    sampling,
    strip_info_dropout,
    to_info_dropout,
)
from idrop.core.diagnostics import IdropWarning

BACKEND = keras.backend.backend()
RNG = np.random.default_rng(0)
X = RNG.standard_normal((16, 6)).astype("float32")
Y = RNG.integers(0, 3, 16)
EPS = RNG.standard_normal((4, 8)).astype("float32")


def np_(t) -> np.ndarray:
    return np.asarray(ops.convert_to_numpy(t))


def build(**options) -> keras.Model:
    layer = InfoDropout(keras.layers.Dense(8), activation="softplus", seed=1, name="idrop", **options)
    return keras.Sequential([keras.Input((6,)), layer, keras.layers.Dense(3)])


def outputs(model: keras.Model) -> dict[str, np.ndarray]:
    idrop = model.get_layer("idrop")
    return {
        "eval": np_(model(X[:4], training=False)),
        "train": np_(idrop(X[:4], training=True, noise=EPS)),
        "kl": np_(idrop.kl),
    }


def check_fit_and_config() -> keras.Model:
    keras.utils.set_random_seed(0)
    model = build(beta=1.0, n_train=16)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=BACKEND != "torch")
    history = model.fit(X, Y, epochs=2, batch_size=8, verbose=0).history
    assert np.all(np.isfinite(history["loss"])), history
    if BACKEND != "jax":  # keras-team/keras#21639: JAX's trainer drops metrics updated in a layer
        assert len(history["idrop_kl"]) == 2 and min(history["idrop_kl"]) > 0, history
    model(X[:4], training=True)
    assert len(model.losses) == 1 and float(np_(model.losses[0])) > 0  # beta * mean(kl) / n_train
    layer = model.get_layer("idrop")
    clone = InfoDropout.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    return model


def check_mixed_precision() -> None:
    for policy in ("mixed_float16", "mixed_bfloat16"):
        keras.config.set_dtype_policy(policy)
        try:
            layer = InfoDropout(keras.layers.Dense(8), activation="softplus", seed=0)
            z = layer(X[:4], training=True)
            assert keras.backend.standardize_dtype(z.dtype) == policy.split("_")[1], (policy, z.dtype)
            assert keras.backend.standardize_dtype(layer.kl.dtype) == "float32", (policy, layer.kl.dtype)
            assert np.all(np.isfinite(np_(ops.cast(z, "float32")))) and np.all(np.isfinite(np_(layer.kl)))
        finally:
            keras.config.set_dtype_policy("float32")


def check_data_parallel() -> None:
    """Two CPU replicas (XLA_FLAGS), the batch sharded: fit runs, and the replicas' noise differs."""
    devices = keras.distribution.list_devices("cpu")
    assert len(devices) == 2, devices
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
    try:
        model = build()
        model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(X, Y, epochs=1, batch_size=8, verbose=0)
        same = np.repeat(X[:1], 8, axis=0)  # identical rows: any difference is the noise
        z = np_(model.get_layer("idrop")(same, training=True))
        assert not np.allclose(z[:4], z[4:]), "replicas drew the same noise"
    finally:
        keras.distribution.set_distribution(None)


def check_beta_schedule() -> None:
    """The KL term's beta at step t is ``beta_schedule(...)(t)`` inside the compiled step, resumed fits too.

    The weights are frozen (learning rate 0) and the task loss is 0, so each one-batch epoch's loss is
    ``beta_t * K`` with ``K`` the KL term at beta 1 (the KL depends on the weights and the input only)."""
    schedule = beta_schedule("linear", 1.0, warmup_steps=4)
    model = build(beta=1.0, n_train=16)
    zero = lambda y, p: ops.mean(p) * 0.0  # noqa: E731
    model.compile(keras.optimizers.SGD(0.0), zero, jit_compile=BACKEND != "torch")  # the compiled step
    model(X, training=True)
    k = float(np_(model.losses[0]))
    callback = BetaScheduler(schedule)
    for steps in (range(6), range(6, 8)):  # the second fit resumes from the optimizer's step
        history = model.fit(X, Y, epochs=len(steps), batch_size=16, verbose=0, callbacks=[callback]).history
        want = [schedule(t) * k for t in steps]
        np.testing.assert_allclose(history["loss"], want, rtol=1e-5, atol=1e-7)
        assert history["beta"] == [schedule(t + 1) for t in steps], history["beta"]
    assert "train_step" not in model.__dict__ and model.get_layer("idrop")._beta_schedule is None
    model(X, training=True)
    assert np.isclose(float(np_(model.losses[0])), k, rtol=1e-6)  # the layer's own beta after fit


def quiet_export(*args, **kwargs) -> keras.Model:
    """``export`` that must warn of nothing but the frameworks' own deprecations (torch.onnx's pytree one)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        graph = export(*args, **kwargs)
    noted = [f"{w.category.__name__}: {w.message}" for w in caught if not issubclass(w.category, DeprecationWarning)]
    assert [n for n in noted if not n.startswith("FutureWarning")] == [], noted
    return graph


def check_export(model: keras.Model, out: Path) -> None:
    """Both graphs in each format Keras writes on this backend give the model's outputs, without a warning, also
    with the layer built to compute its KL in evaluation (``eval_kl``, off while exported); others are refused."""
    idrop = model.get_layer("idrop")
    idrop.eval_kl = True
    x = X[:4]
    (shape,) = noise_shapes(model, x)
    eps = RNG.standard_normal(shape).astype("float32")
    want = {False: np_(model(x)), True: np_(model.layers[1](model.get_layer("idrop")(x, training=True, noise=eps)))}
    formats = {"tensorflow": ["tf_saved_model"], "jax": ["tf_saved_model", "onnx"], "torch": ["onnx"]}[BACKEND]
    # ONNX on TensorFlow (tf2onnx) is tests/backends/test_tensorflow_export.py's, and costs a conversion here
    for fmt in formats:
        for graph in (False, True):
            path = out / f"{BACKEND}_{graph}" if fmt == "tf_saved_model" else out / f"{BACKEND}_{graph}.onnx"
            if fmt == "onnx" and BACKEND == "jax" and importlib.util.find_spec("jax2onnx") is None:
                # jax2onnx is not in idrop's export extra (it pulls equinox, orbax, huggingface_hub)
                try:
                    export(model, path, x, sampling=graph, format=fmt)
                except ImportError as error:
                    assert "needs `jax2onnx`" in str(error) and "pip install jax2onnx" in str(error), error
                else:
                    raise AssertionError("ONNX on JAX without jax2onnx did not raise")
                continue
            quiet_export(model, path, x, sampling=graph, format=fmt)
            assert idrop.eval_kl is True  # put back
            inputs = [x, eps] if graph else [x]
            if fmt == "onnx":
                import onnxruntime

                session = onnxruntime.InferenceSession(str(path))
                got = session.run(None, {i.name: v for i, v in zip(session.get_inputs(), inputs)})[0]
            else:
                import tensorflow as tf

                loaded = tf.saved_model.load(str(path))  # kept alive: `serve` references its variables
                got = loaded.serve(inputs if graph else x).numpy()
            np.testing.assert_allclose(got, want[graph], rtol=1e-5, atol=1e-6, err_msg=f"{fmt} sampling={graph}")
    if BACKEND == "torch":  # a free batch axis: Keras writes it through torch.jit.trace
        import onnxruntime

        path = out / "torch_dynamic.onnx"
        quiet_export(model, path, x, sampling=True, format="onnx", dynamic_batch=True)
        session = onnxruntime.InferenceSession(str(path))
        got = session.run(None, {i.name: v for i, v in zip(session.get_inputs(), [x[:3], eps[:3]])})[0]
        np.testing.assert_allclose(got, want[True][:3], rtol=1e-5, atol=1e-6)
    idrop.eval_kl = False
    if BACKEND == "torch":
        try:
            export(model, out / "torch_saved_model", x, format="tf_saved_model")
        except ValueError as error:
            message = str(error)
            assert "`format`" in message and "'onnx'" in message and "torch backend" in message, message
            assert "torch_xla" in message, message
        else:
            raise AssertionError("a SavedModel on torch did not raise")


def check_tools(out: Path) -> None:
    """mc_predict, sampling, kl_maps, alpha_stats, diagnostics, BetaScheduler, surgery and export."""
    keras.utils.set_random_seed(0)
    model = build()
    model(X)
    x = X[:4]
    a, b = mc_predict(model, x, 6, chunk=4, seed=3), mc_predict(model, x, 6, chunk=2, seed=3)
    for field in ("mean", "std", "entropy", "mutual_information"):
        np.testing.assert_allclose(np_(getattr(a, field)), np_(getattr(b, field)), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(np_(mc_predict(model, x, 6, chunk=4, seed=3).mean), np_(a.mean))
    assert not np.allclose(np_(mc_predict(model, x, 6, chunk=4, seed=4).mean), np_(a.mean))
    assert np_(a.mean).shape == (4, 3) and np.all(np_(a.mutual_information) >= 0)
    with sampling(model):
        assert not np.allclose(np_(model(x)), np_(model(x)))
    np.testing.assert_array_equal(np_(model(x)), np_(model(x)))  # off again
    assert np_(kl_maps(model, x)["idrop"]).shape == (4, 8)
    stats = alpha_stats(model, x)["idrop"]
    assert 0 <= stats.pinned_low <= 1 and 0 <= stats.pinned_high <= 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IdropWarning)
        logs = diagnostics(model, x, task_loss=1.0, beta=1.0, n_train=16)
    assert np.isfinite(logs["idrop/kl"]) and logs["idrop/kl"] > 0, logs
    check_beta_schedule()
    plain = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3)])
    wrapped = to_info_dropout(plain)
    assert any(isinstance(layer, InfoDropout) for layer in wrapped.layers)
    np.testing.assert_allclose(np_(wrapped(X)), np_(plain(X)), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np_(strip_info_dropout(wrapped)(X)), np_(plain(X)), rtol=1e-6, atol=1e-6)
    check_export(model, out)


def main(out: Path, load_dirs: list[Path], checks: bool = True) -> None:
    if checks:
        save_and_check(out)
    load_others(load_dirs)
    print(f"OK {BACKEND}")


def save_and_check(out: Path) -> None:
    model = check_fit_and_config()
    idrop = model.get_layer("idrop")
    idrop.mu.assign(0.25)
    idrop.log_sigma.assign(-0.5)
    path = out / f"{BACKEND}.keras"
    model.save(path)
    mine = outputs(model)
    np.savez(out / f"{BACKEND}.npz", **mine)
    again = keras.saving.load_model(path)
    assert float(np_(again.get_layer("idrop").mu)) == 0.25
    assert np.isclose(float(np_(again.get_layer("idrop").sigma)), np.exp(-0.5), rtol=1e-6)
    for name, value in outputs(again).items():
        np.testing.assert_allclose(value, mine[name], rtol=1e-6, atol=1e-6, err_msg=name)
    check_mixed_precision()
    check_tools(out)
    if BACKEND == "jax":
        check_data_parallel()


def load_others(load_dirs: list[Path]) -> None:
    for folder in load_dirs:
        for saved in sorted(folder.glob("*.keras")):
            if saved.stem == BACKEND:
                continue
            theirs = np.load(saved.with_suffix(".npz"))
            loaded = keras.saving.load_model(saved)
            for name, value in outputs(loaded).items():
                # float32 rounding: each backend's own matmul and exp
                np.testing.assert_allclose(value, theirs[name], rtol=2e-5, atol=2e-6, err_msg=f"{saved.stem}: {name}")
            print(f"loaded {saved.stem} on {BACKEND}")


if __name__ == "__main__":
    load_only = "--load-only" in sys.argv
    args = [a for a in sys.argv[1:] if a != "--load-only"]
    main(Path(args[0]), [Path(p) for p in args[1:]], checks=not load_only)
