"""Result-folder faults: durable write order, one writer per folder, damaged files, diverged runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from idrop.experiments import ResultDir, RunKey, RunRegistry, _lock, run_grid
from idrop.experiments._common import prepare
from idrop.experiments._errors import ResultFolderError, RunDiverged

KEY = RunKey("information", 8, 0)


class StepRun:
    """A run whose loss is ``losses[epoch - 1]``; its state is the last epoch trained."""

    def __init__(self, losses: list[float]) -> None:
        self.losses, self.epoch = losses, 0

    def train_epoch(self, epoch: int) -> dict[str, float]:
        self.epoch = epoch
        return {"loss": self.losses[epoch - 1], "kl": 0.5}

    def evaluate(self) -> dict[str, float]:
        return {"test_error": 0.1}

    def save_state(self, path: Path) -> None:
        path.write_text(json.dumps(self.epoch))

    def load_state(self, path: Path) -> None:
        self.epoch = json.loads(path.read_text())


@pytest.fixture(autouse=True)
def _release_locks() -> None:
    yield
    _lock.release_all()  # as the CLI does at the end of a run


# -- durability: checkpoint bytes, its name, then state.json ------------------------------------------


def test_checkpoint_is_durable_before_state_json_points_at_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src: str, dst: str) -> None:
        events.append(("replace", f"{Path(src).name}->{Path(dst).name}"))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    results = ResultDir.create(tmp_path, "exp", "fake")
    run_grid(results, [KEY], lambda k: StepRun([1.0]), epochs=1, progress=False, keep_checkpoints=True)
    root = str(results.root.resolve())
    folder = str((results.checkpoints / KEY.name).resolve())
    checkpoint_events = [e for e in events if "epoch_0001" in e[1] or e[1] == folder]
    assert checkpoint_events == [
        ("fsync", f"{folder}/.epoch_0001.tmp"),  # the bytes
        ("replace", ".epoch_0001.tmp->epoch_0001"),  # the name
        ("fsync", folder),  # the name, on disk
    ]
    first_state = next(i for i, e in enumerate(events) if e[0] == "replace" and e[1].endswith("->state.json"))
    assert events.index(checkpoint_events[-1]) < first_state
    fsync_state_tmp = events[first_state - 1]
    assert fsync_state_tmp[0] == "fsync" and Path(fsync_state_tmp[1]).name.startswith(".state.json.")
    assert events[first_state + 1] == ("fsync", root)  # state.json's new name, on disk


# -- one writer per folder ---------------------------------------------------------------------------

HOLDER = textwrap.dedent(
    """
    import sys
    from idrop.experiments import _lock
    _lock.hold(sys.argv[1])
    print("held", flush=True)
    sys.stdin.read()  # until the test closes our stdin
    """
)


def test_second_process_is_refused_with_the_holders_pid(tmp_path: Path) -> None:
    results = ResultDir.create(tmp_path, "exp", "fake")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(results.root)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        lock = results.root.resolve() / ".lock"
        message = rf"another run holds {lock} \(pid {holder.pid}\); wait for it or use another --out"
        with pytest.raises(ResultFolderError, match=message):
            run_grid(results, [KEY], lambda k: StepRun([1.0]), epochs=1, progress=False)
        with pytest.raises(ResultFolderError, match=message):
            results.write_config({"a": 1})
        with pytest.raises(ResultFolderError, match=message):
            prepare(results, {"a": 1}, resume=False)
        assert not results.state.exists() and not results.config.exists()  # nothing written, nothing deleted
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    # The holder's exit freed the lock: this process now runs.
    assert run_grid(results, [KEY], lambda k: StepRun([1.0]), epochs=1, progress=False)[0]["test_error"] == 0.1


def test_killed_holder_leaves_no_lock(tmp_path: Path) -> None:
    results = ResultDir.create(tmp_path, "exp", "fake")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(results.root)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "held"
    holder.kill()
    holder.wait(timeout=30)
    assert (results.root / ".lock").exists()  # the file stays, its flock is gone
    _lock.hold(results.root)
    _lock.release_all()
    assert not (results.root / ".lock").exists()


def test_registry_changes_read_modify_write(tmp_path: Path) -> None:
    """Two views of one state.json: the second writer keeps the first one's finished run."""
    path = tmp_path / "state.json"
    first, second = RunRegistry(path), RunRegistry(path)
    first.finish(RunKey("binary", 8, 0), {"test_error": 0.2})
    second.record_epoch(RunKey("information", 8, 0), 1, None)
    second.finish(RunKey("information", 8, 1), {"test_error": 0.1})
    state = RunRegistry(path)
    assert sorted(state.finished) == ["binary_w8_s0", "information_w8_s1"]
    assert list(state.in_progress) == ["information_w8_s0"]


# -- damaged folder files --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{bad", "cannot be read as JSON"),
        ("[]", "holds a list, not a registry object"),
        ('{"version": 9}', "has registry version 9"),
        ('{"version": 1, "finished": {"r": {"method": "m"}}}', "no method, width, seed and result object for .* 'r'"),
        ('{"version": 1, "finished": {"r": {"width": 8, "seed": 0, "result": {}}}}', "for finished run 'r'"),
        ('{"version": 1, "in_progress": {"r": {"checkpoint": null}}}', "no valid epoch and checkpoint for run 'r'"),
        ('{"version": 1, "in_progress": {"r": {"epoch": 1, "checkpoint": "../../x"}}}', "no valid epoch"),
        ('{"version": 1, "in_progress": {"r": {"epoch": 1, "checkpoint": "/etc/passwd"}}}', "no valid epoch"),
    ],
)
def test_damaged_state_json_is_a_result_folder_error(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "state.json").write_text(content)
    with pytest.raises(ResultFolderError, match=message) as info:
        RunRegistry(tmp_path / "state.json")
    assert str(tmp_path / "state.json") in str(info.value)


