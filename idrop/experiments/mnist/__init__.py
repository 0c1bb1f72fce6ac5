"""MNIST, Fig. 3a of the paper: test error against layer width, per noise method.

The network is 784 -> three ReLU hidden layers of width W -> 10, with the method's
noise after each hidden layer:

| method | noise after each hidden layer |
|---|---|
| ``none`` | nothing (plain ReLU net) |
| ``binary`` | binary dropout, drop rate 0.5, rescaled to mean 1 |
| ``gaussian`` | Gaussian dropout with the variance of binary dropout at rate 0.5 |
| ``lognormal`` | log-normal dropout with one constant ``alpha`` (``lognormal_alpha``) |
| ``information`` | Information Dropout, log-uniform prior, ``beta`` and ``max_alpha`` |

trained with Adam on the Information Bottleneck loss (eq. 5, ``n_train`` = the
training-set size; for the baselines it is the cross-entropy alone).

This module holds the protocol once; ``mnist/<backend>.py`` holds each framework's
model and train step. Settings:

- ``--quick``: widths 32 and 128, methods none/binary/information, 3 seeds, 30
  epochs, at most 5,000 training images: a few minutes per backend on 2 CPU cores.
- paper (default): widths 256..3072 (the paper's multipliers 0.25..3 of 1024 units),
  all five methods, 5 seeds, 100 epochs, all the training images found.

``beta`` is 1 and ``max_alpha`` 0.7 (the official code's cap) in both, the same for
every width. beta was picked from {1, 3} on a 2-seed, 40-epoch PyTorch pilot of the
quick grid (beta=1 already beat binary dropout at both widths; beta=3 was not
finished), then fixed for every backend; seeds are always 0..N-1.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from idrop.experiments import ResultDir, Run, RunKey, RunRegistry, run_grid, write_summary

EXPERIMENT = "mnist"
METHODS = ("none", "binary", "gaussian", "lognormal", "information")


@dataclasses.dataclass(frozen=True)
class MnistConfig:
    """Everything that decides the numbers of the MNIST grid (written to ``config.json``)."""

    backend: str
    widths: tuple[int, ...]
    methods: tuple[str, ...]
    seeds: int
    epochs: int
    batch_size: int = 100
    learning_rate: float = 1e-3
    beta: float = 1.0
    max_alpha: float = 0.7
    dropout_rate: float = 0.5
    lognormal_alpha: float = 0.7
    limit_train: int | None = None
    n_train: int = 0
    data_source: str = ""

    def keys(self) -> list[RunKey]:
        """The grid, methods outermost so a partial result folder already compares methods."""
        return [RunKey(m, w, s) for m in self.methods for w in self.widths for s in range(self.seeds)]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready settings, with the experiment's name."""
        return {"experiment": EXPERIMENT, **dataclasses.asdict(self)}


