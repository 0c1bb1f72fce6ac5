"""Cluttered MNIST experiment: the KL-share maths, and a tiny end-to-end run."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from idrop import cli
from idrop.experiments._common import box_on_grid, kl_share_in_box


def parse(module: ModuleType, argv: list[str]) -> argparse.Namespace:
    """The arguments exactly as ``idrop reproduce <experiment> --backend torch`` parses them."""
    name = module.__name__.rsplit(".", 1)[-1]
    return cli.build_parser().parse_args(["reproduce", name, "--backend", "torch", *argv])


def test_share_is_one_when_all_kl_is_in_the_box() -> None:
    canvas, size = 96, 12
    boxes = np.array([[10, 20, 38, 44], [50, 0, 78, 20]])
    grid = box_on_grid(boxes, canvas, size)
    kl = np.zeros((2, size, size))
    for i, (y0, x0, y1, x1) in enumerate(grid):
        kl[i, y0:y1, x0:x1] = np.random.default_rng(i).random((y1 - y0, x1 - x0)) + 0.1
    share, box = kl_share_in_box(kl, boxes, canvas)
    assert share == pytest.approx(1.0)
    areas = [(y1 - y0) * (x1 - x0) / size**2 for y0, x0, y1, x1 in grid]
    assert box == pytest.approx(np.mean(areas))


def test_share_of_uniform_kl_equals_box_share() -> None:
    boxes = np.array([[0, 0, 48, 48]])  # a quarter of a 96 canvas, exactly on the grid
    share, box = kl_share_in_box(np.ones((1, 24, 24)), boxes, 96)
    assert share == pytest.approx(0.25) and box == pytest.approx(0.25)


def test_box_grows_to_cells_it_touches() -> None:
    assert box_on_grid(np.array([[5, 5, 9, 9]]), 96, 12).tolist() == [[0, 0, 2, 2]]


def test_tiny_end_to_end(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("matplotlib")
    from idrop.experiments import cluttered

    rng = np.random.default_rng(0)
    digits = (rng.random((40, 784)) > 0.7).astype(np.float32)
    labels = rng.integers(0, 10, 40)
    splits = (digits, labels, digits[:20], labels[:20], "synthetic digits")
    args = parse(
        cluttered,
        [
            "--out",
            str(tmp_path),
            "--epochs",
            "1",
            "--no-progress",
            "--betas",
            "0.1",
            "1",
            "--filter-percentage",
            "0.0625",
            "--convs-per-block",
            "1",
            "--canvas",
            "48",
            "--n-train",
            "32",
            "--n-test",
            "8",
            "--show",
            "2",
            "--batch-size",
            "16",
        ],
    )
    assert cluttered.run(args, splits=splits) == 0
    root = tmp_path / "cluttered" / "torch"
    assert (root / "heatmaps.png").stat().st_size > 0 and (root / "table.md").exists()
    runs = json.loads((root / "results.json").read_text())["runs"]
    assert len(runs) == 2
    for r in runs:
        assert math.isfinite(r["test_error"])
        assert 0 <= r["layer1_kl_share_in_box"] <= 1 and 0 < r["layer1_box_share"] <= 1
    assert not (root / "checkpoints").exists() or not any((root / "checkpoints").iterdir())
