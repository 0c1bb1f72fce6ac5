"""Cluttered MNIST (paper Sec. 6, Fig. 2): does the KL let through concentrate on the digit?

A CNN with Information Dropout after each stride-2 conv is trained at several ``beta``
(including 0). For the test images, the noiseless KL of each of the first three Information
Dropout layers, summed over channels, is a map per position. The paper's claim is that, as
``beta`` grows, the KL concentrates on the digit and the clutter is dropped. Because the digit
is the densest ink on the canvas, any map that follows the ink is "concentrated on the digit";
so the figures reported divide the KL share inside the digit's box by the ink share and by
the activation-energy share inside it (see :mod:`._measure`), and the same figures are
reported for the untrained network (same architecture, initial weights).

Outputs in ``<out>/cluttered/<backend>/``: ``results.json``, ``table.md``, ``heatmaps.png``
(rows: images x layers; columns: the input, the untrained network, one map per beta) and
``kl_maps/`` (the plotted maps).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import shlex
import sys
from typing import Any

import numpy as np

from idrop._cli_types import positive_int
from idrop.data import cluttered_mnist, mnist_splits
from idrop.experiments import ResultDir
from idrop.experiments._common import backend_of, prepare, progress_of

from ._config import FULL, QUICK, ClutteredConfig
from ._evaluate import train_all
from ._report import plot_heatmaps, write_results

__all__ = ["FULL", "QUICK", "ClutteredConfig", "add_arguments", "config_of", "make_data", "run"]

_OWN = {
    "--betas": dict(type=float, nargs="+", help="beta grid (full: 0 0.1 0.25 0.5; quick: 0 0.05 0.1 0.5)"),
    "--canvas": dict(type=int, help="canvas side in pixels (full: 96; quick: 48)"),
    "--distractors": dict(type=int, help="8x8 clutter crops per image (full: 21; quick: 6)"),
    "--n-train": dict(type=int, help="training images (full: 60000; quick: 10000)"),
    "--n-test": dict(type=int, help="test images (full: 10000; quick: 2000)"),
    "--convs-per-block": dict(type=int, help="3x3 convs per block, the stride-2 one included (full: 3)"),
    "--top-width": dict(type=int, help="channels of the head's convs (full: 192)"),
    "--activation": dict(choices=("relu", "softplus"), help="relu (log-uniform prior, full) or softplus"),
    "--prior": dict(choices=("log-uniform", "log-normal"), help="default: log-uniform for relu, else log-normal"),
    "--lr": dict(type=float, help="Nesterov momentum learning rate (full: 0.01; quick: 0.05)"),
    "--lr-drops": dict(
        type=int, nargs="*", help="epochs after which lr is multiplied by 0.1 (full: 30 60; quick: 6 7)"
    ),
    "--batch-size": dict(type=int, help="full and quick: 128"),
    "--threads": dict(type=int, help="intra-op CPU threads of the backend"),
    "--show": dict(type=int, help="test images in the heat-map figure (default 3)"),
    "--alpha-rank": dict(
        type=positive_int,
        help="the cheap alpha branch of rank R (InfoDropout(alpha_rank=R)) instead of the official alpha conv",
    ),
}
#: Options the CLI may already define for every experiment; added here only when it does not.
_SHARED = {
    "--max-alpha": dict(type=float, help="cap of alpha (full: 1.0)"),
    "--widths": dict(type=lambda s: [int(v) for v in s.split(",")], help="channels per block, e.g. 32,64,96,192"),
    "--beta": dict(type=float, help="a single beta (instead of --betas)"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of this experiment beyond the CLI's common ones."""
    g = parser.add_argument_group("cluttered")
    for flag, kw in _OWN.items():
        g.add_argument(flag, default=None, **kw)
    for flag, kw in _SHARED.items():
        if flag not in parser._option_string_actions:  # the CLI's common options may hold it already
            g.add_argument(flag, default=None, **kw)


def _command_line() -> str:
    """The command that made the run, ``--resume`` left out (a resumed run is the same run)."""
    return shlex.join(["idrop" if i == 0 else a for i, a in enumerate(sys.argv) if a != "--resume"])


def config_of(args: argparse.Namespace) -> dict[str, Any]:
    """The run's settings: explicit options over the quick or full setting, as a JSON-able dict."""
    base = QUICK if getattr(args, "quick", False) else FULL
    changes: dict[str, Any] = {}
    for field in dataclasses.fields(ClutteredConfig):
        value = getattr(args, field.name, None)
        if value is not None:
            changes[field.name] = tuple(value) if isinstance(value, list) else value
    if getattr(args, "beta", None) is not None and getattr(args, "betas", None) is None:
        changes["betas"] = (float(args.beta),)
    if getattr(args, "seeds", None) is not None:
        changes["seeds"] = tuple(range(args.seeds))
    if "activation" in changes and "prior" not in changes:
        changes["prior"] = "log-uniform" if changes["activation"] == "relu" else "log-normal"
    cfg = dataclasses.replace(base, **changes)
    cfg.check()
    out = dataclasses.asdict(cfg)
    out.update(
        backend=backend_of(args, "cluttered"),
        device=getattr(args, "device", None),
        setting="quick" if getattr(args, "quick", False) else "full",
        command=_command_line(),
    )
    return out


def make_data(cfg: dict[str, Any], data_dir: Any = None, splits: Any = None) -> tuple[dict[str, np.ndarray], str]:
    """Cluttered train / test sets: training digits for training, test digits for testing (clutter too)."""
    splits = splits if splits is not None else mnist_splits(data_dir)
    kw = {"canvas": cfg["canvas"], "n_distractors": cfg["distractors"], "distractor_size": cfg["distractor_size"]}
    train = cluttered_mnist(splits[0], splits[1], cfg["n_train"], seed=0, **kw)
    test = cluttered_mnist(splits[2], splits[3], cfg["n_test"], seed=1, **kw)
    data = {
        "x_train": train.images,
        "y_train": train.labels,
        "x_test": test.images,
        "y_test": test.labels,
        "boxes_test": test.boxes,
    }
    source = (
        f"Cluttered MNIST {cfg['canvas']}x{cfg['canvas']}, {cfg['distractors']} distractors: "
        f"{cfg['n_train']} training images from {len(splits[0])} training digits, "
        f"{cfg['n_test']} test images from {len(splits[2])} test digits ({splits[4]})"
    )
    return data, source


def run(args: argparse.Namespace, splits: Any = None) -> int:
    """Train, measure (trained and untrained) and plot; return 0. ``splits`` overrides MNIST (tests)."""
    cfg = config_of(args)
    results = ResultDir.create(getattr(args, "out", None) or "results", "cluttered", cfg["backend"])
    data, source = make_data(cfg, getattr(args, "data_dir", None), splits)
    prepare(results, {**cfg, "source": source}, bool(getattr(args, "resume", False)))
    backend = importlib.import_module(f"idrop.experiments.cluttered.{cfg['backend']}")
    stop = getattr(args, "stop_after_epochs", None)
    rows = train_all(backend, results, cfg, data, progress=progress_of(args), stop=stop)
    untrained = [backend.untrained(cfg, data, results, seed) for seed in cfg["seeds"]]
    write_results(results, cfg, rows, untrained)
    plot_heatmaps(results, cfg, data)
    print(results.table.read_text())
    return 0