def test_state_json_that_is_a_folder(tmp_path: Path) -> None:
    (tmp_path / "state.json").mkdir()
    with pytest.raises(ResultFolderError, match="cannot be read"):
        RunRegistry(tmp_path / "state.json")


def test_unloadable_checkpoint_names_it(tmp_path: Path) -> None:
    results = ResultDir.create(tmp_path, "exp", "fake")
    with pytest.raises(RunDiverged):  # epoch 1 is checkpointed, epoch 2 diverges
        run_grid(results, [KEY], lambda k: StepRun([1.0, float("nan")]), epochs=2, progress=False)
    checkpoint = results.checkpoints / KEY.name / "epoch_0001"
    checkpoint.write_text("{truncated")
    with pytest.raises(ResultFolderError, match=rf"cannot load the checkpoint {checkpoint} of run {KEY.name}"):
        run_grid(results, [KEY], lambda k: StepRun([1.0, 2.0]), epochs=2, progress=False)


def test_config_json_that_is_a_folder(tmp_path: Path) -> None:
    results = ResultDir.create(tmp_path, "exp", "fake")
    results.config.mkdir()
    with pytest.raises(ResultFolderError, match=r"config\.json is a folder"):
        results.write_config({"a": 1})


def test_result_folder_in_the_way_of_a_file(tmp_path: Path) -> None:
    (tmp_path / "out").write_text("a file")
    with pytest.raises(ResultFolderError, match=r"out is a file; choose another --out"):
        ResultDir.create(tmp_path / "out", "exp", "fake")


def test_result_folder_permission_denied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def denied(self: Path, *args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", denied)  # running as root, chmod cannot deny it
    with pytest.raises(ResultFolderError, match=r"Permission denied .*choose another --out"):
        ResultDir.create(tmp_path / "ro", "exp", "fake")


# -- a failed start does not bind the folder; a finished one is not silently discarded -------------------


def test_config_of_a_start_that_recorded_nothing_does_not_block(tmp_path: Path) -> None:
    results = ResultDir.create(tmp_path, "exp", "fake")
    results.write_config({"lr": 10.0})
    with pytest.raises(RunDiverged):
        run_grid(results, [KEY], lambda k: StepRun([float("inf")]), epochs=1, progress=False)
    assert results.metrics.exists()  # the diverged epoch is logged
    results.write_config({"lr": 0.001})  # the corrected start
    assert json.loads(results.config.read_text()) == {"lr": 0.001}
    assert not results.metrics.exists()  # the failed start's rows are gone with its config
    RunRegistry(results.state).record_epoch(KEY, 1, None)
    with pytest.raises(ResultFolderError, match=r"keys \['lr'\] differ"):
        results.write_config({"lr": 0.002})  # now an epoch is recorded under 0.001


def test_prepare_without_resume_refuses_a_folder_with_runs(tmp_path: Path) -> None:
    results = ResultDir.create(tmp_path, "exp", "fake")
    prepare(results, {"a": 1}, resume=False)
    RunRegistry(results.state).finish(KEY, {"test_error": 0.1})
    with pytest.raises(ResultFolderError, match="already holds runs; pass --resume"):
        prepare(results, {"a": 1}, resume=False)
    assert RunRegistry(results.state).is_finished(KEY)  # not deleted
    prepare(results, {"a": 1}, resume=True)


# -- divergence -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_loss_stops_the_grid_naming_run_and_epoch(tmp_path: Path, bad: float) -> None:
    results = ResultDir.create(tmp_path, "mnist", "torch")
    keys = [RunKey("binary", 8, 0), KEY, RunKey("information", 8, 1)]
    trained: list[str] = []

    def make(key: RunKey) -> StepRun:
        trained.append(key.name)
        return StepRun([1.0, 0.5, bad] if key == KEY else [1.0, 0.5, 0.4])

    with pytest.raises(RunDiverged) as info:
        run_grid(results, keys, make, epochs=3, progress=False)
    message = str(info.value)
    assert "mnist on torch: run information_w8_s0 (method information, width 8, seed 0)" in message
    assert f"diverged in epoch 3: loss={bad}" in message and "last checkpoint (epoch 2) is kept" in message
    assert info.value.exit_code == 1
    assert trained == ["binary_w8_s0", "information_w8_s0"]  # the grid stopped there
    state = RunRegistry(results.state)
    assert list(state.finished) == ["binary_w8_s0"] and state.resume_point(KEY)[0] == 2


def test_non_finite_evaluation_stops_too(tmp_path: Path) -> None:
    class BadEval(StepRun):
        def evaluate(self) -> dict[str, float]:
            return {"test_elbo": float("nan")}

    results = ResultDir.create(tmp_path, "vae", "jax")
    with pytest.raises(RunDiverged, match="diverged in its evaluation after epoch 1: test_elbo=nan"):
        run_grid(results, [KEY], lambda k: BadEval([1.0]), epochs=1, progress=False)
    assert not RunRegistry(results.state).finished


def test_released_after_releases_only_the_locks_taken_inside(tmp_path: Path) -> None:
    _lock.hold(tmp_path / "before")
    with _lock.released_after():  # what cli.main wraps a run in
        _lock.hold(tmp_path / "inside")
        _lock.hold(tmp_path / "before")  # already held: a no-op
    assert _lock.holds(tmp_path / "before") and not _lock.holds(tmp_path / "inside")
    assert (tmp_path / "before" / ".lock").exists() and not (tmp_path / "inside" / ".lock").exists()
