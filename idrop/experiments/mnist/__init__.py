"""MNIST, Fig. 3a of the paper: test error against the number of hidden units, per noise method.

The network (:class:`idrop.experiments.nets.torch.MLP`) is 784 -> three ReLU hidden layers of
``W`` units -> 10, with the method's noise after each hidden layer:

| method | noise after each hidden layer |
|---|---|
| ``none`` | nothing (plain ReLU net) |
| ``binary`` | binary dropout, drop rate 0.5, rescaled to mean 1 |
| ``gaussian`` | Gaussian dropout with the variance of binary dropout at rate 0.5 |
| ``lognormal`` | log-normal dropout with one constant ``alpha`` (``lognormal_alpha``) |
| ``information`` | Information Dropout, log-uniform prior, ``beta`` and ``max_alpha`` |

trained with Adam on the Information Bottleneck loss (eq. 5, ``n_train`` = the size of the
training split; for the baselines it is the cross-entropy alone).

Information Dropout's ``beta`` is chosen per hidden-unit count from ``beta_grid`` on a
validation split carved from the training images (``n_valid`` of them, a fixed permutation);
every method trains on the rest, and the test set is used for the reported errors only.
The table gives mean ± std over seeds and a Welch t-test against binary dropout
(:mod:`idrop.experiments.mnist._report`).

Settings (``docs/reproduction.md`` traces each value):

- ``paper`` (default): the paper's protocol as its text states it (Adam, lr 0.01 divided by
  10 after epochs 30 and 60, 80 epochs, 3 runs, alpha capped at 0.5), all five methods.
- ``--quick``: a small-network check of Fig. 3a's claim (Information Dropout helps most when
  the network is small), not points of Fig. 3a: 32 and 128 hidden units, 5,000 training
  images (1,000 of them held out for validation), 20 epochs with the paper's lr schedule scaled
  to them, none/binary/information. Minutes per backend on 2 CPU cores.

``--alpha-rank R`` gives every Information Dropout layer the cheap alpha branch of rank ``R``
(``InfoDropout(alpha_rank=R)``, an ``in -> R -> out`` map) instead of the paper's full map
(``results/cheap-alpha/`` compares them).

This module holds the protocol once; ``mnist/<backend>.py`` holds each framework's train step.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import sys
from collections.abc import Callable
from typing import Any

from idrop._cli_types import positive_int
from idrop.experiments import ResultDir, Run, RunKey, RunRegistry, run_grid
from idrop.experiments._command import command_line

from . import _grid, _report
from ._data import MnistData as MnistData
from ._data import load_data as load_data

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
    beta_grid: tuple[float, ...]
    batch_size: int = 100
    learning_rate: float = 1e-3
    lr_drops: tuple[int, ...] = ()
    beta: float = 1.0  # the run's own beta; each Information Dropout key sets it (see resolve)
    max_alpha: float = 0.7
    alpha_rank: int | None = None  # Information Dropout's alpha branch: None = the paper's full map
    dropout_rate: float = 0.5
    lognormal_alpha: float = 0.7
    limit_train: int | None = None
    n_valid: int = 1000
    n_train: int = 0
    data_source: str = ""
    command: str = ""

    def keys(self) -> list[RunKey]:
        """The grid, methods outermost so a partial result folder already compares methods."""
        names = [m for m in self.methods if m != "information"]
        if "information" in self.methods:
            names += [_report.information_key(b) for b in self.beta_grid]
        return [RunKey(m, w, s) for m in names for w in self.widths for s in range(self.seeds)]

    def resolve(self, method: str) -> tuple[str, MnistConfig]:
        """The network's method and the run's config: ``information-b0.3`` -> ``("information", beta=0.3)``."""
        base, beta = _report.split_method(method)
        return base, self if beta is None else dataclasses.replace(self, beta=beta)

    def lr_at(self, epoch: int) -> float:
        """The lr of 1-based ``epoch``: divided by 10 once for each drop epoch before it."""
        return self.learning_rate * 0.1 ** sum(d < epoch for d in self.lr_drops)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready settings, with the experiment's name."""
        return {"experiment": EXPERIMENT, **dataclasses.asdict(self)}


