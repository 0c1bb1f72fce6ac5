"""Cluttered MNIST quick setting: the official full alpha conv vs the cheap alpha branch, side by side.

    .venv/bin/python results/cheap-alpha/summarize_cluttered.py

Reads the finished runs of ``cluttered/full`` and ``cluttered/r4`` (``state.json``; written by
``run_cluttered.sh``), and writes ``cluttered_table.md`` and ``cluttered_kl_over_ink.png``: for each
beta both ran, the test error and the ink-normalised localisation of layers 1-3 (KL share inside the
digit's box divided by the ink share there: 1 = the KL follows the ink and no more; see
:mod:`idrop.experiments.cluttered._measure`), and the same for the untrained networks (the control:
drawn as black ticks over the bars).
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
FOLDERS = {"full alpha conv": ("full", "full-beta0"), "cheap alpha, r=4": ("r4",)}
LAYERS = (1, 2, 3)


def _runs(folders: tuple[str, ...]) -> dict[float, dict]:
    runs = {}
    for folder in folders:
        state = HERE / "cluttered" / folder / "cluttered" / "torch" / "state.json"
        if state.exists():
            finished = json.loads(state.read_text())["finished"].values()
            runs.update({float(r["result"]["beta"]): r["result"] for r in finished})
    return runs


def _untrained(folders: tuple[str, ...]) -> dict | None:
    """The network before training (same seed, so the same in every folder of one network)."""
    for folder in folders:
        results = HERE / "cluttered" / folder / "cluttered" / "torch" / "results.json"
        untrained = json.loads(results.read_text()).get("untrained") if results.exists() else None
        if untrained:
            return untrained[0]
    return None


def main() -> None:
    runs = {name: _runs(folder) for name, folder in FOLDERS.items()}
    betas = sorted(set.intersection(*(set(r) for r in runs.values()))) if runs else []
    head = ["network", "beta", "test error (%)"] + [f"layer {i} KL/ink" for i in LAYERS]
    head += [f"layer {i} KL/energy" for i in LAYERS]
    lines = [
        "# Cluttered MNIST quick setting (torch, CPU): full alpha conv vs the cheap alpha branch",
        "",
        "Same data (48x48 canvas, 6 distractors, 10,000 training / 2,000 test images), seed 0, 8 epochs. "
        "KL/ink: share of the noiseless KL inside the digit's box over the ink share there (1: follows the ink, "
        "no more); KL/energy: the same over the share of the squared activations.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for name, folder in FOLDERS.items():
        u = _untrained(folder)
        if u is not None:
            lines.append(_line(f"{name}, untrained", "-", u))
    for beta in betas:
        for name in FOLDERS:
            lines.append(_line(name, f"{beta:g}", runs[name][beta]))
    only = {name: sorted(set(r) - set(betas)) for name, r in runs.items()}
    for name, extra in only.items():
        for beta in extra:
            lines.append(_line(f"{name} (no full-alpha twin)", f"{beta:g}", runs[name][beta]))
    (HERE / "cluttered_table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    if betas:
        _plot(runs, betas, {name: _untrained(folder) for name, folder in FOLDERS.items()})


def _line(name: str, beta: str, r: dict) -> str:
    cells = [name, beta, f"{100 * r['test_error']:.1f}"]
    cells += [f"{r[f'layer{i}_kl_over_ink']:.2f}" for i in LAYERS]
    cells += [f"{r[f'layer{i}_kl_over_energy']:.2f}" for i in LAYERS]
    return "| " + " | ".join(cells) + " |"


def _plot(runs: dict[str, dict[float, dict]], betas: list[float], untrained: dict[str, dict | None]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, len(betas), figsize=(4 * len(betas), 3.2), squeeze=False)
    width = 0.38
    for ax, beta in zip(axes[0], betas):
        for k, name in enumerate(runs):
            values = [runs[name][beta][f"layer{i}_kl_over_ink"] for i in LAYERS]
            x = np.arange(len(LAYERS)) + (k - 0.5) * width
            ax.bar(x, values, width, label=name)
            u = untrained[name]
            if u is not None:  # the control: the same network before training
                control = [u[f"layer{i}_kl_over_ink"] for i in LAYERS]
                ax.plot(x, control, "k_", ms=14, mew=2, label="untrained (same network)" if k == 0 else None)
        ax.axhline(1.0, color="gray", lw=0.8, ls="--")
        ax.set_xticks(range(len(LAYERS)), [f"layer {i}" for i in LAYERS])
        ax.set_title(f"beta = {beta:g}")
        ax.set_ylabel("KL share / ink share in the digit box")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(HERE / "cluttered_kl_over_ink.png", dpi=120)


if __name__ == "__main__":
    main()
