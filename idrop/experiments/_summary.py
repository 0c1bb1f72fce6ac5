"""Summaries of a grid: mean and std over seeds, a Markdown table, CSV/JSON, a plot.

Errors are stored as fractions in [0, 1] and shown as percentages. The standard
deviation is the sample one (``ddof=1``) across seeds; with a single seed it is
undefined and reported as None / "n/a" rather than a misleading 0.
"""

from __future__ import annotations

import csv
import io
import math
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ._io import atomic_write_json, atomic_write_text
from ._layout import ResultDir
from ._run_state import RunRegistry

FIELDS = ("method", "width", "n", "mean", "std")


def summarize(rows: Iterable[Mapping[str, Any]], *, metric: str = "test_error") -> list[dict[str, Any]]:
    """Mean and std of ``metric`` per (method, width) across seeds.

    Returns:
        Rows ``{"method", "width", "n", "mean", "std"}``, methods in order of first
        appearance, widths ascending.

    Example:
        >>> rows = [{"method": "dropout", "width": 1, "seed": s, "test_error": e}
        ...         for s, e in enumerate([0.02, 0.04])]
        >>> summarize(rows)
        [{'method': 'dropout', 'width': 1, 'n': 2, 'mean': 0.03, 'std': 0.01414213562373095}]
    """
    groups: dict[tuple[str, Any], list[float]] = {}
    for row in rows:
        if metric not in row:
            raise KeyError(f"Run {dict(row)} has no `{metric}`; summarize(metric=...) names the field.")
        value = row[metric]
        values = groups.setdefault((row["method"], row["width"]), [])
        if value is not None and math.isfinite(value):
            values.append(float(value))
    order: dict[str, int] = {}
    for method, _ in groups:
        order.setdefault(method, len(order))
    out = []
    for (method, width), values in sorted(groups.items(), key=lambda g: (order[g[0][0]], float(g[0][1]))):
        n = len(values)
        mean = sum(values) / n if n else None
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else None
        out.append({"method": method, "width": width, "n": n, "mean": mean, "std": std})
    return out


def _cell(entry: Mapping[str, Any] | None, scale: float, digits: int) -> str:
    if entry is None or entry["mean"] is None:
        return "-"
    mean = f"{entry['mean'] * scale:.{digits}f}"
    std = "n/a" if entry["std"] is None else f"{entry['std'] * scale:.{digits}f}"
    return f"{mean} ± {std}"


def markdown_table(
    summary: Sequence[Mapping[str, Any]],
    *,
    metric: str = "test_error",
    percent: bool = True,
    digits: int = 2,
) -> str:
    """The summary as a Markdown table: one row per width, one column per method."""
    methods = list(dict.fromkeys(s["method"] for s in summary))
    widths = sorted({s["width"] for s in summary}, key=float)
    cells = {(s["method"], s["width"]): s for s in summary}
    scale = 100.0 if percent else 1.0
    seeds = sorted({s["n"] for s in summary})
    lines = [
        "| width | " + " | ".join(methods) + " |",
        "|---:|" + "---:|" * len(methods),
        *(f"| {w:g} | " + " | ".join(_cell(cells.get((m, w)), scale, digits) for m in methods) + " |" for w in widths),
        "",
        f"{metric}{' (%)' if percent else ''}: mean ± sample std over {'/'.join(map(str, seeds))} seeds.",
    ]
    return "\n".join(lines) + "\n"


def summary_csv(summary: Sequence[Mapping[str, Any]]) -> str:
    """The summary as CSV text with header ``method,width,n,mean,std``."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    for s in summary:
        writer.writerow({k: ("" if s[k] is None else s[k]) for k in FIELDS})
    return buf.getvalue()


def plot_error_vs_width(
    summary: Sequence[Mapping[str, Any]],
    path: str | os.PathLike[str],
    *,
    metric: str = "test_error",
    percent: bool = True,
    title: str | None = None,
) -> Path:
    """Plot ``metric`` against width, one line per method with std error bars (Fig. 3a).

    matplotlib is imported here, and only its Agg canvas is used (no pyplot), so
    this neither needs a display nor changes the caller's matplotlib backend.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    scale = 100.0 if percent else 1.0
    fig = Figure(figsize=(5.0, 3.6), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for method in dict.fromkeys(s["method"] for s in summary):
        pts = sorted((float(s["width"]), s) for s in summary if s["method"] == method and s["mean"] is not None)
        if not pts:
            continue
        ax.errorbar(
            [w for w, _ in pts],
            [s["mean"] * scale for _, s in pts],
            yerr=[(s["std"] or 0.0) * scale for _, s in pts],
            marker="o",
            capsize=3,
            label=method,
        )
    ax.set_xlabel("width multiplier")
    ax.set_ylabel(f"{metric.replace('_', ' ')}{' (%)' if percent else ''}")
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=150)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_summary(
    results: ResultDir,
    rows: Iterable[Mapping[str, Any]] | None = None,
    *,
    metric: str = "test_error",
    plot: bool = True,
) -> list[dict[str, Any]]:
    """Write ``results.json``, ``results.csv``, ``table.md`` and ``error_vs_width.png``.

    Args:
        results: The result folder.
        rows: Per-run results; default: the finished runs in ``state.json``.
        metric: The field summarised.
        plot: Also draw the plot (needs matplotlib).

    Returns:
        The summary rows (see :func:`summarize`).
    """
    rows = list(RunRegistry(results.state).results() if rows is None else rows)
    summary = summarize(rows, metric=metric)
    atomic_write_json(
        results.results_json,
        {
            "experiment": results.experiment,
            "backend": results.backend,
            "metric": metric,
            "summary": summary,
            "runs": rows,
        },
    )
    atomic_write_text(results.results_csv, summary_csv(summary))
    title = f"{results.experiment} ({results.backend})"
    atomic_write_text(results.table, f"# {title}\n\n" + markdown_table(summary, metric=metric))
    if plot and summary:
        plot_error_vs_width(summary, results.plot("error_vs_width"), metric=metric, title=title)
    return summary
