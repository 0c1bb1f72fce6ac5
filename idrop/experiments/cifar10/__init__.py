"""CIFAR-10 with All-CNN-32 (paper Table 2a, Fig. 3b): Information vs binary dropout, per filter percentage.

The full setting is the official pipeline (``ucla-vision/information-dropout``): the network of
``cifar.py`` (:class:`idrop.experiments.nets.torch.AllCNN32`), its loss (cross-entropy
+ ``beta * KL / n_train`` + weight decay), Nesterov momentum 0.9, lr 0.05 divided by 10 after
epochs 80, 120 and 160 of 200, batch 100, no augmentation, and the inputs of
``process_cifar.py``: each image normalised to zero mean and unit (ddof=1) standard deviation,
then ZCA-whitened with ``1 / (sqrt(eigenvalue) + 1e-5)`` fitted on the training set. Before
testing, batch-norm statistics are re-estimated in a noiseless pass over the training set (the
official ``dry_run``). Every value is pinned to its official file:line in
``tests/experiments/test_exp_cifar10.py`` and listed in ``docs/reproduction.md``.

``--flip`` adds random horizontal flips (not in the official code). ``--quick`` is a pipeline
check (5,000/1,000 images, filter percentage 0.25, 2 epochs), not a result.

Outputs in ``<out>/cifar10/<backend>/``: ``config.json``, ``results.json``, ``results.csv``,
``table.md`` (test error per method and filter percentage) and ``error_vs_width.png``.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
from typing import Any

import numpy as np

from idrop.data import apply_zca, fit_zca, load_cifar10, stratified_subset
from idrop.experiments import ResultDir, write_summary
from idrop.experiments._command import command_line
from idrop.experiments._common import backend_of, prepare, progress_of


@dataclasses.dataclass(frozen=True)
class CifarConfig:
    """Every setting that decides the numbers (written to ``config.json``); sources in the comments."""

    filter_percentages: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)  # Fig. 3b's x axis; cifar.py:36 (one per run)
    methods: tuple[str, ...] = ("information", "binary")  # cifar.py:30, :113 ('none' also available)
    activation: str = "relu"  # cifar.py:31; 'softplus' = the official named config (cifar.py:39-42)
    beta: float = 3.0  # cifar.py:32
    max_alpha: float = 0.7  # cifar.py:33
    lr: float = 0.05  # cifar.py:18
    lr_drops: tuple[int, ...] = (80, 120, 160)  # cifar.py:19-21; x0.1 each (task.py:17, :185-192)
    epochs: int = 200  # cifar.py:22
    batch_size: int = 100  # cifar.py:17
    optimizer: str = "nesterov-momentum-0.9"  # cifar.py:25 -> task.py:121-122
    weight_decay: float = 1e-3  # cifar.py:35, on every trainable variable (cifar.py:161-162)
    input_dropout: float = 0.2  # 1 - initial_keep_prob 0.8 (cifar.py:24, :125)
    dropout_rate: float = 0.5  # 1 - keep_prob 0.5 (cifar.py:23, :115)
    preprocessing: str = "per-image-zca"  # process_cifar.py:78-83, :100-106; 'per-channel' is the other choice
    zca_regularizer: float = 1e-5  # added to sqrt(eigenvalue) (process_cifar.py:43, :53)
    flip: bool = False  # the official code has no augmentation
    n_train: int | None = None  # all 50,000 (process_cifar.py:96)
    n_test: int | None = None  # all 10,000 (process_cifar.py:98)
    seeds: tuple[int, ...] = (0,)  # the official code takes sacred's random seed (task.py:143)
    backend: str = "torch"
    device: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready settings, lists for tuples."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


FULL = CifarConfig()
#: A pipeline check on a CPU, not a result: small data and network, two epochs, no lr drop.
QUICK = dataclasses.replace(FULL, filter_percentages=(0.25,), epochs=2, lr_drops=(), n_train=5000, n_test=1000)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of this experiment beyond the CLI's common ones (each defaults to the full or quick setting)."""
    g = parser.add_argument_group("cifar10")
    g.add_argument(
        "--methods", nargs="+", choices=("information", "binary", "none"), help="noise at the stride-2 convs"
    )
    g.add_argument("--filter-percentage", type=float, nargs="+", dest="filter_percentages", help="scales of 96/192")
    g.add_argument("--activation", choices=("relu", "softplus"), help="relu: log-uniform prior; softplus: log-normal")
    g.add_argument("--beta", type=float)
    g.add_argument("--max-alpha", type=float)
    g.add_argument("--lr", type=float)
    g.add_argument("--lr-drops", type=int, nargs="*", help="epochs after which the lr is divided by 10")
    g.add_argument("--weight-decay", type=float)
    g.add_argument("--batch-size", type=int)
    g.add_argument("--preprocessing", choices=("per-image-zca", "per-channel"))
    g.add_argument("--flip", action="store_true", default=None, help="random horizontal flips (not official)")
    g.add_argument("--n-train", type=int, help="N training images, equally many per class (default all)")
    g.add_argument("--n-test", type=int, help="N test images, equally many per class (default all)")


