"""VAE experiment: one epoch on a tiny synthetic set, both latent types."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from idrop import cli


def parse(module: ModuleType, argv: list[str]) -> argparse.Namespace:
    """The arguments exactly as ``idrop reproduce <experiment> --backend torch`` parses them."""
    name = module.__name__.rsplit(".", 1)[-1]
    return cli.build_parser().parse_args(["reproduce", name, "--backend", "torch", *argv])


def test_tiny_end_to_end(tmp_path: Path) -> None:
    pytest.importorskip("torch")
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
    root = tmp_path / "vae" / "torch"
    assert (root / "table.md").exists()
    summary = json.loads((root / "results.json").read_text())["summary"]
    assert {s["latent"] for s in summary} == {"gaussian", "information"}
    for s in summary:
        # An ELBO is a log-likelihood bound of binary images: finite and below 0.
        assert math.isfinite(s["test_elbo"]) and s["test_elbo"] < 0
