"""JAX / Flax NNX ports of the Cluttered MNIST, VAE and CIFAR-10 experiments: tiny end-to-end runs."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from idrop import cli

pytest.importorskip("jax")
pytest.importorskip("flax")


def parse(module: ModuleType, argv: list[str]) -> argparse.Namespace:
    """The arguments exactly as ``idrop reproduce <experiment> --backend jax`` parses them."""
    name = module.__name__.rsplit(".", 1)[-1]
    return cli.build_parser().parse_args(["reproduce", name, "--backend", "jax", *argv])


def test_vae_tiny_end_to_end_and_checkpoint(tmp_path: Path) -> None:
    from idrop.experiments import vae
    from idrop.experiments._run_state import RunKey
    from idrop.experiments.vae import jax as _vae_jax

    rng = np.random.default_rng(0)
    x = rng.random((64, 784)).astype(np.float32)
    y = rng.integers(0, 10, 64)
    splits = (x[:48], y[:48], x[48:], y[48:], "synthetic")
    args = parse(
        vae,
        ["--out", str(tmp_path), "--epochs", "1", "--no-progress", "--k", "1", "--scale", "32", "--batch-size", "16"],
    )
    assert vae.run(args, splits=splits) == 0
    root = tmp_path / "vae" / "jax"
    assert (root / "table.md").exists()
    summary = json.loads((root / "results.json").read_text())["summary"]
    assert {s["latent"] for s in summary} == {"gaussian", "information"}
    for s in summary:
        assert math.isfinite(s["test_elbo"]) and s["test_elbo"] < 0

    # save_state / load_state: a fresh run restored from a checkpoint continues identically.
    cfg = vae.config_of(args)
    data = vae.make_data(splits)
    a = _vae_jax.VaeRun(RunKey("information", 1.0, 0), cfg, data)
    a.train_epoch(1)
    a.save_state(tmp_path / "ckpt")
    b = _vae_jax.VaeRun(RunKey("information", 1.0, 0), cfg, data)
    b.load_state(tmp_path / "ckpt")
    assert a.train_epoch(2) == b.train_epoch(2)


def test_cifar10_tiny_end_to_end(tmp_path: Path, write_tiny_cifar) -> None:
    from idrop.experiments import cifar10

    write_tiny_cifar(tmp_path / "data", per_batch=4)
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
            "20",
            "--methods",
            "information",
            "binary",
        ],
    )
    assert cifar10.run(args) == 0
    root = tmp_path / "out" / "cifar10" / "jax"
    assert (root / "table.md").exists()
    runs = json.loads((root / "results.json").read_text())["runs"]
    assert {r["method"] for r in runs} == {"information", "binary"}
    for r in runs:
        assert 0 <= r["test_error"] <= 1
    rows = [json.loads(line) for line in (root / "metrics.jsonl").read_text().splitlines()]
    assert all(math.isfinite(r["loss"]) and r["lr"] > 0 for r in rows)


def test_all_cnn_32_is_the_official_network() -> None:
    """Shift-only batch norm with eps 1e-3 (cifar.py:79), alpha convs with a bias (:90-91), a final linear (:152)."""
    from flax import nnx

    from idrop.backends.jax import InfoDropout
    from idrop.experiments.nets.jax import AllCNN32

    net = AllCNN32("information", widths=(4, 8), rngs=nnx.Rngs(0))
    norms = [m for _, m in nnx.iter_modules(net) if isinstance(m, nnx.BatchNorm)]
    assert len(norms) == 9 and all(m.epsilon == 1e-3 and m.scale is None for m in norms)
    drops = [m for _, m in nnx.iter_modules(net) if isinstance(m, InfoDropout)]
    assert len(drops) == 2 and all(d.alpha_layer.bias is not None for d in drops)
    assert net(np.zeros((2, 8, 8, 3), np.float32)).shape == (2, 10)
