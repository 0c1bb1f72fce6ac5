"""The README's and the site's Python code blocks run, so they never drift from the code.

Every fenced ``python`` block of ``README.md`` and ``docs/*.md`` runs in a fresh process (a
block may import any framework). A block that must not run is preceded by an HTML comment
``<!-- not-run: the reason -->``; a marker without a reason is an error.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from _docs_util import DOCS, ROOT, backends_used, skip_unless_installed

FILES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
# A fence, possibly indented (content tabs), its body, and what precedes it on the line before.
_BLOCK = re.compile(r"(?P<before>[^\n]*)\n(?P<indent>[ \t]*)```python\n(?P<body>.*?)\n(?P=indent)```", re.DOTALL)
_NOT_RUN = re.compile(r"<!--\s*not-run:\s*(?P<reason>.*?)\s*-->")


def blocks() -> list:
    found = []
    for path in FILES:
        text = path.read_text(encoding="utf-8")
        for match in _BLOCK.finditer(text):
            line = text.count("\n", 0, match.start("indent")) + 1
            body = textwrap.dedent("\n".join(row.removeprefix(match["indent"]) for row in match["body"].split("\n")))
            marker = _NOT_RUN.search(match["before"])
            found.append(pytest.param(body, marker, id=f"{path.relative_to(ROOT)}:{line}"))
    return found


BLOCKS = blocks()


def test_readme_has_runnable_snippets():
    assert any(p.id.startswith("README.md") and p.values[1] is None for p in BLOCKS)


@pytest.mark.parametrize(("code", "marker"), BLOCKS)
def test_snippet_runs(code: str, marker: re.Match | None, tmp_path: Path):
    if marker is not None:
        assert marker["reason"], "a not-run marker needs its reason"
        pytest.skip(f"not run: {marker['reason']}")
    skip_unless_installed(backends_used(code))
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3", "MPLBACKEND": "Agg"},
    )
    assert out.returncode == 0, f"{out.stdout[-1000:]}\n{out.stderr[-3000:]}"
