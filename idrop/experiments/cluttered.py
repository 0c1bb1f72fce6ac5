"""Cluttered MNIST (paper Sec. 6, Fig. 2): where does Information Dropout let information through?

All-CNN-96 is trained at several ``beta``; for test images, the KL divergence of each
Information Dropout layer, summed over channels, gives a heat map per position. The paper's
claim is that, as ``beta`` grows, the KL (the information let through) concentrates on the
digit and the clutter is dropped. The number reported is the share of KL mass inside the
digit's bounding box (from the generator, scaled to the layer's grid) against the share of
the grid the box covers: a ratio of 1 is no localisation.

Outputs in ``<out>/cluttered/<backend>/``: ``heatmaps.png`` (rows: images; columns: the input,
then one heat map per beta), ``results.json``, ``table.md``, ``kl_maps/`` (the plotted maps).
"""

from __future__ import annotations

import argparse
import importlib
from typing import Any

import numpy as np

from idrop.data import cluttered_mnist, mnist_splits
from idrop.experiments import ResultDir, atomic_write_json, atomic_write_text

from ._common import backend_of, epochs_of, prepare, progress_of, seeds_of

# Quick: sized for a few minutes on 2 CPU cores (one conv per block, a quarter of the channels).
# A large lr lets alpha and the prior's mu reach the background within the quick run's ~100 steps.
QUICK = {
    "n_train": 1000,
    "n_test": 500,
    "filter_percentage": 0.25,
    "betas": [0.01, 0.3, 3.0],
    "epochs": 3,
    "convs_per_block": 1,
    "lr": 1e-2,
    "batch_size": 32,
}
FULL = {
    "n_train": 50000,
    "n_test": 10000,
    "filter_percentage": 1.0,
    "betas": [0.01, 0.1, 1.0, 3.0],
    "epochs": 40,
    "convs_per_block": 3,
    "lr": 1e-3,
    "batch_size": 64,
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of this experiment beyond the CLI's common ones."""
    g = parser.add_argument_group("cluttered")
    g.add_argument("--betas", type=float, nargs="+", help="IB Lagrange multipliers (quick: 0.01 0.3 3)")
    g.add_argument("--filter-percentage", type=float, help="scale of All-CNN-96's channel widths (quick: 0.25)")
    # softplus + log-normal prior by default: the prior's learnable mu settles on the (uniform)
    # background, whose KL then vanishes; with relu + log-uniform prior the quick run does not
    # localise (KL in box 0.5x the box share at beta 3 in our runs).
    g.add_argument(
        "--activation",
        choices=("relu", "softplus"),
        default="softplus",
        help="softplus: log-normal prior (default); relu: log-uniform prior",
    )
    g.add_argument("--max-alpha", type=float, default=0.7, help="cap of the noise scale alpha")
    g.add_argument("--canvas", type=int, default=96, help="canvas side in pixels")
    g.add_argument("--distractors", type=int, default=8, help="clutter crops per image")
    g.add_argument("--n-train", type=int, help="training images (quick: 3000)")
    g.add_argument("--n-test", type=int, help="test images (quick: 500)")
    g.add_argument("--convs-per-block", type=int, help="3x3 convs per block incl. the stride-2 one (paper: 3)")
    g.add_argument("--batch-size", type=int, help="quick: 32, full: 64")
    g.add_argument("--lr", type=float, help="Adam learning rate (quick: 1e-2, full: 1e-3)")
    g.add_argument("--threads", type=int, help="torch intra-op threads (1 is fastest on a busy small CPU)")
    g.add_argument("--show", type=int, default=4, help="test images in the heat-map figure")
    g.add_argument(
        "--heatmap-layer",
        type=int,
        default=1,
        help="which Information Dropout layer (1 = first, 48x48 on a 96 canvas) the figure shows",
    )


def config_of(args: argparse.Namespace) -> dict[str, Any]:
    """The settings of a run: explicit options, else the quick or full defaults."""
    base = QUICK if getattr(args, "quick", False) else FULL

    def pick(name: str) -> Any:
        value = getattr(args, name, None)
        return base[name] if value is None else value

    return {
        "backend": backend_of(args, "cluttered"),
        "device": getattr(args, "device", None),
        "betas": [float(b) for b in pick("betas")],
        "filter_percentage": float(pick("filter_percentage")),
        "convs_per_block": int(pick("convs_per_block")),
        "activation": args.activation,
        "max_alpha": args.max_alpha,
        "canvas": args.canvas,
        "distractors": args.distractors,
        "n_train": int(pick("n_train")),
        "n_test": int(pick("n_test")),
        "batch_size": int(pick("batch_size")),
        "lr": float(pick("lr")),
        "show": args.show,
        "heatmap_layer": args.heatmap_layer,
        "threads": args.threads,
        "epochs": epochs_of(args, QUICK["epochs"], FULL["epochs"]),
        "seeds": seeds_of(args),
        "optimizer": "adam",
    }


def make_data(cfg: dict[str, Any], data_dir: Any = None, splits: Any = None) -> tuple[dict[str, np.ndarray], str]:
    """Cluttered train / test sets from MNIST training / test digits (no digit crosses the split)."""
    splits = splits if splits is not None else mnist_splits(data_dir)
    kw = {"canvas": cfg["canvas"], "n_distractors": cfg["distractors"]}
    train = cluttered_mnist(splits[0], splits[1], cfg["n_train"], seed=0, **kw)
    test = cluttered_mnist(splits[2], splits[3], cfg["n_test"], seed=1, **kw)
    data = {
        "x_train": train.images,
        "y_train": train.labels,
        "boxes_train": train.boxes,
        "x_test": test.images,
        "y_test": test.labels,
        "boxes_test": test.boxes,
    }
    return data, f"Cluttered MNIST {cfg['canvas']}x{cfg['canvas']} from {splits[4]}"


def plot_heatmaps(results: ResultDir, cfg: dict[str, Any], data: dict[str, np.ndarray]) -> str:
    """One PNG like the paper's Fig. 2: rows are images, columns the input then one map per beta."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    seed, layer = cfg["seeds"][0], f"layer{cfg['heatmap_layer']}"
    maps = {
        b: np.load(results.root / "kl_maps" / f"beta{b:g}_w{cfg['filter_percentage']:g}_s{seed}.npz")[layer]
        for b in cfg["betas"]
    }
    rows, cols = min(cfg["show"], len(data["x_test"])), 1 + len(cfg["betas"])
    fig, axes = plt.subplots(rows, cols, figsize=(2 * cols, 2 * rows), squeeze=False)
    for r in range(rows):
        y0, x0, y1, x1 = data["boxes_test"][r]
        axes[r, 0].imshow(data["x_test"][r], cmap="gray")
        axes[r, 0].add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, ec="lime", lw=1))
        for c, b in enumerate(cfg["betas"], start=1):
            # Each map spans the canvas, so the box drawn on the input lines up with it.
            axes[r, c].imshow(maps[b][r], cmap="inferno", extent=(0, cfg["canvas"], cfg["canvas"], 0))
            axes[r, c].add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec="cyan", lw=0.8))
            if r == 0:
                axes[r, c].set_title(f"KL, beta={b:g}", fontsize=9)
        if r == 0:
            axes[r, 0].set_title("input", fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"KL per position, Information Dropout layer {cfg['heatmap_layer']}", fontsize=10)
    fig.tight_layout()
    path = results.plot("heatmaps")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return str(path)


def write_results(results: ResultDir, cfg: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """``results.json`` (every run and layer) and ``table.md`` (KL share in box vs box share)."""
    layers = sorted({int(k[5:].split("_")[0]) for r in rows for k in r if k.startswith("layer")})
    lines = [
        "| beta | seed | test error (%) | " + " | ".join(f"L{i} KL in box / box share (ratio)" for i in layers) + " |",
        "|" + "---|" * (3 + len(layers)),
    ]
    for r in sorted(rows, key=lambda r: (r["beta"], r["seed"])):
        cells = [
            f"{100 * r[f'layer{i}_kl_share_in_box']:.1f}% / {100 * r[f'layer{i}_box_share']:.1f}% "
            f"({r[f'layer{i}_ratio']:.2f}x)"
            for i in layers
        ]
        lines.append(f"| {r['beta']:g} | {r['seed']} | {100 * r['test_error']:.1f} | " + " | ".join(cells) + " |")
    sizes = ", ".join(f"L{i}: {rows[0][f'layer{i}_size']}x{rows[0][f'layer{i}_size']}" for i in layers)
    note = (
        f"\nKL share: KL mass (summed over channels) inside the digit's box / total, averaged over "
        f"{cfg['n_test']} test images; box share: the box's share of the layer's grid ({sizes}).\n"
    )
    atomic_write_text(results.table, "\n".join(lines) + "\n" + note)
    summary = {"config": cfg, "runs": rows}
    atomic_write_json(results.results_json, summary)
    return summary


def run(args: argparse.Namespace, splits: Any = None) -> int:
    """Train, measure and plot; return 0. ``splits`` overrides the MNIST digits (for tests)."""
    cfg = config_of(args)
    results = ResultDir.create(getattr(args, "out", None) or "results", "cluttered", cfg["backend"])
    data, source = make_data(cfg, getattr(args, "data_dir", None), splits)
    prepare(results, {**cfg, "source": source}, bool(getattr(args, "resume", False)))
    trainer = importlib.import_module(f"idrop.experiments._cluttered_{cfg['backend']}")
    rows = trainer.train_all(results, cfg, data, progress=progress_of(args))
    write_results(results, cfg, rows)
    plot_heatmaps(results, cfg, data)
    print((results.table).read_text())
    return 0
