"""Variational autoencoder on binarised MNIST (paper Sec. 5): Gaussian vs Information Dropout latent.

Kingma & Welling's basic VAE (one tanh hidden layer of ``512 k`` units in encoder and
decoder, ``256 k`` latent units, Bernoulli decoder), trained by maximising the ELBO.

* ``gaussian``: ``q(z|x) = N(mu(x), s(x)^2)``, prior ``N(0, 1)``: the classic VAE.
* ``information``: the paper's Information Dropout latent, ``z = softplus(W h) * exp(alpha * eps)``
  with ``alpha = alpha_min + max_alpha * sigmoid(.)`` learned per unit and the log-normal prior
  ``log z ~ N(mu, sigma^2)`` with learnable scalars ``mu``, ``sigma`` (eq. 4, the official
  mean term). Its KL is exactly ``KL(q(z|x) || p(z))`` (``log`` is a bijection), so with
  ``beta = 1`` the IB loss is the negative ELBO and the two bounds compare directly.

The reported number is the test ELBO in nats (higher is better), a one-sample Monte Carlo
estimate averaged over the test set (``--eval-samples`` passes). Images are binarised once
by sampling Bernoulli(pixel) with a fixed seed.

Outputs in ``<out>/vae/<backend>/``: ``results.json`` and ``table.md``.
"""

from __future__ import annotations

import argparse
import importlib
import math
from typing import Any

import numpy as np

from idrop.data import binarize, mnist_splits
from idrop.experiments import ResultDir, atomic_write_json, atomic_write_text
from idrop.experiments._common import backend_of, epochs_of, prepare, progress_of, seeds_of

QUICK = {"ks": [1.0], "scale": 8.0, "epochs": 5}
FULL = {"ks": [0.5, 1.0, 2.0], "scale": 1.0, "epochs": 100}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of this experiment beyond the CLI's common ones."""
    g = parser.add_argument_group("vae")
    g.add_argument("--k", type=float, nargs="+", dest="ks", help="size multipliers: hidden 512k, latent 256k")
    g.add_argument("--scale", type=float, help="divide hidden and latent sizes by this (quick: 8)")
    g.add_argument("--latents", nargs="+", choices=("gaussian", "information"), default=["gaussian", "information"])
    g.add_argument("--max-alpha", type=float, default=1.0, help="cap of the Information Dropout latent's alpha")
    g.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    g.add_argument("--batch-size", type=int, default=100)
    g.add_argument("--eval-samples", type=int, default=1, help="latent samples per test image for the ELBO")


def config_of(args: argparse.Namespace) -> dict[str, Any]:
    """The settings of a run: explicit options, else the quick or full defaults."""
    base = QUICK if getattr(args, "quick", False) else FULL

    def pick(name: str) -> Any:
        value = getattr(args, name, None)
        return base[name] if value is None else value

    return {
        "backend": backend_of(args, "vae"),
        "device": getattr(args, "device", None),
        "ks": [float(k) for k in pick("ks")],
        "scale": float(pick("scale")),
        "latents": list(args.latents),
        "max_alpha": args.max_alpha,
        "lr": args.lr,
        "batch_size": args.batch_size,
        "eval_samples": args.eval_samples,
        "epochs": epochs_of(args, QUICK["epochs"], FULL["epochs"]),
        "seeds": seeds_of(args),
        "optimizer": "adam",
        "binarize": "stochastic, seed 0",
    }


def make_data(splits: Any) -> dict[str, np.ndarray]:
    """Binarised train and test images, ``[n, 784]`` float32 of 0s and 1s."""
    return {
        "x_train": binarize(np.asarray(splits[0]).reshape(len(splits[0]), -1), mode="stochastic", seed=0),
        "x_test": binarize(np.asarray(splits[2]).reshape(len(splits[2]), -1), mode="stochastic", seed=1),
    }


def write_results(results: ResultDir, cfg: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    """``results.json`` (every run, and mean per latent and k) and ``table.md``."""
    groups: dict[tuple[str, float], list[float]] = {}
    for r in rows:
        groups.setdefault((r["method"], float(r["width"])), []).append(float(r["test_elbo"]))
    summary = [
        {
            "latent": lat,
            "k": k,
            "hidden": round(512 * k / cfg["scale"]),
            "latent_units": round(256 * k / cfg["scale"]),
            "n": len(v),
            "test_elbo": sum(v) / len(v),
        }
        for (lat, k), v in sorted(groups.items())
    ]
    atomic_write_json(results.results_json, {"config": cfg, "summary": summary, "runs": rows})
    lines = ["| latent | k | hidden / latent units | seeds | test ELBO (nats) |", "|---|---|---|---|---|"]
    for s in summary:
        elbo = f"{s['test_elbo']:.2f}" if math.isfinite(s["test_elbo"]) else "nan"
        lines.append(f"| {s['latent']} | {s['k']:g} | {s['hidden']} / {s['latent_units']} | {s['n']} | {elbo} |")
    atomic_write_text(
        results.table,
        "\n".join(lines) + "\n\nTest ELBO: one-sample estimate, mean over the test set; higher is better.\n",
    )


def run(args: argparse.Namespace, splits: Any = None) -> int:
    """Train every (latent, k, seed); return 0. ``splits`` overrides MNIST (for tests)."""
    cfg = config_of(args)
    splits = splits if splits is not None else mnist_splits(getattr(args, "data_dir", None))
    results = ResultDir.create(getattr(args, "out", None) or "results", "vae", cfg["backend"])
    prepare(results, {**cfg, "source": splits[4]}, bool(getattr(args, "resume", False)))
    trainer = importlib.import_module(f"idrop.experiments.vae.{cfg['backend']}")
    rows = trainer.train_all(results, cfg, make_data(splits), progress=progress_of(args))
    write_results(results, cfg, rows)
    print(results.table.read_text())
    return 0
