"""run_grid: training loop, checkpoints, and resuming after a kill (real SIGKILL too)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from idrop.experiments import ResultDir, Run, RunKey, RunRegistry, read_metrics, run_grid

KEYS = [RunKey(m, w, s) for m in ("dropout", "information") for w in (0.5, 1.0) for s in (0, 1)]
EPOCHS = 4


class Killed(Exception):
    """Stands in for the process dying."""


class FakeRun:
    """A deterministic 'model': its state evolves per epoch from the key."""

    def __init__(self, key: RunKey, log: list, kill_at: tuple[RunKey, int] | None = None) -> None:
        self.key, self.log, self.kill_at = key, log, kill_at
        self.w = float(key.seed) + 0.1 * float(key.width)

    def train_epoch(self, epoch: int) -> dict[str, float]:
        if self.kill_at == (self.key, epoch):
            raise Killed
        self.log.append(("train", self.key.name, epoch))
        self.w = 0.5 * self.w + epoch + (self.key.method == "information")
        return {"loss": self.w, "kl": 0.1 * epoch, "error": 1.0 / (1 + self.w)}

    def evaluate(self) -> dict[str, float]:
        return {"test_error": 1.0 / (1.0 + self.w)}

    def save_state(self, path: Path) -> None:
        path.write_text(json.dumps({"w": self.w}))

    def load_state(self, path: Path) -> None:
        self.log.append(("load", self.key.name, path.name))
        self.w = json.loads(path.read_text())["w"]


def _grid(root: Path, log: list, kill_at=None, **kwargs) -> list[dict]:
    results = ResultDir.create(root, "exp", "fake")
    return run_grid(results, KEYS, lambda k: FakeRun(k, log, kill_at), epochs=EPOCHS, progress=False, **kwargs)


def test_fake_run_follows_protocol() -> None:
    assert isinstance(FakeRun(KEYS[0], []), Run)


def test_uninterrupted_grid(tmp_path: Path) -> None:
    rows = _grid(tmp_path, [])
    assert len(rows) == len(KEYS) and all("test_error" in r and r["epochs"] == EPOCHS for r in rows)
    results = ResultDir.create(tmp_path, "exp", "fake")
    assert len(read_metrics(results)) == len(KEYS) * EPOCHS
    assert not results.checkpoints.exists() or not any(results.checkpoints.iterdir())
    log: list = []
    assert _grid(tmp_path, log) == rows and log == []  # all finished: nothing re-runs


@pytest.mark.parametrize("every", [1, 3])
def test_resume_after_kill_matches_uninterrupted(tmp_path: Path, every: int) -> None:
    reference = _grid(tmp_path / "ref", [], checkpoint_every=every)
    victim = KEYS[5]
    with pytest.raises(Killed):
        _grid(tmp_path / "run", [], kill_at=(victim, 4), checkpoint_every=every)
    results = ResultDir.create(tmp_path / "run", "exp", "fake")
    state = RunRegistry(results.state)
    assert len(state.finished) == 5
    # Epochs 1-3 done; with every=3 the only checkpoint is at 3 as well.
    assert state.resume_point(victim) == (3, f"checkpoints/{victim.name}/epoch_0003")

    log: list = []
    resumed = _grid(tmp_path / "run", log, checkpoint_every=every)
    assert log[0] == ("load", victim.name, "epoch_0003")
    assert log[1] == ("train", victim.name, 4)
    assert not any(e[1] in {k.name for k in KEYS[:5]} for e in log)  # finished runs skipped
    assert resumed == reference
    assert len(read_metrics(results)) == len(KEYS) * EPOCHS


def test_kill_between_checkpoint_and_registry(tmp_path: Path, monkeypatch) -> None:
    """A checkpoint file newer than state.json is ignored, and later pruned."""
    reference = _grid(tmp_path / "ref", [])
    calls = {"n": 0}
    real_save = RunRegistry._save

    def dying_save(self: RunRegistry) -> None:
        calls["n"] += 1
        if calls["n"] == 3:  # epoch 3 of the first run: checkpoint renamed, not recorded
            raise Killed
        real_save(self)

    monkeypatch.setattr(RunRegistry, "_save", dying_save)
    with pytest.raises(Killed):
        _grid(tmp_path / "run", [])
    monkeypatch.setattr(RunRegistry, "_save", real_save)
    results = ResultDir.create(tmp_path / "run", "exp", "fake")
    folder = results.checkpoints / KEYS[0].name
    assert sorted(p.name for p in folder.iterdir()) == ["epoch_0002", "epoch_0003"]
    log: list = []
    assert _grid(tmp_path / "run", log) == reference
    assert log[0] == ("load", KEYS[0].name, "epoch_0002")


def test_save_state_must_create_path(tmp_path: Path) -> None:
    class Lazy(FakeRun):
        def save_state(self, path: Path) -> None:
            pass

    results = ResultDir.create(tmp_path, "exp", "fake")
    with pytest.raises(RuntimeError, match="without creating"):
        run_grid(results, KEYS[:1], lambda k: Lazy(k, []), epochs=1, progress=False)


def test_folder_checkpoints(tmp_path: Path) -> None:
    """save_state may write a folder (Orbax-style); it is renamed into place whole."""

    class DirRun(FakeRun):
        def save_state(self, path: Path) -> None:
            path.mkdir()
            (path / "w.json").write_text(json.dumps({"w": self.w}))

        def load_state(self, path: Path) -> None:
            super().load_state(path / "w.json")

    results = ResultDir.create(tmp_path, "exp", "fake")
    run_grid(results, KEYS[:1], lambda k: DirRun(k, []), epochs=2, progress=False, keep_checkpoints=True)
    assert (results.checkpoints / KEYS[0].name / "epoch_0002" / "w.json").is_file()


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_invalid_epochs(tmp_path: Path, bad: object) -> None:
    results = ResultDir.create(tmp_path, "exp", "fake")
    with pytest.raises(ValueError, match=f"argument `epochs`.*Received: epochs={bad!r}"):
        run_grid(results, KEYS, lambda k: FakeRun(k, []), epochs=bad)


CHILD = textwrap.dedent(
    """
    import os, signal, sys
    sys.path.insert(0, {tests!r})
    from test_exp_runner import FakeRun, KEYS, EPOCHS
    from idrop.experiments import ResultDir, run_grid

    class Dying(FakeRun):
        def train_epoch(self, epoch):
            if self.key == KEYS[2] and epoch == 3:
                os.kill(os.getpid(), signal.SIGKILL)
            return super().train_epoch(epoch)

    results = ResultDir.create({root!r}, "exp", "fake")
    run_grid(results, KEYS, lambda k: Dying(k, []), epochs=EPOCHS, progress=False)
    """
)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="POSIX only")
def test_real_sigkill_then_resume(tmp_path: Path) -> None:
    reference = _grid(tmp_path / "ref", [])
    code = CHILD.format(tests=str(Path(__file__).parent), root=str(tmp_path / "run"))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    state = RunRegistry(tmp_path / "run" / "exp" / "fake" / "state.json")
    assert len(state.finished) == 2 and state.resume_point(KEYS[2])[0] == 2
    assert _grid(tmp_path / "run", []) == reference
