"""The ``idrop`` command line: ``idrop reproduce EXPERIMENT [options]``.

Every experiment shares the options below and may add its own (its module's
``add_arguments``). No deep-learning framework is imported here: the experiment's
``run`` imports the backend it was asked for.

Errors: a user's mistake (an option out of range, a missing or corrupt data file, a
result folder that is locked, unwritable or damaged, a run whose loss diverged) ends as
one line ``idrop: error: <what> ... <fix>`` and a non-zero exit status (2, or 1 for a
diverged run, 130 for Ctrl-C); only a bug in idrop ends in a traceback.

Example:
    idrop reproduce mnist --quick --backend torch --data-dir data/mnist --out results
"""

from __future__ import annotations

import argparse
import errno
import sys
from collections.abc import Sequence
from typing import NoReturn

from . import __version__
from ._cli_types import check_option_types, max_alpha, nonnegative_float, positive_int
from .backends import BACKENDS
from .data import DataError, download_cifar10, download_mnist
from .experiments import ExperimentError, _lock, registry

METHODS = ("none", "binary", "gaussian", "lognormal", "information")


#: The dataset ``--download`` fetches for each experiment.
DATASETS = {"mnist": download_mnist, "cluttered": download_mnist, "vae": download_mnist, "cifar10": download_cifar10}
# OSErrors that come from the machine or the folders given, not from idrop: one line and the fix.
_DENIED = "fix the permissions, or choose another --out / --data-dir"
_OS_FIXES = {
    errno.ENOSPC: "free some disk space",
    errno.EDQUOT: "free some disk space",
    errno.EACCES: _DENIED,
    errno.EPERM: _DENIED,
    errno.EROFS: "choose a writable --out",
    errno.EISDIR: "a folder is where idrop reads or writes a file: move it away",
    errno.ENOTDIR: "a file is where idrop needs a folder: move it away",
}


class _Parser(argparse.ArgumentParser):
    """argparse with every usage error worded ``idrop: error: ...``, sub-commands included."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"idrop: error: {message}\n")


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _method_list(text: str) -> list[str]:
    values = [v.strip() for v in text.split(",") if v.strip()]
    bad = [v for v in values if v not in METHODS]
    if not values or bad:
        raise argparse.ArgumentTypeError(f"unknown method(s) {bad or text!r}; choose from {','.join(METHODS)}")
    return values


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every experiment accepts (an experiment may ignore some)."""
    g = parser.add_argument_group("common options")
    g.add_argument(
        "--backend", choices=BACKENDS, default="torch", help="framework that trains the models (default: torch)"
    )
    g.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="auto: the GPU when the backend sees one, else CPU (default: auto)",
    )
    g.add_argument(
        "--quick",
        action="store_true",
        help="the small setting that runs in minutes on a laptop CPU, instead of the paper's grid",
    )
    g.add_argument(
        "--data-dir",
        metavar="DIR",
        default=None,
        help="folder with the datasets, existing unless --download (default: $IDROP_DATA_DIR, else ~/.cache/idrop)",
    )
    g.add_argument(
        "--download",
        action="store_true",
        help="first download the experiment's full dataset (MNIST: the official 60,000 + 10,000 images; "
        "CIFAR-10) into the data folder, check its published MD5s and keep it for later runs; "
        "without it MNIST experiments use only the files already there",
    )
    g.add_argument("--out", metavar="DIR", default="runs", help="results go to DIR/EXPERIMENT/BACKEND/ (default: runs)")
    g.add_argument(
        "--resume",
        action="store_true",
        help="continue the runs in an existing result folder from their last checkpoint "
        "(without it, a non-empty folder is an error)",
    )
    g.add_argument(
        "--seeds",
        type=positive_int,
        metavar="N",
        default=None,
        help="seeds 0..N-1 per setting (default: from --quick or the paper setting)",
    )
    g.add_argument(
        "--epochs",
        type=positive_int,
        metavar="N",
        default=None,
        help="training epochs per run (default: from --quick or the paper setting)",
    )
    g.add_argument(
        "--widths",
        type=_int_list,
        metavar="W1,W2,...",
        default=None,
        help="hidden-layer widths, comma-separated (default: from --quick or the paper setting)",
    )
    g.add_argument(
        "--methods",
        type=_method_list,
        metavar="M1,M2,...",
        default=None,
        help=f"noise methods among {','.join(METHODS)} (default: from --quick or the paper setting)",
    )
    g.add_argument(
        "--beta",
        type=nonnegative_float,
        metavar="B",
        default=None,
        help="weight of the KL term of Information Dropout's loss (default: the experiment's)",
    )
    g.add_argument(
        "--max-alpha",
        type=max_alpha,
        metavar="A",
        default=None,
        help="cap of Information Dropout's noise scale alpha (default: the experiment's)",
    )
    g.add_argument("--no-progress", action="store_true", help="no progress bars or per-epoch lines")
    # For tests of kill-safe resume: exit with status 3 once this many epochs are saved.
    g.add_argument("--stop-after-epochs", type=positive_int, default=None, help=argparse.SUPPRESS)


