"""Summary statistics, the Markdown table, CSV/JSON and the error-vs-width plot."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from idrop.experiments import (
    ResultDir,
    RunKey,
    RunRegistry,
    markdown_table,
    plot_error_vs_width,
    summarize,
    write_summary,
)

ROWS = [
    {"method": m, "width": w, "seed": s, "test_error": e}
    for m, base in (("dropout", 0.03), ("information", 0.02))
    for w in (0.25, 1, 3)
    for s, e in enumerate((base, base + 0.01 / w))
]


def test_summarize_mean_and_sample_std() -> None:
    summary = summarize(ROWS)
    assert [(s["method"], s["width"]) for s in summary][:3] == [
        ("dropout", 0.25),
        ("dropout", 1),
        ("dropout", 3),
    ]
    first = summary[0]
    assert first["n"] == 2
    assert first["mean"] == pytest.approx(0.03 + 0.02)
    assert first["std"] == pytest.approx(0.04 / 2**0.5)  # |a - b| / sqrt(2) for two seeds


def test_single_seed_std_is_none() -> None:
    summary = summarize([{"method": "m", "width": 1, "seed": 0, "test_error": 0.1}])
    assert summary[0]["std"] is None
    assert "10.00 ± n/a" in markdown_table(summary)


def test_missing_metric_is_named() -> None:
    with pytest.raises(KeyError, match="test_error"):
        summarize([{"method": "m", "width": 1, "seed": 0}])


def test_markdown_table() -> None:
    table = markdown_table(summarize(ROWS))
    lines = table.splitlines()
    assert lines[0] == "| width | dropout | information |"
    assert lines[2].startswith("| 0.25 | 5.00 ± 2.83 | 4.00 ± 2.83 |")
    assert lines[4].startswith("| 3 | ")
    assert "mean ± sample std over 2 seeds" in table


def test_write_summary_files(tmp_path: Path) -> None:
    results = ResultDir.create(tmp_path, "mnist_fc", "numpy")
    reg = RunRegistry(results.state)
    for row in ROWS:
        reg.finish(RunKey(row["method"], row["width"], row["seed"]), {"test_error": row["test_error"]})
    summary = write_summary(results)
    data = json.loads(results.results_json.read_text())
    assert data["summary"] == summary and len(data["runs"]) == len(ROWS)
    assert data["experiment"] == "mnist_fc" and data["backend"] == "numpy"
    parsed = list(csv.DictReader(io.StringIO(results.results_csv.read_text())))
    assert len(parsed) == 6 and list(parsed[0]) == ["method", "width", "n", "mean", "std"]
    assert results.table.read_text().startswith("# mnist_fc (numpy)\n\n| width |")
    png = results.plot("error_vs_width").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    # No temporary file left; .lock is this process's hold on the folder (idrop.experiments._lock).
    assert sorted(p.name for p in results.root.iterdir() if p.name.startswith(".")) == [".lock"]


def test_plot_does_not_touch_pyplot(tmp_path: Path) -> None:
    # Plotting must not need a display nor switch the caller's backend: no pyplot import.
    code = (
        "import sys\n"
        "from idrop.experiments import plot_error_vs_width\n"
        "s = [{'method': 'm', 'width': w, 'n': 1, 'mean': 0.1 * w, 'std': None} for w in (1, 2)]\n"
        f"plot_error_vs_width(s, {str(tmp_path / 'p.png')!r}, title='t')\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
    )
    env = {**os.environ, "MPLBACKEND": "TkAgg", "PYTHONPATH": str(Path(__file__).parents[2])}
    env.pop("DISPLAY", None)
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
    assert (tmp_path / "p.png").stat().st_size > 1000


def test_plot_skips_methods_without_values(tmp_path: Path) -> None:
    summary = [
        {"method": "m", "width": 1, "n": 0, "mean": None, "std": None},
        {"method": "k", "width": 1, "n": 1, "mean": 0.2, "std": None},
    ]
    path = plot_error_vs_width(summary, tmp_path / "x.png", percent=False)
    assert path.is_file()
