"""The MNIST summary: beta chosen on the validation split, test errors with Welch tests against binary dropout.

Runs are keyed ``(method, hidden units, seed)``; Information Dropout runs carry their beta in the
method name (``information-b0.3``, see :func:`information_key`). For each hidden-unit count the
beta with the lowest mean *validation* error is chosen; the test error of those runs is then
reported beside the other methods. No number on the test set takes part in any choice.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from idrop.experiments import RunRegistry, atomic_write_json, atomic_write_text

INFORMATION = "information"


def information_key(beta: float) -> str:
    """The method name of an Information Dropout run at ``beta``: ``information-b<beta>``."""
    return f"{INFORMATION}-b{beta:g}"


def split_method(method: str) -> tuple[str, float | None]:
    """``("information", beta)`` for :func:`information_key`'s names, else ``(method, None)``."""
    if method.startswith(INFORMATION + "-b"):
        return INFORMATION, float(method[len(INFORMATION) + 2 :])
    return method, None


def welch_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided Welch t-test p-value of ``mean(a) == mean(b)``; nan when undefined (n < 2, or no spread)."""
    from scipy import stats

    if len(a) < 2 or len(b) < 2 or (np.std(a) == 0 and np.std(b) == 0):
        return float("nan")
    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def _values(rows: Iterable[Mapping[str, Any]], metric: str) -> dict[tuple[str, float], list[float]]:
    out: dict[tuple[str, float], list[float]] = {}
    for r in rows:
        v = r.get(metric)
        if v is not None and math.isfinite(v):
            out.setdefault((r["method"], float(r["width"])), []).append(float(v))
    return out


def choose_beta(rows: Iterable[Mapping[str, Any]]) -> dict[float, dict[str, Any]]:
    """Per hidden-unit count: the validation error of every beta, and the beta with the lowest mean."""
    valid = _values(rows, "valid_error")
    out: dict[float, dict[str, Any]] = {}
    for (method, width), v in sorted(valid.items()):
        base, beta = split_method(method)
        if base != INFORMATION or beta is None:
            continue
        entry = out.setdefault(width, {"valid_error": {}})
        entry["valid_error"][beta] = float(np.mean(v))
    for entry in out.values():
        entry["beta"] = min(entry["valid_error"], key=lambda b: (entry["valid_error"][b], b))
    return out


def summarize(rows: Sequence[Mapping[str, Any]], methods: Sequence[str]) -> list[dict[str, Any]]:
    """One row per (method, hidden units): test error mean, std, n, values, and Welch p against binary."""
    test = _values(rows, "test_error")
    chosen = choose_beta(rows)
    widths = sorted({float(r["width"]) for r in rows})
    out = []
    for width in widths:
        binary, plain = test.get(("binary", width), []), test.get(("none", width), [])
        for method in methods:
            beta = chosen.get(width, {}).get("beta") if method == INFORMATION else None
            key = information_key(beta) if beta is not None else method
            v = test.get((key, width), [])
            if not v:
                continue
            out.append(
                {
                    "method": method,
                    "width": width,
                    "beta": beta,
                    "n": len(v),
                    "mean": float(np.mean(v)),
                    "std": float(np.std(v, ddof=1)) if len(v) > 1 else None,
                    "values": v,
                    "p_vs_binary": None if method == "binary" or not binary else welch_p(v, binary),
                    "p_vs_none": welch_p(v, plain) if method == INFORMATION and plain else None,
                }
            )
    return out


def _cell(s: Mapping[str, Any], best: bool) -> str:
    std = "n/a" if s["std"] is None else f"{100 * s['std']:.2f}"
    text = f"{100 * s['mean']:.2f} ± {std}"
    return f"**{text}**" if best else text


def _p(p: float | None) -> str:
    if p is None or not math.isfinite(p):
        return "-"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def markdown(summary: Sequence[Mapping[str, Any]], chosen: Mapping[float, Mapping[str, Any]], title: str) -> str:
    """The test-error table (only the lowest mean of a row in bold) and the validation table of beta."""
    methods = list(dict.fromkeys(s["method"] for s in summary))
    others = [m for m in methods if m != "binary"]
    vs_none = INFORMATION in methods and "none" in methods
    head = ["hidden units", *methods, "beta (valid.)", *(f"p {m} vs binary" for m in others)]
    head += ["p information vs none"] if vs_none else []
    lines = [f"# {title}", "", "| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
    for width in sorted({s["width"] for s in summary}):
        row = {s["method"]: s for s in summary if s["width"] == width}
        best = min(s["mean"] for s in row.values())
        cells = [_cell(row[m], row[m]["mean"] == best) if m in row else "-" for m in methods]
        beta = chosen.get(width, {}).get("beta")
        pvals = [_p(row[m]["p_vs_binary"]) if m in row else "-" for m in others]
        if vs_none:
            pvals.append(_p(row[INFORMATION]["p_vs_none"]) if INFORMATION in row else "-")
        lines.append(
            f"| {width:g} | "
            + " | ".join(cells)
            + f" | {'-' if beta is None else f'{beta:g}'} | "
            + " | ".join(pvals)
            + " |"
        )
    lines += [
        "",
        "Test error (%): mean ± sample std over seeds; bold: the lowest mean of the row. p: two-sided Welch "
        "t-test of the method's test errors against binary dropout's (or no dropout's), same hidden units.",
        "Information Dropout's beta: for each hidden-unit count, the grid value with the lowest mean "
        "validation error (validation split carved from the training images; the test set chose nothing).",
    ]
    if chosen:
        betas = sorted({b for c in chosen.values() for b in c["valid_error"]})
        lines += ["", "Validation error (%) of Information Dropout per beta:", ""]
        lines += [
            "| hidden units | " + " | ".join(f"beta {b:g}" for b in betas) + " |",
            "|" + "---:|" * (len(betas) + 1),
        ]
        for width, c in sorted(chosen.items()):
            cells = [f"{100 * c['valid_error'][b]:.2f}" if b in c["valid_error"] else "-" for b in betas]
            lines.append(f"| {width:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def csv(summary: Sequence[Mapping[str, Any]]) -> str:
    """The summary as CSV: method, hidden units, beta, n, mean, std, Welch p against binary."""
    lines = ["method,hidden_units,beta,n,mean,std,p_vs_binary,p_vs_none"]
    for s in summary:
        cells = [
            s["method"],
            f"{s['width']:g}",
            s["beta"],
            s["n"],
            s["mean"],
            s["std"],
            s["p_vs_binary"],
            s["p_vs_none"],
        ]
        lines.append(",".join("" if c is None else str(c) for c in cells))
    return "\n".join(lines) + "\n"


def plot(summary: Sequence[Mapping[str, Any]], path: str | os.PathLike[str], title: str) -> Path:
    """Test error (%) against hidden units per layer, one line per method, std error bars."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.0, 3.6), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for method in dict.fromkeys(s["method"] for s in summary):
        pts = sorted((s["width"], s) for s in summary if s["method"] == method)
        ax.errorbar(
            [w for w, _ in pts],
            [100 * s["mean"] for _, s in pts],
            yerr=[100 * (s["std"] or 0.0) for _, s in pts],
            marker="o",
            capsize=3,
            label=method,
        )
    ax.set_xscale("log", base=2)
    widths = sorted({s["width"] for s in summary})
    ax.set_xticks(widths, [f"{w:g}" for w in widths])
    ax.minorticks_off()
    ax.set_xlabel("hidden units per layer")
    ax.set_ylabel("test error (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    path = Path(path)
    fig.savefig(path, dpi=120)
    return path


def write_summary(results: Any, config: Any) -> list[dict[str, Any]]:
    """Write ``results.json`` (runs, beta choice, summary), ``results.csv``, ``table.md``, ``error_vs_units.png``."""
    rows = list(RunRegistry(results.state).results())
    summary = summarize(rows, config.methods)
    chosen = choose_beta(rows)
    title = f"mnist ({results.backend})"
    atomic_write_json(
        results.results_json,
        {
            "experiment": "mnist",
            "backend": results.backend,
            "beta_grid": list(config.beta_grid),
            "beta_chosen": {f"{w:g}": c for w, c in chosen.items()},
            "summary": summary,
            "runs": rows,
        },
    )
    atomic_write_text(results.table, markdown(summary, chosen, title))
    atomic_write_text(results.results_csv, csv(summary))
    if summary:
        plot(summary, results.plot("error_vs_units"), title)
    return summary
