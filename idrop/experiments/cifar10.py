"""CIFAR-10 with All-CNN-32 (paper Table 2a architecture, Fig. 3b): Information vs binary dropout.

The network and training follow the official ``cifar.py``: binary dropout 0.2 on the input,
the stride-2 conv of each block carrying the noise, batch norm on every conv, SGD with
momentum 0.9, lr 0.05 dropped tenfold at 50% and 75% of training, weight decay 1e-3, and a
noiseless pass over the training set to re-estimate batch-norm statistics before testing.
Inputs are normalised per channel with the training set's statistics.

Outputs in ``<out>/cifar10/<backend>/``: ``results.json``, ``results.csv``, ``table.md``
(test error per method and filter percentage) and ``error_vs_width.png``.
"""

from __future__ import annotations

import argparse
import importlib
from typing import Any

import numpy as np

from idrop.data import channel_stats, load_cifar10, normalize_channels, stratified_subset
from idrop.experiments import ResultDir, write_summary

from ._common import backend_of, epochs_of, prepare, progress_of, seeds_of

QUICK = {"filter_percentages": [0.25], "epochs": 2, "n_train": 5000, "n_test": 1000}
FULL = {"filter_percentages": [0.25, 0.5, 0.75, 1.0], "epochs": 80, "n_train": None, "n_test": None}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of this experiment beyond the CLI's common ones."""
    g = parser.add_argument_group("cifar10")
    g.add_argument(
        "--methods",
        nargs="+",
        choices=("information", "binary", "none"),
        default=["information", "binary"],
        help="noise at the stride-2 convs",
    )
    g.add_argument(
        "--filter-percentage",
        type=float,
        nargs="+",
        dest="filter_percentages",
        help="scales of the channel widths 96/192 (quick: 0.25)",
    )
    g.add_argument(
        "--activation",
        choices=("relu", "softplus"),
        default="softplus",
        help="relu: log-uniform prior; softplus: log-normal prior",
    )
    g.add_argument("--beta", type=float, default=3.0)
    g.add_argument("--max-alpha", type=float, default=0.7)
    g.add_argument("--lr", type=float, default=0.05)
    g.add_argument(
        "--lr-drops",
        type=float,
        nargs="*",
        default=[0.5, 0.75],
        help="fractions of training after which the lr is divided by 10",
    )
    g.add_argument("--weight-decay", type=float, default=1e-3)
    g.add_argument("--batch-size", type=int, default=128)
    g.add_argument("--n-train", type=int, help="N training images, equally many per class (quick: 5000; default all)")
    g.add_argument("--n-test", type=int, help="N test images, equally many per class (quick: 1000; default all)")


def config_of(args: argparse.Namespace) -> dict[str, Any]:
    """The settings of a run: explicit options, else the quick or full defaults."""
    base = QUICK if getattr(args, "quick", False) else FULL

    def pick(name: str) -> Any:
        value = getattr(args, name, None)
        return base[name] if value is None else value

    return {
        "backend": backend_of(args, "cifar10"),
        "device": getattr(args, "device", None),
        "methods": list(args.methods),
        "filter_percentages": [float(p) for p in pick("filter_percentages")],
        "activation": args.activation,
        "beta": args.beta,
        "max_alpha": args.max_alpha,
        "lr": args.lr,
        "lr_drops": list(args.lr_drops),
        "weight_decay": args.weight_decay,
        "batch_size": args.batch_size,
        "n_train": pick("n_train"),
        "n_test": pick("n_test"),
        "epochs": epochs_of(args, QUICK["epochs"], FULL["epochs"]),
        "seeds": seeds_of(args),
        "optimizer": "sgd-momentum-0.9",
        "input_dropout": 0.2,
    }


def make_data(cfg: dict[str, Any], data_dir: Any = None) -> tuple[dict[str, np.ndarray], str]:
    """Real CIFAR-10 (never downloaded implicitly offline: the loader's error names the file)."""
    x_train, y_train, x_test, y_test, source = load_cifar10(data_dir, dtype="float32")
    x_train, y_train = stratified_subset(x_train, y_train, cfg["n_train"])
    x_test, y_test = stratified_subset(x_test, y_test, cfg["n_test"])
    mean, std = channel_stats(x_train)
    data = {
        "x_train": normalize_channels(x_train, mean, std),
        "y_train": y_train.astype(np.int64),
        "x_test": normalize_channels(x_test, mean, std),
        "y_test": y_test.astype(np.int64),
    }
    return data, f"{source}; used {len(x_train):,} train / {len(x_test):,} test"


def run(args: argparse.Namespace) -> int:
    """Train the grid, summarise; return 0. Missing CIFAR-10 raises ``DataNotFoundError`` (naming the file)."""
    cfg = config_of(args)
    data, source = make_data(cfg, getattr(args, "data_dir", None))
    results = ResultDir.create(getattr(args, "out", None) or "results", "cifar10", cfg["backend"])
    prepare(results, {**cfg, "source": source}, bool(getattr(args, "resume", False)))
    trainer = importlib.import_module(f"idrop.experiments._cifar10_{cfg['backend']}")
    rows = trainer.train_all(results, cfg, data, progress=progress_of(args))
    write_summary(results, rows)
    print(results.table.read_text())
    return 0
