"""CIFAR-10 experiment: one epoch end to end on a tiny folder in the real pickle format."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from pathlib import Path
from types import ModuleType

import pytest

from idrop import cli


def parse(module: ModuleType, argv: list[str]) -> argparse.Namespace:
    """The arguments exactly as ``idrop reproduce <experiment> --backend torch`` parses them."""
    name = module.__name__.rsplit(".", 1)[-1]
    return cli.build_parser().parse_args(["reproduce", name, "--backend", "torch", *argv])


def test_tiny_end_to_end(tmp_path: Path, write_tiny_cifar) -> None:
    pytest.importorskip("torch")
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
            "16",
            # 40 training images make beta * KL / n_train ~1000x the paper's: at the default
            # lr 0.05 the prior's scale collapses and the KL is inf by step 3, a divergence
            # the runner stops (RunDiverged); 0.01 trains.
            "--lr",
            "0.01",
            "--methods",
            "information",
            "binary",
        ],
    )
    assert cifar10.run(args) == 0
    root = tmp_path / "out" / "cifar10" / "torch"
    assert (root / "table.md").exists()
    runs = json.loads((root / "results.json").read_text())["runs"]
    assert {r["method"] for r in runs} == {"information", "binary"}
    assert all(math.isfinite(r["test_error"]) and 0 <= r["test_error"] <= 1 for r in runs)


def test_missing_cifar_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("torch")
    from idrop.data import cifar10 as data

    monkeypatch.setattr(data, "RESOURCE", dataclasses.replace(data.RESOURCE, urls=()))
    argv = ["reproduce", "cifar10", "--data-dir", str(tmp_path), "--out", str(tmp_path / "out"), "--no-progress"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("idrop: error: ") and "cifar-10-python.tar.gz" in err


def test_full_config_is_the_official_one() -> None:
    """Every value of the full setting against the official ucla-vision/information-dropout code."""
    from idrop.experiments import cifar10

    full = cifar10.FULL
    assert full.batch_size == 100  # cifar.py:17
    assert full.lr == 0.05  # cifar.py:18
    assert full.lr_drops == (80, 120, 160)  # cifar.py:19-21
    assert full.epochs == 200  # cifar.py:22
    assert full.dropout_rate == 0.5  # cifar.py:23 keep_prob = 0.5
    assert full.input_dropout == 0.2  # cifar.py:24 initial_keep_prob = 0.8
    assert full.optimizer == "nesterov-momentum-0.9"  # cifar.py:25 'momentum' -> task.py:122 (0.9, use_nesterov)
    assert full.methods[0] == "information"  # cifar.py:30
    assert full.activation == "relu"  # cifar.py:31 (log-uniform prior: cifar.py:34 lognorm_prior = False)
    assert full.beta == 3.0  # cifar.py:32
    assert full.max_alpha == 0.7  # cifar.py:33
    assert full.weight_decay == 1e-3  # cifar.py:35
    assert full.preprocessing == "per-image-zca"  # process_cifar.py:78-83, :100-106
    assert full.zca_regularizer == 1e-5  # process_cifar.py:43, :53
    assert full.flip is False  # no augmentation anywhere in cifar.py / task.py
    assert full.n_train is None and full.n_test is None  # process_cifar.py:96, :98: all 50,000 / 10,000
    cfg = full.as_dict()
    # x0.1 after each drop (task.py:17, :185-192): epoch 80 still at 0.05, epoch 81 at 0.005.
    assert [cifar10.lr_at(cfg, e) for e in (1, 80, 81, 120, 121, 160, 161, 200)] == pytest.approx(
        [0.05, 0.05, 0.005, 0.005, 0.0005, 0.0005, 0.00005, 0.00005]
    )


def test_official_network_pieces() -> None:
    """Batch norm without scale and eps 1e-3 (cifar.py:79, tf.contrib defaults), the alpha conv with a bias
    (cifar.py:90-91), BN + activation on conv10 and a final linear (cifar.py:142, :152), int() widths (:127)."""
    pytest.importorskip("torch")
    from torch import nn

    from idrop.backends.torch import InfoDropout
    from idrop.experiments.nets import all_cnn_widths
    from idrop.experiments.nets.torch import AllCNN32

    assert all_cnn_widths(0.25) == (24, 48) and all_cnn_widths(0.33) == (31, 63)
    net = AllCNN32("information", widths=(4, 8))
    norms = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(norms) == 9 and all(m.eps == 1e-3 and not m.weight.requires_grad for m in norms)
    drops = [m for m in net.modules() if isinstance(m, InfoDropout)]
    assert len(drops) == 2 and all(d.alpha_layer.bias is not None for d in drops)
    head = net.features[-1]
    assert isinstance(head[1], nn.BatchNorm2d) and isinstance(head[2], nn.ReLU)
    assert isinstance(net.logits, nn.Linear) and net.logits.in_features == 10


def test_preprocessing_is_process_cifar(tmp_path: Path, write_tiny_cifar) -> None:
    """Per-image normalisation then ZCA with 1/(S + 1e-5), against an SVD re-derivation of process_cifar.py."""
    import numpy as np

    from idrop.data import load_cifar10
    from idrop.experiments import cifar10

    write_tiny_cifar(tmp_path / "data", per_batch=8)
    data, _ = cifar10.make_data(cifar10.FULL, tmp_path / "data")
    x_train = load_cifar10(tmp_path / "data", dtype="float32").x_train.astype(np.float64)
    # process_cifar.py:78-83: each image minus its mean, over its ddof=1 std.
    x = x_train - x_train.mean(axis=(1, 2, 3), keepdims=True)
    x /= np.sqrt(x.var(axis=(1, 2, 3), ddof=1, keepdims=True))
    # process_cifar.py:19-40, :50-68: D is features x samples; U, S from svd(D_centred / sqrt(n - 1)).
    d = x.reshape(len(x), -1).T
    m = d.mean(axis=1, keepdims=True)
    u, s, _ = np.linalg.svd((d - m) / np.sqrt(d.shape[1] - 1), full_matrices=False)
    expected = ((u * (1.0 / (s + 1e-5))) @ u.T @ (d - m)).T.reshape(x.shape)
    np.testing.assert_allclose(data["x_train"], expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    assert data["x_train"].dtype == np.float32 and data["x_test"].shape == (8, 32, 32, 3)


def test_flips_are_opt_in() -> None:
    from idrop.experiments import cifar10

    assert cifar10.config_of(parse(cifar10, [])).flip is False
    assert cifar10.config_of(parse(cifar10, ["--flip"])).flip is True
    quick = cifar10.config_of(parse(cifar10, ["--quick", "--batch-size", "7"]))
    assert quick.batch_size == 7 and quick.filter_percentages == (0.25,) and quick.epochs == 2


def test_fit_zca_regularisers() -> None:
    """``add_to="std"`` is process_cifar.py's 1/(sqrt(lambda) + eps); the default keeps 1/sqrt(lambda + eps)."""
    import numpy as np

    from idrop.data import fit_zca

    x = np.random.default_rng(0).normal(size=(50, 4)) * np.array([1.0, 2.0, 3.0, 4.0])
    for add_to, scale in (("std", lambda v: np.sqrt(v) + 0.1), ("variance", lambda v: np.sqrt(v + 0.1))):
        _, matrix = fit_zca(x, epsilon=0.1, add_to=add_to)
        eigval, eigvec = np.linalg.eigh(np.cov(x, rowvar=False))
        np.testing.assert_allclose(matrix, (eigvec / scale(eigval)) @ eigvec.T, atol=1e-12)
    with pytest.raises(ValueError, match="add_to"):
        fit_zca(x, add_to="eigenvalue")
