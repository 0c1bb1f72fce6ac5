"""The run registry (state.json): persistence across processes and its rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from idrop.experiments import RunKey, RunRegistry


def test_key_names() -> None:
    assert RunKey("information", 0.25, 3).name == "information_w0.25_s3"
    assert RunKey("binary dropout", 1, 0).name == RunKey("binary dropout", 1.0, 0).name
    assert RunKey("a/b", 2, 1).name == "a-b_w2_s1"


def test_state_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    keys = [RunKey("information", w, s) for w in (0.5, 1.0) for s in (0, 1)]
    reg = RunRegistry(path)
    reg.finish(keys[0], {"test_error": 0.02})
    reg.record_epoch(keys[1], 4, "checkpoints/k1/epoch_0004")

    # A new process (the old one was killed) sees exactly what was recorded.
    reopened = RunRegistry(path)
    assert reopened.is_finished(keys[0]) and not reopened.is_finished(keys[1])
    assert reopened.result(keys[0]) == {"test_error": 0.02}
    assert reopened.resume_point(keys[1]) == (4, "checkpoints/k1/epoch_0004")
    assert reopened.resume_point(keys[2]) == (0, None)
    assert reopened.pending(keys) == keys[1:]

    reopened.record_epoch(keys[1], 5, "checkpoints/k1/epoch_0005")
    reopened.finish(keys[1], {"test_error": 0.03})
    final = RunRegistry(path)
    assert final.in_progress == {}
    assert [r["seed"] for r in final.results()] == [0, 1]
    assert final.results()[1] == {
        "method": "information",
        "width": 0.5,
        "seed": 1,
        "test_error": 0.03,
    }


def test_cannot_record_after_finish(tmp_path: Path) -> None:
    reg = RunRegistry(tmp_path / "state.json")
    key = RunKey("dropout", 1, 0)
    reg.finish(key, {"test_error": 0.1})
    with pytest.raises(ValueError, match="already finished"):
        reg.record_epoch(key, 1, None)


def test_version_is_checked(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text(json.dumps({"version": 99, "finished": {}, "in_progress": {}}))
    with pytest.raises(ValueError, match="version 99"):
        RunRegistry(path)


def test_state_file_is_strict_json(tmp_path: Path) -> None:
    reg = RunRegistry(tmp_path / "state.json")
    reg.finish(RunKey("m", 1, 0), {"test_error": float("nan")})
    text = (tmp_path / "state.json").read_text()
    assert "NaN" not in text and json.loads(text)["finished"]["m_w1_s0"]["result"] == {"test_error": None}
