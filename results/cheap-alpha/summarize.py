"""Combine the MNIST result folders of ``run_mnist.sh`` into one table and plot: full alpha vs the cheap alpha branch.

    .venv/bin/python results/cheap-alpha/summarize.py

Reads each folder's ``state.json`` (finished runs only, so a partial grid is summarised as far as
it went; a (method, beta, width) cell counts once all its seeds finished; the table says how many
betas of the grid the choice saw), chooses Information Dropout's beta per hidden-unit
count on the validation split exactly as ``idrop reproduce mnist`` does
(:func:`idrop.experiments.mnist._report.choose_beta`), and writes ``mnist_table.md``,
``mnist_summary.json`` and ``mnist_error_vs_units.png`` next to this file.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from idrop.experiments.mnist._report import choose_beta, information_key, welch_p

HERE = Path(__file__).resolve().parent
#: column -> (result folder, method in it)
VARIANTS = {
    "none": ("full", "none"),
    "binary": ("full", "binary"),
    "info, full alpha": ("full", "information"),
    "info, r=8": ("r8", "information"),
    "info, r=32": ("r32", "information"),
    "info, r=128": ("r128", "information"),
}


def _rows(folder: str) -> list[dict]:
    state = HERE / "mnist" / folder / "mnist" / "torch" / "state.json"
    if not state.exists():
        return []
    finished = json.loads(state.read_text())["finished"]
    seeds = json.loads((state.parent / "config.json").read_text())["seeds"]
    rows = [{"method": r["method"], "width": r["width"], "seed": r["seed"], **r["result"]} for r in finished.values()]
    # A beta of a partial grid takes part in the choice only once all its seeds finished.
    count: dict[tuple, int] = {}
    for r in rows:
        count[(r["method"], r["width"])] = count.get((r["method"], r["width"]), 0) + 1
    return [r for r in rows if count[(r["method"], r["width"])] == seeds]


def _errors(rows: list[dict], method: str, width: float) -> tuple[list[float], float | None]:
    """Test errors of ``method`` at ``width`` (Information Dropout: at the beta chosen on validation)."""
    beta = None
    if method == "information":
        beta = choose_beta(rows).get(width, {}).get("beta")
        if beta is None:
            return [], None
        method = information_key(beta)
    values = [r["test_error"] for r in rows if r["method"] == method and float(r["width"]) == width]
    return values, beta


def main() -> None:
    rows = {folder: _rows(folder) for folder in {f for f, _ in VARIANTS.values()}}
    widths = sorted({float(r["width"]) for rs in rows.values() for r in rs})
    cells: dict[str, dict[float, dict]] = {}
    for name, (folder, method) in VARIANTS.items():
        for w in widths:
            values, beta = _errors(rows[folder], method, w)
            if values:
                cells.setdefault(name, {})[w] = {"values": values, "beta": beta}
    lines = [
        "# MNIST quick protocol: full alpha vs the cheap alpha branch (torch, CPU)",
        "",
        "Test error (%), mean ± sample std over seeds (n); Information Dropout at the beta chosen on the "
        "validation split (in brackets). p: two-sided Welch t-test against full alpha | against binary dropout.",
        "",
        "| hidden units | " + " | ".join(VARIANTS) + " |",
        "|---:|" + "---:|" * len(VARIANTS),
    ]
    for w in widths:
        full = cells.get("info, full alpha", {}).get(w, {}).get("values", [])
        binary = cells.get("binary", {}).get(w, {}).get("values", [])
        out = [f"{w:g}"]
        for name in VARIANTS:
            c = cells.get(name, {}).get(w)
            if c is None:
                out.append("not run" if name == "info, r=128" and w < 512 else "missing")
                continue
            v = 100 * np.asarray(c["values"])
            sd = f"{v.std(ddof=1):.2f}" if len(v) > 1 else "n/a"
            text = f"{v.mean():.2f} ± {sd} ({len(v)})"
            if c["beta"] is not None:
                folder = VARIANTS[name][0]
                done = len(choose_beta(rows[folder])[w]["valid_error"])
                grid = len(
                    json.loads((HERE / "mnist" / folder / "mnist" / "torch" / "config.json").read_text())["beta_grid"]
                )
                text += f" [b={c['beta']:g}" + ("]" if done == grid else f", {done}/{grid} betas run]")
            if name.startswith("info, r="):
                p_full, p_bin = welch_p(c["values"], full), welch_p(c["values"], binary)
                text += f" p={_p(p_full)} / {_p(p_bin)}"
            out.append(text)
        lines.append("| " + " | ".join(out) + " |")
    lines += [
        "",
        "Validation error (%) per beta, the mean over seeds (the choice above takes the lowest):",
        "",
    ]
    for name, (folder, method) in VARIANTS.items():
        if method != "information":
            continue
        for w, entry in sorted(choose_beta(rows[folder]).items()):
            ve = ", ".join(f"{b:g}: {100 * e:.2f}" for b, e in sorted(entry["valid_error"].items()))
            lines.append(f"- {name}, {w:g} units: {ve}")
    (HERE / "mnist_table.md").write_text("\n".join(lines) + "\n")
    summary = {
        name: {f"{w:g}": {**c, "mean": float(np.mean(c["values"]))} for w, c in per.items()}
        for name, per in cells.items()
    }
    (HERE / "mnist_summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    _plot(cells)
    print("\n".join(lines))


def _p(p: float) -> str:
    return "n/a" if p is None or not math.isfinite(p) else f"{p:.2g}"


def _plot(cells: dict[str, dict[float, dict]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, per in cells.items():
        ws = sorted(per)
        means = [100 * np.mean(per[w]["values"]) for w in ws]
        sds = [100 * np.std(per[w]["values"], ddof=1) if len(per[w]["values"]) > 1 else 0.0 for w in ws]
        ax.errorbar(ws, means, yerr=sds, marker="o", capsize=3, label=name)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("hidden units per layer")
    ax.set_ylabel("test error (%)")
    ax.set_title("MNIST quick (4,000 training images), torch")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(HERE / "mnist_error_vs_units.png", dpi=120)


if __name__ == "__main__":
    main()