def build_parser() -> argparse.ArgumentParser:
    """The full parser: one ``reproduce`` sub-command per registered experiment.

    An experiment whose module cannot be imported still gets a sub-command (with the
    common options) so ``--help`` lists it and running it explains what is missing.
    """
    parser = _Parser(
        prog="idrop", description="Information Dropout (Achille & Soatto 2016): reproduce the paper's experiments."
    )
    parser.add_argument("--version", action="version", version=f"idrop {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    reproduce = commands.add_parser(
        "reproduce",
        help="train and summarise one of the paper's experiments",
        description="Train the grid of runs of one experiment, checkpointing every epoch, then write "
        "table.md, results.json, results.csv and error_vs_width.png under OUT/EXPERIMENT/BACKEND/.",
    )
    experiments = reproduce.add_subparsers(dest="experiment", metavar="EXPERIMENT", required=True)
    for name in registry.EXPERIMENTS:
        # "resolve": an experiment may redefine a common option (say, another --epochs default)
        # without breaking the parser of every other experiment.
        sub = experiments.add_parser(
            name,
            help=registry.DESCRIPTIONS.get(name, ""),
            description=registry.DESCRIPTIONS.get(name),
            conflict_handler="resolve",
        )
        add_common_arguments(sub)
        try:
            module = registry.load(name)
        except registry.ExperimentUnavailable as err:
            sub.set_defaults(_unavailable=str(err))
            continue
        module.add_arguments(sub)
        check_option_types(sub)
        sub.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``idrop`` script and ``python -m idrop``; returns the exit status."""
    from .experiments import _command

    _command.ARGV = list(sys.argv[1:] if argv is None else argv)  # what config.json records as the command
    args = build_parser().parse_args(argv)
    if getattr(args, "_unavailable", None):
        return _error(args._unavailable)
    try:
        with _lock.released_after():  # this run's hold on its result folder ends with it
            return _run(args)
    except (ExperimentError, DataError) as err:
        return _error(str(err), getattr(err, "exit_code", 2))
    except KeyboardInterrupt:
        return _error(
            "interrupted. Every checkpointed epoch is kept: run the same command with --resume to continue.", 130
        )
    except OSError as err:
        if err.errno not in _OS_FIXES:
            raise
        where = f" ({err.filename})" if err.filename else ""
        return _error(
            f"{err.strerror}{where}; {_OS_FIXES[err.errno]}, then run the command again "
            "(with --resume to keep the epochs already checkpointed)."
        )


def _run(args: argparse.Namespace) -> int:
    from .experiments._common import check_device

    check_device(args.backend, args.device)
    if args.download:
        if args.experiment not in DATASETS:
            raise ExperimentError(f"--download: idrop knows no dataset of experiment {args.experiment!r}.")
        folder = DATASETS[args.experiment](args.data_dir)
        if not args.no_progress:
            print(f"{args.experiment}: full dataset checked and cached in {folder}", flush=True)
    func = registry.EXPERIMENTS[args.experiment].split(":")[1]
    return int(getattr(args._module, func)(args) or 0)


def _error(message: str, status: int = 2) -> int:
    print(f"idrop: error: {message}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
