"""TensorFlow ports of the Cluttered MNIST, VAE and CIFAR-10 experiments: tiny end-to-end runs and resume."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from idrop import cli

pytest.importorskip("tensorflow")
pytest.importorskip("keras")


def parse(module: ModuleType, argv: list[str]) -> argparse.Namespace:
    """The arguments exactly as ``idrop reproduce <experiment> --backend tensorflow`` parses them."""
    name = module.__name__.rsplit(".", 1)[-1]
    return cli.build_parser().parse_args(["reproduce", name, "--backend", "tensorflow", *argv])


def test_vae_tiny_end_to_end(tmp_path: Path) -> None:
    from idrop.experiments import vae

    rng = np.random.default_rng(0)
    x = rng.random((64, 784)).astype(np.float32)
    y = rng.integers(0, 10, 64)
    splits = (x[:48], y[:48], x[48:], y[48:], "synthetic")
    args = parse(
        vae,
        ["--out", str(tmp_path), "--epochs", "1", "--no-progress", "--k", "1", "--scale", "32", "--batch-size", "16"],
    )
    assert vae.run(args, splits=splits) == 0
    root = tmp_path / "vae" / "tensorflow"
    assert (root / "table.md").exists()
    summary = json.loads((root / "results.json").read_text())["summary"]
    assert {s["latent"] for s in summary} == {"gaussian", "information"}
    for s in summary:
        # An ELBO is a log-likelihood bound of binary images: finite and below 0.
        assert math.isfinite(s["test_elbo"]) and s["test_elbo"] < 0


def test_vae_checkpoint_round_trip(tmp_path: Path) -> None:
    """save_state / load_state restore weights, optimizer, noise seeds and the batch order."""
    from idrop.experiments import RunKey
    from idrop.experiments.vae.tensorflow import VaeRun

    rng = np.random.default_rng(0)
    data = {
        "x_train": (rng.random((32, 784)) > 0.5).astype(np.float32),
        "x_test": (rng.random((16, 784)) > 0.5).astype(np.float32),
    }
    cfg = {"device": "cpu", "scale": 32.0, "max_alpha": 1.0, "lr": 1e-3, "batch_size": 16, "eval_samples": 1}
    key = RunKey("information", 1.0, 0)
    a = VaeRun(key, cfg, data)
    a.train_epoch(1)
    a.save_state(tmp_path / "ckpt")
    b = VaeRun(key, cfg, data)
    b.load_state(tmp_path / "ckpt")
    assert a.train_epoch(2) == pytest.approx(b.train_epoch(2), rel=1e-5)


def test_cifar10_tiny_end_to_end(tmp_path: Path, write_tiny_cifar) -> None:
    from idrop.experiments import cifar10

    write_tiny_cifar(tmp_path / "data")
    args = parse(
        cifar10,
        [
            "--data-dir",
            str(tmp_path / "data"),
            "--out",
            str(tmp_path / "out"),
            "--epochs",
            "1",
            "--no-progress",
            "--filter-percentage",
            "0.05",
            "--batch-size",
            "8",
            # 40 images make beta * KL / n_train ~1000x the paper's; at the default lr 0.05 the
            # loss was NaN by the end of epoch 1, which the runner now stops (RunDiverged).
            "--lr",
            "0.01",
            "--methods",
            "information",
            "binary",
        ],
    )
    assert cifar10.run(args) == 0
    root = tmp_path / "out" / "cifar10" / "tensorflow"
    assert (root / "table.md").exists()
    runs = json.loads((root / "results.json").read_text())["runs"]
    assert {r["method"] for r in runs} == {"information", "binary"}
    assert all(math.isfinite(r["test_error"]) and 0 <= r["test_error"] <= 1 for r in runs)


def test_batch_norm_refresh_matches_batch_statistics() -> None:
    """The dry run leaves the average over batches of the noiseless batch mean and unbiased variance."""
    import keras

    from idrop.backends.tensorflow import InfoDropout
    from idrop.experiments._tensorflow_common import BatchNorm, refresh_batch_norm

    bn = BatchNorm()
    conv = keras.layers.Conv2D(3, 3, padding="same", use_bias=False)
    model = keras.Sequential([keras.Input((6, 6, 2)), InfoDropout(conv, activation="softplus", norm=bn, seed=0)])
    x = np.random.default_rng(0).normal(size=(8, 6, 6, 2)).astype(np.float32)
    refresh_batch_norm(model, x, 4)
    h = np.asarray(conv(x)).reshape(2, -1, 3)
    np.testing.assert_allclose(np.asarray(bn.moving_mean), h.mean(1).mean(0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(bn.moving_variance), h.var(1, ddof=1).mean(0), rtol=1e-4, atol=1e-5)


def test_all_cnn_32_is_the_official_network() -> None:
    """Shift-only batch norm with eps 1e-3 (cifar.py:79), alpha convs with a bias (:90-91), a final linear (:152)."""
    import keras

    from idrop.backends.tensorflow import InfoDropout
    from idrop.experiments.nets.tensorflow import AllCNN32

    net = AllCNN32("information", widths=(4, 8))
    assert tuple(net(np.zeros((2, 8, 8, 3), np.float32), training=False).shape) == (2, 10)
    layers = list(net._flatten_layers(include_self=False, recursive=True))
    norms = [m for m in layers if isinstance(m, keras.layers.BatchNormalization)]
    assert len(norms) == 9 and all(m.epsilon == 1e-3 and m.gamma is None for m in norms)
    drops = [m for m in layers if isinstance(m, InfoDropout)]
    assert len(drops) == 2 and all(d.alpha_layer.use_bias for d in drops)
    assert isinstance(net.logits, keras.layers.Dense)


def test_stride2_conv_pads_as_torch_and_jax() -> None:
    """A stride-2 3x3 conv pads 1 on every side (torch's ``padding=1``, the JAX nets'), not Keras' 'same'.

    Keras' 'same' pads an even input 0 before and 1 after, so the grid would be shifted by one pixel
    against the other backends' and the Cluttered MNIST heat maps would not share a grid.
    """
    import keras

    from idrop.experiments._tensorflow_common import Conv2D

    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 6, 6, 3)).astype(np.float32)
    conv = Conv2D(4, 3, strides=2, use_bias=False)
    y = np.asarray(conv(x))
    w = np.asarray(conv.kernel)  # [kh, kw, c_in, c_out]
    padded = np.pad(x, [(0, 0), (1, 1), (1, 1), (0, 0)])
    ref = np.zeros((2, 3, 3, 4))
    for i in range(3):
        for j in range(3):
            ref[:, i, j] = np.einsum("nhwc,hwco->no", padded[:, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3], w)
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)
    assert conv.compute_output_shape((2, 6, 6, 3)) == (2, 3, 3, 4)
    same = keras.layers.Conv2D(4, 3, strides=2, padding="same", use_bias=False)
    same.build(x.shape)
    same.kernel.assign(w)
    assert not np.allclose(np.asarray(same(x)), y, atol=1e-3)  # the shift this layer removes


def test_cnn_ports_use_the_symmetric_conv() -> None:
    """Every conv of the Cluttered MNIST and All-CNN-32 TensorFlow nets, alpha convs included, is that conv."""
    import keras

    from idrop.experiments._tensorflow_common import Conv2D
    from idrop.experiments.cluttered import _config
    from idrop.experiments.cluttered.tensorflow import build_model
    from idrop.experiments.nets.tensorflow import AllCNN32

    cfg = {**_config.QUICK.__dict__, "device": "cpu", "widths": (2, 2, 2, 2), "top_width": 2, "canvas": 48}
    cnn = AllCNN32("information", widths=(2, 4))
    cnn(np.zeros((1, 32, 32, 3), np.float32), training=False)
    for model in (build_model(cfg, 0), cnn):
        convs = [
            m for m in model._flatten_layers(include_self=False, recursive=True) if isinstance(m, keras.layers.Conv2D)
        ]
        assert convs and all(type(m) is Conv2D for m in convs), {type(m).__name__ for m in convs}


def test_mlp_and_vae_are_the_keras_nets_and_take_alpha_rank() -> None:
    """One definition of the MLP and the VAE serves both Keras adapters; ``--alpha-rank`` reaches the MLP."""
    from types import SimpleNamespace

    from idrop.experiments.nets import keras as keras_nets
    from idrop.experiments.nets import tensorflow as tf_nets

    assert tf_nets.build_mlp is keras_nets.build_mlp and tf_nets.VAE is keras_nets.VAE
    cfg = SimpleNamespace(beta=1.0, n_train=10, max_alpha=0.7, dropout_rate=0.5, alpha_rank=4)
    net = tf_nets.build_mlp("information", 16, cfg, 0)
    assert net(np.zeros((2, 784), np.float32)).shape == (2, 10)
    assert [tuple(m.alpha_layer.down.kernel.shape) for m in net.layers[:3]] == [(784, 4), (16, 4), (16, 4)]
