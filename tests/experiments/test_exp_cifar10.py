"""CIFAR-10 experiment: one epoch end to end on a tiny folder in the real pickle format."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import pickle
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from idrop import cli


def parse(module: ModuleType, argv: list[str]) -> argparse.Namespace:
    """The arguments exactly as ``idrop reproduce <experiment> --backend torch`` parses them."""
    name = module.__name__.rsplit(".", 1)[-1]
    return cli.build_parser().parse_args(["reproduce", name, "--backend", "torch", *argv])


def _write_tiny_cifar(root: Path, per_batch: int = 8) -> None:
    from idrop.data import cifar10

    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [*cifar10.TRAIN_BATCHES, cifar10.TEST_BATCH]:
        # The real files: py2 pickles of {b'data': uint8 [n, 3072], b'labels': list, ...}.
        batch = {b"batch_label": b"tiny", b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                 b"labels": [int(v) for v in rng.integers(0, 10, per_batch)], b"filenames": [b"x.png"] * per_batch}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    meta = {b"label_names": [c.encode() for c in cifar10.CLASSES]}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))


def test_tiny_end_to_end(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from idrop.experiments import cifar10

    _write_tiny_cifar(tmp_path / "data")
    args = parse(cifar10, ["--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "out"), "--epochs", "1",
                           "--no-progress", "--filter-percentage", "0.05", "--batch-size", "16",
                           "--methods", "information", "binary"])
    assert cifar10.run(args) == 0
    root = tmp_path / "out" / "cifar10" / "torch"
    assert (root / "table.md").exists()
    runs = json.loads((root / "results.json").read_text())["runs"]
    assert {r["method"] for r in runs} == {"information", "binary"}
    assert all(math.isfinite(r["test_error"]) and 0 <= r["test_error"] <= 1 for r in runs)


def test_missing_cifar_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("torch")
    from idrop.data import cifar10 as data
    from idrop.experiments import cifar10

    monkeypatch.setattr(data, "RESOURCE", dataclasses.replace(data.RESOURCE, urls=()))
    args = parse(cifar10, ["--data-dir", str(tmp_path), "--out", str(tmp_path / "out"), "--no-progress"])
    assert cifar10.run(args) == 1
    assert "cifar-10-python.tar.gz" in capsys.readouterr().out
