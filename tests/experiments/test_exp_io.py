"""Atomic writes, the JSON Lines log, the result folder and its config check."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from idrop.experiments import (
    ResultDir,
    RunKey,
    RunRegistry,
    append_jsonl,
    atomic_write_json,
    atomic_write_text,
    read_jsonl,
)


def test_atomic_write_replaces_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "a" / "state.json"
    atomic_write_json(path, {"x": np.float32(1.5), "y": np.arange(3), "z": float("nan")})
    assert json.loads(path.read_text()) == {"x": 1.5, "y": [0, 1, 2], "z": None}
    assert [p.name for p in path.parent.iterdir()] == ["state.json"]


def test_crash_during_write_keeps_old_file(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "state.json"
    atomic_write_text(path, "old")

    def killed(*args: object) -> None:
        raise KeyboardInterrupt  # the process dies between writing and renaming

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_text(path, "new" * 1000)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # temp file cleaned up


def test_unserialisable_value_keeps_old_file(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    atomic_write_json(path, {"ok": 1})
    with pytest.raises(TypeError):
        atomic_write_json(path, {"bad": object()})
    assert json.loads(path.read_text()) == {"ok": 1}


def test_jsonl_survives_partial_last_line(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    append_jsonl(path, [{"epoch": 1}, {"epoch": 2}])
    with open(path, "a") as f:
        f.write('{"epoch": 3, "lo')  # killed mid-write
    assert [r["epoch"] for r in read_jsonl(path)] == [1, 2]
    append_jsonl(path, [{"epoch": 3}])  # the next row starts on a fresh line
    assert [r["epoch"] for r in read_jsonl(path)] == [1, 2, 3]
    assert list(read_jsonl(tmp_path / "missing.jsonl")) == []


def test_result_dir_layout(tmp_path: Path) -> None:
    d = ResultDir.create(tmp_path, "mnist_fc", "torch")
    assert d.root == tmp_path / "mnist_fc" / "torch" and d.root.is_dir()
    names = [p.name for p in (d.config, d.metrics, d.state, d.results_json, d.results_csv, d.table)]
    assert names == [
        "config.json",
        "metrics.jsonl",
        "state.json",
        "results.json",
        "results.csv",
        "table.md",
    ]
    assert d.plot("error_vs_width").name == "error_vs_width.png"
    with pytest.raises(ValueError, match=r"argument `backend`.*Received: backend='\.\./x'"):
        ResultDir.create(tmp_path, "mnist_fc", "../x")


def test_config_mismatch_on_resume(tmp_path: Path) -> None:
    d = ResultDir.create(tmp_path, "exp", "jax")
    d.write_config({"beta": 1.0, "epochs": 3, "widths": (0.5, 1)})
    d.write_config({"beta": 1.0, "epochs": 3, "widths": [0.5, 1]})  # same after JSON: fine
    RunRegistry(d.state).record_epoch(RunKey("information", 1, 0), 1, None)  # a run trained under it
    with pytest.raises(ValueError, match=r"keys \['epochs'\] differ"):
        d.write_config({"beta": 1.0, "epochs": 5, "widths": [0.5, 1]})
    d.write_config({"beta": 2.0}, overwrite=True)
    assert json.loads(d.config.read_text()) == {"beta": 2.0}
