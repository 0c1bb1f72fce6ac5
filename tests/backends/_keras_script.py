"""Keras conventions of ``idrop.backends.keras`` on one Keras backend (run by test_keras_backends.py).

``python _keras_script.py OUT [--load-only] [LOAD_DIR ...]`` under ``KERAS_BACKEND``: checks config, fit (KL in the
history, add_loss), jit_compile, mixed precision, ``.keras`` save/load with the prior's ``mu``/``sigma``,
and on JAX ``keras.distribution`` data parallelism; saves ``OUT/<backend>.keras`` and its outputs
(evaluation, and training with injected noise) in ``OUT/<backend>.npz``; then loads every
``LOAD_DIR/<other>.keras`` and checks it gives the outputs saved beside it. Prints ``OK <backend>``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import keras
import numpy as np
from keras import ops

from idrop.backends.keras import InfoDropout

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