def config_of(args: argparse.Namespace) -> CifarConfig:
    """The settings of a run: explicit options over the quick or full setting."""
    base = QUICK if getattr(args, "quick", False) else FULL
    names = [f.name for f in dataclasses.fields(CifarConfig)]
    chosen = {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}
    for n in ("filter_percentages", "methods", "lr_drops"):
        if n in chosen:
            chosen[n] = tuple(chosen[n])
    if getattr(args, "seeds", None) is not None:
        chosen["seeds"] = tuple(range(args.seeds))
    chosen["backend"] = backend_of(args, "cifar10")
    return dataclasses.replace(base, **chosen)


def normalize_per_image(x: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """Each image minus its mean, over its (ddof=1) standard deviation; ``< eps`` -> 1 (process_cifar.py:78-83)."""
    x = np.asarray(x, dtype=np.float64)
    x = x - x.mean(axis=(1, 2, 3), keepdims=True)
    std = np.sqrt(x.var(axis=(1, 2, 3), ddof=1, keepdims=True))
    return x / np.where(std < eps, 1.0, std)


def preprocess(x_train: np.ndarray, x_test: np.ndarray, cfg: CifarConfig) -> tuple[np.ndarray, np.ndarray]:
    """The official inputs (per-image normalisation, then ZCA fitted on the training set) or per-channel."""
    if cfg.preprocessing == "per-channel":
        from idrop.data import channel_stats, normalize_channels

        mean, std = channel_stats(x_train)
        return normalize_channels(x_train, mean, std), normalize_channels(x_test, mean, std)
    tx, vx = normalize_per_image(x_train), normalize_per_image(x_test)
    mean, matrix = fit_zca(tx, epsilon=cfg.zca_regularizer, add_to="std")
    return apply_zca(tx, mean, matrix), apply_zca(vx, mean, matrix)


def make_data(cfg: CifarConfig, data_dir: Any = None) -> tuple[dict[str, np.ndarray], str]:
    """Real CIFAR-10 (never downloaded implicitly offline: the loader's error names the file), preprocessed."""
    x_train, y_train, x_test, y_test, source = load_cifar10(data_dir, dtype="float32")
    x_train, y_train = stratified_subset(x_train, y_train, cfg.n_train)
    x_test, y_test = stratified_subset(x_test, y_test, cfg.n_test)
    x_train, x_test = preprocess(x_train, x_test, cfg)
    data = {
        "x_train": x_train,
        "y_train": y_train.astype(np.int64),
        "x_test": x_test,
        "y_test": y_test.astype(np.int64),
    }
    return data, f"{source}; used {len(x_train):,} train / {len(x_test):,} test"


def lr_at(cfg: dict[str, Any], epoch: int) -> float:
    """The lr of 1-based ``epoch``: divided by 10 once for every drop epoch before it (task.py:184-192)."""
    return cfg["lr"] * 0.1 ** sum(d < epoch for d in cfg["lr_drops"])


def run(args: argparse.Namespace) -> int:
    """Train the grid, summarise; return 0. Missing CIFAR-10 raises ``DataNotFoundError`` (naming the file)."""
    cfg = config_of(args)
    data, source = make_data(cfg, getattr(args, "data_dir", None))
    results = ResultDir.create(getattr(args, "out", None) or "results", "cifar10", cfg.backend)
    config = {**cfg.as_dict(), "device": getattr(args, "device", None), "source": source, "command": command_line()}
    prepare(results, config, bool(getattr(args, "resume", False)))
    trainer = importlib.import_module(f"idrop.experiments.cifar10.{cfg.backend}")
    rows = trainer.train_all(results, config, data, progress=progress_of(args))
    write_summary(results, rows)
    print(results.table.read_text())
    return 0
