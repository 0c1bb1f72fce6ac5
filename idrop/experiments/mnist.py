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

This module holds the protocol once; ``_mnist_<backend>.py`` holds each framework's
model and train step. Settings:

- ``--quick``: widths 32 and 128, methods none/binary/information, 3 seeds, 40
  epochs, at most 5,000 training images: a few minutes per backend on 2 CPU cores.
- paper (default): widths 256..3072 (the paper's multipliers 0.25..3 of 1024 units),
  all five methods, 5 seeds, 100 epochs, all the training images found.

``beta`` is 3 and ``max_alpha`` 0.7 (the official code's cap) in both. With the
official normalisation (KL divided by ``n_train``) beta of this order is what makes
the bottleneck bite on a 5,000-image training set; it was picked on the quick grid
once, for all widths and seeds together (seeds are always 0..N-1).
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

from . import ResultDir, Run, RunKey, RunRegistry, run_grid, write_summary

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
    beta: float = 3.0
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
    "widths": (32, 128), "methods": ("none", "binary", "information"), "seeds": 3, "epochs": 40, "limit_train": 5000,
}
PAPER: dict[str, Any] = {
    "widths": (256, 512, 1024, 2048, 3072), "methods": METHODS, "seeds": 5, "epochs": 100, "limit_train": None,
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The MNIST-only options (the common ones come from :mod:`idrop.cli`)."""
    g = parser.add_argument_group("mnist options")
    g.add_argument("--limit-train", type=int, metavar="N", default=None,
                   help="train on the first N training images only (default: 5000 with --quick, else all)")
    g.add_argument("--batch-size", type=int, metavar="N", default=None, help="minibatch size (default: 100)")
    g.add_argument("--lr", type=float, metavar="LR", default=None, help="Adam learning rate (default: 1e-3)")


def config_from_args(args: argparse.Namespace, n_available: int, source: str) -> MnistConfig:
    """Resolve the settings: explicit options over ``--quick``/paper defaults over the dataclass's."""
    base = dict(QUICK if args.quick else PAPER)
    overrides = {
        "widths": args.widths, "methods": args.methods, "seeds": args.seeds, "epochs": args.epochs,
        "beta": args.beta, "max_alpha": args.max_alpha, "limit_train": getattr(args, "limit_train", None),
        "batch_size": getattr(args, "batch_size", None), "learning_rate": getattr(args, "lr", None),
    }
    base.update({k: v for k, v in overrides.items() if v is not None})
    limit = base.get("limit_train")
    n_train = n_available if limit is None else min(int(limit), n_available)
    return MnistConfig(
        backend=args.backend, widths=tuple(int(w) for w in base.pop("widths")),
        methods=tuple(base.pop("methods")), n_train=n_train, data_source=source, **base,
    )


def load_data(data_dir: str | None, limit_train: int | None) -> tuple[Any, str]:
    """MNIST splits as float32 arrays, the training set cut to ``limit_train`` images."""
    from idrop.data import Splits, mnist_splits

    splits = mnist_splits(data_dir)
    x, y = splits.x_train, splits.y_train
    if limit_train is not None and limit_train < len(x):
        x, y = x[:limit_train], y[:limit_train]
    data = Splits(np.ascontiguousarray(x, np.float32), y.astype(np.int64),
                  np.ascontiguousarray(splits.x_test, np.float32), splits.y_test.astype(np.int64), splits.source)
    return data, splits.source


class _StopAfter:
    """Wraps a Run to exit (status 3) before training past a global epoch budget.

    It stops at the start of the next epoch, after the previous one's checkpoint is
    recorded, which is where a SIGKILL between epochs would leave the folder.
    """

    budget = 0

    def __init__(self, run: Run, limit: int) -> None:
        self.run, self.limit = run, limit

    def train_epoch(self, epoch: int) -> Mapping[str, float]:
        if _StopAfter.budget >= self.limit:
            raise SystemExit(3)
        _StopAfter.budget += 1
        return self.run.train_epoch(epoch)

    def evaluate(self) -> Mapping[str, float]:
        return self.run.evaluate()

    def save_state(self, path: Path) -> None:
        self.run.save_state(path)

    def load_state(self, path: Path) -> None:
        self.run.load_state(path)


def backend_module(backend: str) -> Any:
    """The backend's model-and-train-step module (imports its framework)."""
    return importlib.import_module(f"idrop.experiments._mnist_{backend}")


def run(args: argparse.Namespace) -> int:
    """Train (or resume) the grid and write the summary; return the exit status."""
    data, source = load_data(args.data_dir, None)
    config = config_from_args(args, len(data.x_train), source)
    if config.n_train < len(data.x_train):
        data = data._replace(x_train=data.x_train[: config.n_train], y_train=data.y_train[: config.n_train])
    results = ResultDir.create(args.out, EXPERIMENT, args.backend)
    if not args.resume and (RunRegistry(results.state).finished or RunRegistry(results.state).in_progress):
        print(f"idrop: error: {results.root} already holds runs; pass --resume to continue them, "
              "or choose another --out.", file=sys.stderr)
        return 2
    try:
        results.write_config(config.as_dict())
    except ValueError as err:
        print(f"idrop: error: {err}", file=sys.stderr)
        return 2
    module = backend_module(args.backend)
    make_run: Callable[[RunKey], Run] = module.make_runs(data, config, args.device)
    if args.stop_after_epochs is not None:
        inner, limit = make_run, args.stop_after_epochs
        make_run = lambda key: _StopAfter(inner(key), limit)  # noqa: E731
    progress = not args.no_progress
    if progress:
        print(f"mnist on {args.backend} ({module.device_name(args.device)}): {len(config.keys())} runs, "
              f"n_train={config.n_train}, {source}", flush=True)
    run_grid(results, config.keys(), make_run, epochs=config.epochs, progress=progress)
    summary = write_summary(results)
    if progress:
        print(results.table.read_text())
    return 0 if summary else 1
