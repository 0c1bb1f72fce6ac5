"""How the MNIST grid runs: an epoch budget for kill tests, one-process replicas, non-main torchrun ranks."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from idrop.experiments import ResultDir, Run, RunKey, RunRegistry


class StopAfter:
    """Wraps a Run to exit (status 3) before training past a global epoch budget.

    It stops at the start of the next epoch, after the previous one's checkpoint is
    recorded, which is where a SIGKILL between epochs would leave the folder.
    """

    def __init__(self, run: Run, limit: int, trained: list[int]) -> None:
        self.run, self.limit, self.trained = run, limit, trained

    def train_epoch(self, epoch: int) -> Mapping[str, float]:
        if self.trained[0] >= self.limit:
            raise SystemExit(3)
        self.trained[0] += 1
        return self.run.train_epoch(epoch)

    def evaluate(self) -> Mapping[str, float]:
        return self.run.evaluate()

    def save_state(self, path: Path) -> None:
        self.run.save_state(path)

    def load_state(self, path: Path) -> None:
        self.run.load_state(path)


class SingleProcess:
    """The replica of a one-process job (JAX and TensorFlow drive all their devices from one)."""

    is_main = True

    def broadcast(self, obj: Any) -> Any:
        return obj

    def close(self) -> None:
        pass


def follow_grid(
    results: ResultDir, registry: RunRegistry, keys: list[RunKey], make_run: Callable[[RunKey], Run], epochs: int
) -> None:
    """What a non-main torchrun rank does instead of :func:`run_grid`: the same runs, no writes.

    ``registry`` is read before rank 0 can change it, so every rank resumes the same runs
    from the same checkpoints; the collectives inside each epoch keep the ranks in step.
    """
    for key in keys:
        if registry.is_finished(key):
            continue
        done, checkpoint = registry.resume_point(key)
        run = make_run(key)
        if checkpoint is not None and (results.root / checkpoint).exists():
            run.load_state(results.root / checkpoint)
        else:
            done = 0
        for epoch in range(done + 1, epochs + 1):
            run.train_epoch(epoch)
        run.evaluate()
