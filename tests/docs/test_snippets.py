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
from _hang import HANG_S

FILES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
# A fence, possibly indented (content tabs), its body, and what precedes it on the line before.
_BLOCK = re.compile(r"(?P<before>[^\n]*)\n(?P<indent>[ \t]*)```python\n(?P<body>.*?)\n(?P=indent)```", re.DOTALL)
_NOT_RUN = re.compile(r"<!--\s*not-run:\s*(?P<reason>.*?)\s*-->")


def blocks_of(text: str) -> list[tuple[int, str, re.Match | None]]:
    """``(line, code, not-run marker)`` of each fenced Python block of a markdown text."""
    found = []
    for match in _BLOCK.finditer(text):
        line = text.count("\n", 0, match.start("indent")) + 1
        body = textwrap.dedent("\n".join(row.removeprefix(match["indent"]) for row in match["body"].split("\n")))
        found.append((line, body, _NOT_RUN.search(match["before"])))
    return found


BLOCKS = [
    pytest.param(code, marker, id=f"{path.relative_to(ROOT)}:{line}")
    for path in FILES
    for line, code, marker in blocks_of(path.read_text(encoding="utf-8"))
]


def test_extraction_finds_tabbed_blocks_and_markers():
    text = (
        'Intro\n\n```python\nx = 1\n```\n\n=== "Tab"\n\n    ```python\n    if True:\n        y = 2\n    ```\n'
        "<!-- not-run: needs a GPU -->\n```python\nimport cupy\n```\n```bash\nls\n```\n"
    )
    (l1, c1, m1), (l2, c2, m2), (l3, c3, m3) = blocks_of(text)
    assert (l1, l3) == (3, 14)
    assert (c1, m1) == ("x = 1", None)
    assert c2 == "if True:\n    y = 2" and m2 is None and l2 == 9
    assert c3 == "import cupy" and m3["reason"] == "needs a GPU"


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
        timeout=HANG_S,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3", "MPLBACKEND": "Agg"},
    )
    assert out.returncode == 0, f"{out.stdout[-1000:]}\n{out.stderr[-3000:]}"