QUICK: dict[str, Any] = {
    "widths": (32, 128),
    "methods": ("none", "binary", "information"),
    "seeds": 3,
    "epochs": 30,
    "limit_train": 5000,
}
PAPER: dict[str, Any] = {
    "widths": (256, 512, 1024, 2048, 3072),
    "methods": METHODS,
    "seeds": 5,
    "epochs": 100,
    "limit_train": None,
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The MNIST-only options (the common ones come from :mod:`idrop.cli`)."""
    g = parser.add_argument_group("mnist options")
    g.add_argument(
        "--limit-train",
        type=int,
        metavar="N",
        default=None,
        help="train on the first N training images only (default: 5000 with --quick, else all)",
    )
    g.add_argument("--batch-size", type=int, metavar="N", default=None, help="minibatch size (default: 100)")
    g.add_argument("--lr", type=float, metavar="LR", default=None, help="Adam learning rate (default: 1e-3)")
    g.add_argument(
        "--devices",
        type=int,
        metavar="N",
        default=None,
        help="data-parallel over N devices of --device's kind (JAX: a sharding Mesh; TensorFlow: "
        "MirroredStrategy); --batch-size stays the GLOBAL batch. PyTorch takes N from torchrun "
        "(see docs/distributed.md). Default: 1",
    )


def config_from_args(args: argparse.Namespace, n_available: int, source: str) -> MnistConfig:
    """Resolve the settings: explicit options over ``--quick``/paper defaults over the dataclass's."""
    base = dict(QUICK if args.quick else PAPER)
    overrides = {
        "widths": args.widths,
        "methods": args.methods,
        "seeds": args.seeds,
        "epochs": args.epochs,
        "beta": args.beta,
        "max_alpha": args.max_alpha,
        "limit_train": getattr(args, "limit_train", None),
        "batch_size": getattr(args, "batch_size", None),
        "learning_rate": getattr(args, "lr", None),
    }
    base.update({k: v for k, v in overrides.items() if v is not None})
    limit = base.get("limit_train")
    n_train = n_available if limit is None else min(int(limit), n_available)
    return MnistConfig(
        backend=args.backend,
        widths=tuple(int(w) for w in base.pop("widths")),
        methods=tuple(base.pop("methods")),
        n_train=n_train,
        data_source=source,
        **base,
    )


def load_data(data_dir: str | None, limit_train: int | None) -> tuple[Any, str]:
    """MNIST splits as float32 arrays, the training set cut to ``limit_train`` images."""
    from idrop.data import Splits, mnist_splits

    splits = mnist_splits(data_dir)
    x, y = splits.x_train, splits.y_train
    if limit_train is not None and limit_train < len(x):
        x, y = x[:limit_train], y[:limit_train]
    data = Splits(
        np.ascontiguousarray(x, np.float32),
        y.astype(np.int64),
        np.ascontiguousarray(splits.x_test, np.float32),
        splits.y_test.astype(np.int64),
        splits.source,
    )
    return data, splits.source


class _StopAfter:
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


def backend_module(backend: str) -> Any:
    """The backend's model-and-train-step module (imports its framework)."""
    return importlib.import_module(f"idrop.experiments.mnist.{backend}")


class _SingleProcess:
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


def run(args: argparse.Namespace) -> int:
    """Train (or resume) the grid and write the summary; return the exit status."""
    data, source = load_data(args.data_dir, None)
    config = config_from_args(args, len(data.x_train), source)
    if config.n_train < len(data.x_train):
        data = data._replace(x_train=data.x_train[: config.n_train], y_train=data.y_train[: config.n_train])
    devices = getattr(args, "devices", None)
    if devices is not None and devices < 1:
        print(f"idrop: error: --devices must be >= 1; received {devices}", file=sys.stderr)
        return 2
    module = backend_module(args.backend)
    try:
        replica = module.Replica(args.device, devices) if hasattr(module, "Replica") else _SingleProcess()
    except ValueError as err:
        print(f"idrop: error: {err}", file=sys.stderr)
        return 2
    try:
        return _run(args, module, replica, data, config, source, devices or 1)
    finally:
        replica.close()


def _run(
    args: argparse.Namespace, module: Any, replica: Any, data: Any, config: MnistConfig, source: str, devices: int
) -> int:
    results = ResultDir.create(args.out, EXPERIMENT, args.backend)
    registry = RunRegistry(results.state)  # read before rank 0 writes anything (see follow_grid)
    status = 0
    if replica.is_main:
        if not args.resume and (registry.finished or registry.in_progress):
            print(
                f"idrop: error: {results.root} already holds runs; pass --resume to continue them, "
                "or choose another --out.",
                file=sys.stderr,
            )
            status = 2
        else:
            try:
                results.write_config(config.as_dict())
            except ValueError as err:
                print(f"idrop: error: {err}", file=sys.stderr)
                status = 2
    if replica.broadcast(status):
        return 2
    make_run: Callable[[RunKey], Run] = module.make_runs(data, config, args.device, devices)
    if args.stop_after_epochs is not None:
        inner, limit, trained = make_run, args.stop_after_epochs, [0]  # epochs trained by this call, all runs
        make_run = lambda key: _StopAfter(inner(key), limit, trained)  # noqa: E731
    if not replica.is_main:
        follow_grid(results, registry, config.keys(), make_run, config.epochs)
        return 0
    progress = not args.no_progress
    if progress:
        name = module.device_name(args.device) + (f" x {devices}" if devices > 1 else "")
        print(
            f"mnist on {args.backend} ({name}): {len(config.keys())} runs, n_train={config.n_train}, {source}",
            flush=True,
        )
    run_grid(results, config.keys(), make_run, epochs=config.epochs, progress=progress)
    summary = write_summary(results)
    if results.checkpoints.is_dir() and not any(results.checkpoints.iterdir()):
        results.checkpoints.rmdir()  # finished runs delete their checkpoints; leave no empty folder behind
    if progress:
        print(results.table.read_text())
    return 0 if summary else 1
