"""The experiment's table, ``results.json`` and heat-map figure (framework-free)."""

from __future__ import annotations

from typing import Any

import numpy as np

from idrop.experiments import ResultDir, atomic_write_json, atomic_write_text

from ._evaluate import N_LAYERS

#: A network that misclassifies more than this is not a basis for any localisation figure (issue 13).
MAX_ERROR = 0.15

_HEADER = (
    "| network | beta | test error (%) | layer | KL share in box | ink share | energy share | box share "
    "| **KL/ink** | **KL/energy** | KL above floor / ink | KL/box (raw, ink-inflated) |"
)


def _lines(label: str, row: dict[str, Any]) -> list[str]:
    beta = "-" if row.get("beta") is None else f"{row['beta']:g}"
    out = []
    error = f"{100 * row['test_error']:.1f}"
    if row.get("beta") is not None and row["test_error"] > MAX_ERROR:  # a trained network that does not classify
        error += " (> 15%: not quoted)"
    for i in range(1, N_LAYERS + 1):
        p = f"layer{i}_"
        if p + "kl_share" not in row:
            continue
        out.append(
            f"| {label} | {beta} | {error} | {i} ({row[p + 'size']}x{row[p + 'size']}) "
            f"| {row[p + 'kl_share']:.3f} | {row[p + 'ink_share']:.3f} | {row[p + 'energy_share']:.3f} "
            f"| {row[p + 'box_share']:.3f} | **{row[p + 'kl_over_ink']:.2f}** | **{row[p + 'kl_over_energy']:.2f}** "
            f"| {_fmt(row.get(p + 'excess_kl_over_ink'))} | {row[p + 'kl_over_box']:.2f} |"
        )
    return out


def write_results(
    results: ResultDir, cfg: dict[str, Any], rows: list[dict[str, Any]], untrained: list[dict[str, Any]]
) -> dict[str, Any]:
    """``results.json`` (every run, the untrained networks, the config) and ``table.md``."""
    runs = sorted(rows, key=lambda r: (r["beta"] if "beta" in r else _beta(r), r["seed"]))
    for r in runs:
        r.setdefault("beta", _beta(r))
    lines = [_HEADER, "|" + "---|" * 12]
    for seed, u in zip(cfg["seeds"], untrained):
        lines += _lines(f"untrained (seed {seed})", {**u, "beta": None})
    for r in runs:
        lines += _lines(f"trained (seed {r['seed']})", r)
    note = (
        f"\nShares: of each map's mass inside the digit's box, averaged over {cfg['n_test']} test images; "
        "KL = noiseless KL per position summed over channels; ink = input pixels summed per grid cell; "
        "energy = sum over channels of the layer's squared noiseless activations. KL/ink = 1: the KL "
        "follows the ink, no more. KL above floor: each map minus its minimum (as the official heat maps). "
        "KL/box is the earlier, raw measure: ink alone inflates it.\n"
    )
    atomic_write_text(results.table, "\n".join(lines) + "\n" + note)
    summary = {"config": cfg, "untrained": list(untrained), "runs": runs}
    atomic_write_json(results.results_json, summary)
    return summary


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"  # results written before the column existed


def _beta(row: dict[str, Any]) -> float:
    return float(row["method"][len("beta") :])


def plot_heatmaps(results: ResultDir, cfg: dict[str, Any], data: dict[str, np.ndarray]) -> str:
    """One PNG like Fig. 2: rows = shown images x layers 1-3; columns = input, untrained, each beta.

    Each map is shown minus its minimum (as the official ``cluttered.py:220``), on its own scale,
    over the canvas so the digit's box drawn on it lines up with the input.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    seed = cfg["seeds"][0]
    names = [("untrained", f"untrained_s{seed}")] + [
        (f"beta={b:g}", f"beta{b:g}_w{float(cfg['widths'][0]):g}_s{seed}") for b in cfg["betas"]
    ]
    maps = {label: np.load(results.root / "kl_maps" / f"{name}.npz") for label, name in names}
    shown = min(cfg["show"], len(data["x_test"]))
    rows, cols, c = shown * N_LAYERS, 1 + len(names), cfg["canvas"]
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.6 * rows), squeeze=False)
    for img in range(shown):
        y0, x0, y1, x1 = data["boxes_test"][img]
        for layer in range(1, N_LAYERS + 1):
            r = img * N_LAYERS + layer - 1
            axes[r, 0].imshow(data["x_test"][img], cmap="gray", extent=(0, c, c, 0))
            axes[r, 0].set_ylabel(f"image {img}, L{layer}", fontsize=7)
            for col, (label, _) in enumerate(names, start=1):
                m = maps[label][f"layer{layer}"][img]
                axes[r, col].imshow(m - m.min(), cmap="inferno", extent=(0, c, c, 0))
                if r == 0:
                    axes[r, col].set_title(f"KL, {label}", fontsize=8)
            for col in range(cols):
                axes[r, col].add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec="cyan", lw=0.7))
    axes[0, 0].set_title("input", fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"KL per position, Information Dropout layers 1-{N_LAYERS} ({cfg['backend']})", fontsize=9)
    fig.tight_layout()
    path = results.plot("heatmaps")
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return str(path)
