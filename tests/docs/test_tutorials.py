"""Every tutorial (``docs/tutorials/*.py``, jupytext percent notebooks) runs, within its time budget.

Each runs as a script in its own process and folder, on the offline MNIST data, with the
framework it imports. Measured (``pytest tests/docs --durations=30``): 31-55 s wall each on
the shared 2-core machine at a load average of 14, 8-16 s of CPU each (imports included;
``uncertainty``, which imports all three frameworks, 34 s and ``pretrained`` 17 s of CPU,
measured with ``/usr/bin/time`` at a load average of 9); the
limit below leaves room for a loaded machine and fails a tutorial that grows past it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from _docs_util import DOCS, backends_used, data_dir, require_tool, skip_unless_installed

TUTORIALS = sorted((DOCS / "tutorials").glob("*.py"))
from _hang import HANG_S as BUDGET_S  # noqa: E402  (a hang guard, not a time budget)


def test_there_are_tutorials():
    expected = {
        "mnist_torch",
        "mnist_tensorflow",
        "mnist_jax",
        "kl_heatmaps",
        "uncertainty",
        "pretrained",
        "swap_frameworks",
    }
    assert expected <= {t.stem for t in TUTORIALS}


@pytest.mark.parametrize("path", TUTORIALS, ids=lambda p: p.stem)
def test_tutorial_is_a_percent_notebook(path):
    require_tool("jupytext")
    import jupytext

    notebook = jupytext.reads(path.read_text(encoding="utf-8"), fmt="py:percent")
    kinds = [c.cell_type for c in notebook.cells]
    assert kinds[0] == "markdown" and notebook.cells[0].source.startswith("# "), "the first cell is the title"
    assert "code" in kinds


@pytest.mark.parametrize("path", TUTORIALS, ids=lambda p: p.stem)
def test_tutorial_runs(path, tmp_path):
    source = path.read_text(encoding="utf-8")
    skip_unless_installed(backends_used(source))
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "MPLBACKEND": "Agg", "TF_CPP_MIN_LOG_LEVEL": "3"}
    if data_dir():
        env["IDROP_DATA_DIR"] = data_dir()
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, str(path)], cwd=tmp_path, capture_output=True, text=True, timeout=BUDGET_S, env=env
    )
    took = time.perf_counter() - start
    assert out.returncode == 0, f"{path.name} failed after {took:.0f} s:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}"
