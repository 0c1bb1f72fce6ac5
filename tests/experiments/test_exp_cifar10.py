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