#: The paper's text (Sec. 6, Fig. 3a); see docs/reproduction.md for the quotes and what is not traceable.
PAPER: dict[str, Any] = {
    "widths": (256, 512, 1024, 2048),  # idrop choice: Fig. 3a's exact unit counts are not traceable offline
    "methods": METHODS,
    "seeds": 3,  # "3 runs"
    "epochs": 80,  # 80 epochs
    "learning_rate": 0.01,  # Adam, lr 0.01
    "lr_drops": (30, 60),  # divided by 10 after epochs 30 and 60
    "max_alpha": 0.5,  # alpha < 0.5
    "beta_grid": (0.3, 1.0, 3.0),  # idrop choice (the text gives no grid), chosen on validation
    "limit_train": None,
    "n_valid": 10000,  # idrop choice: the usual 50,000 / 10,000 split of the training images
}
#: A small-network check on 2 CPU cores: 5,000 images (the offline set), two sizes, three methods.
QUICK: dict[str, Any] = {
    "widths": (32, 128),
    "methods": ("none", "binary", "information"),
    "seeds": 3,
    "epochs": 20,  # CPU budget; the paper's schedule scaled by 20/80:
    "learning_rate": 0.01,  # the paper's Adam lr
    "lr_drops": (8, 15),  # the paper's drops after 30 and 60 of 80 epochs, at the same fractions
    "max_alpha": 0.5,  # the paper's cap
    "beta_grid": (0.3, 1.0, 3.0),
    "limit_train": 5000,
    "n_valid": 1000,
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The MNIST-only options (the common ones come from :mod:`idrop.cli`)."""
    g = parser.add_argument_group("mnist options")
    g.add_argument(
        "--limit-train",
        type=int,
        metavar="N",
        default=None,
        help="use the first N training images, validation split included (default: 5000 with --quick, else all)",
    )
    g.add_argument(
        "--valid",
        type=int,
        metavar="N",
        default=None,
        dest="n_valid",
        help="training images held out to choose beta (default: 1000 with --quick, else 10000; "
        "at most a fifth of the training images)",
    )
    g.add_argument(
        "--alpha-rank",
        type=positive_int,
        metavar="R",
        default=None,
        help="Information Dropout with the cheap alpha branch of rank R (in -> R -> out; "
        "InfoDropout(alpha_rank=R)) instead of the paper's full alpha map (default)",
    )
    g.add_argument("--batch-size", type=int, metavar="N", default=None, help="minibatch size (default: 100)")
    g.add_argument("--lr", type=float, metavar="LR", default=None, help="Adam learning rate (default: the setting's)")
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
    """Resolve the settings: explicit options over ``--quick``/paper defaults over the dataclass's.

    ``--beta B`` replaces the grid by ``(B,)``. The validation split is at most a fifth of the
    training images used, so a small ``--limit-train`` still leaves most of them for training.
    """
    base = dict(QUICK if args.quick else PAPER)
    overrides = {
        "widths": args.widths,
        "methods": args.methods,
        "seeds": args.seeds,
        "epochs": args.epochs,
        "beta_grid": None if args.beta is None else (args.beta,),
        "max_alpha": args.max_alpha,
        "limit_train": getattr(args, "limit_train", None),
        "n_valid": getattr(args, "n_valid", None),
        "batch_size": getattr(args, "batch_size", None),
        "learning_rate": getattr(args, "lr", None),
        "alpha_rank": getattr(args, "alpha_rank", None),
    }
    base.update({k: v for k, v in overrides.items() if v is not None})
    limit = base.get("limit_train")
    n_used = n_available if limit is None else min(int(limit), n_available)
    n_valid = min(int(base.pop("n_valid")), n_used // 5)
    return MnistConfig(
        backend=args.backend,
        widths=tuple(int(w) for w in base.pop("widths")),
        methods=tuple(base.pop("methods")),
        beta_grid=tuple(float(b) for b in base.pop("beta_grid")),
        lr_drops=tuple(base.pop("lr_drops")),
        n_valid=n_valid,
        n_train=n_used - n_valid,
        data_source=source,
        command=command_line(),
        **base,
    )


def backend_module(backend: str) -> Any:
    """The backend's model-and-train-step module (imports its framework)."""
    return importlib.import_module(f"idrop.experiments.mnist.{backend}")


def run(args: argparse.Namespace) -> int:
    """Train (or resume) the grid and write the summary; return the exit status."""
    splits, source = load_data(args.data_dir)
    config = config_from_args(args, len(splits.x_train), source)
    if config.n_valid < 1:
        print("idrop: error: too few training images to carve a validation split", file=sys.stderr)
        return 2
    data, _ = load_data(args.data_dir, config)
    devices = getattr(args, "devices", None)
    if devices is not None and devices < 1:
        print(f"idrop: error: --devices must be >= 1; received {devices}", file=sys.stderr)
        return 2
    module = backend_module(args.backend)
    try:
        replica = module.Replica(args.device, devices) if hasattr(module, "Replica") else _grid.SingleProcess()
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
        make_run = lambda key: _grid.StopAfter(inner(key), limit, trained)  # noqa: E731
    if not replica.is_main:
        _grid.follow_grid(results, registry, config.keys(), make_run, config.epochs)
        return 0
    progress = not args.no_progress
    if progress:
        name = module.device_name(args.device) + (f" x {devices}" if devices > 1 else "")
        print(
            f"mnist on {args.backend} ({name}): {len(config.keys())} runs, n_train={config.n_train}, "
            f"n_valid={config.n_valid}, {source}",
            flush=True,
        )
    run_grid(results, config.keys(), make_run, epochs=config.epochs, progress=progress)
    summary = _report.write_summary(results, config)
    if results.checkpoints.is_dir() and not any(results.checkpoints.iterdir()):
        results.checkpoints.rmdir()  # finished runs delete their checkpoints; leave no empty folder behind
    if progress:
        print(results.table.read_text())
    return 0 if summary else 1
