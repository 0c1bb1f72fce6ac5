"""The README's and the site's Python code blocks run, so they never drift from the code.

Every fenced ``python`` block of ``README.md`` and ``docs/*.md`` runs, each in a fresh namespace
and a fresh working directory, as if a reader pasted it into a new interpreter. The blocks of one
page share one process (a block may import any framework, and importing three frameworks per block
cost CI minutes); a block that sets ``os.environ`` (such as ``KERAS_BACKEND``, read once when Keras
is imported) runs in a process of its own. A block that must not run is preceded by an HTML comment
``<!-- not-run: the reason -->``; a marker without a reason is an error.
"""

from __future__ import annotations

import json
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
#: A block that changes the environment gets a process of its own.
_OWN_PROCESS = re.compile(r"\bos\.environ\b")

#: Runs the blocks ``[[line, code], ...]`` read from the JSON file ``argv[1]``, each in a fresh
#: namespace and a fresh temporary working directory, and writes ``[[line, traceback or None], ...]``
#: to ``argv[2]``. A block's ``sys.exit(0)`` is a success.
RUNNER = """
import json, os, sys, tempfile, traceback
blocks = json.load(open(sys.argv[1], encoding="utf-8"))
results, home = [], os.getcwd()
for line, code in blocks:
    error = None
    with tempfile.TemporaryDirectory() as cwd:
        os.chdir(cwd)
        try:
            exec(compile(code, f"<block at line {line}>", "exec"), {"__name__": "__main__"})
        except SystemExit as stop:
            if stop.code not in (None, 0):
                error = traceback.format_exc()
        except BaseException:
            error = traceback.format_exc()
        finally:
            os.chdir(home)
    results.append([line, error])
    print(f"--- block at line {line}: {'failed' if error else 'ok'}", flush=True)
json.dump(results, open(sys.argv[2], "w", encoding="utf-8"))
"""


def blocks_of(text: str) -> list[tuple[int, str, re.Match | None]]:
    """``(line, code, not-run marker)`` of each fenced Python block of a markdown text."""
    found = []
    for match in _BLOCK.finditer(text):
        line = text.count("\n", 0, match.start("indent")) + 1
        body = textwrap.dedent("\n".join(row.removeprefix(match["indent"]) for row in match["body"].split("\n")))
        found.append((line, body, _NOT_RUN.search(match["before"])))
    return found


PAGES = {path: blocks_of(path.read_text(encoding="utf-8")) for path in FILES}


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
    assert any(marker is None for _, _, marker in PAGES[ROOT / "README.md"])


def test_every_not_run_marker_gives_its_reason():
    for path, blocks in PAGES.items():
        for line, _, marker in blocks:
            assert marker is None or marker["reason"], (
                f"{path.relative_to(ROOT)}:{line}: a not-run marker needs its reason"
            )


def _runnable(blocks: list[tuple[int, str, re.Match | None]]) -> list[tuple[int, str]]:
    """The blocks to run: not marked not-run, and whose frameworks are installed (a missing framework
    skips its blocks, or fails the test when IDROP_REQUIRE_BACKENDS requires it)."""
    out = []
    for line, code, marker in blocks:
        if marker is not None:
            continue
        try:
            skip_unless_installed(backends_used(code))
        except pytest.skip.Exception:
            continue
        out.append((line, code))
    return out


def _run(blocks: list[tuple[int, str]], tmp: Path) -> tuple[list[tuple[int, str | None]], str]:
    """Run ``blocks`` in one fresh interpreter (:data:`RUNNER`): each block's traceback or None, and the output."""
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "blocks.json").write_text(json.dumps(blocks), encoding="utf-8")
    out = subprocess.run(
        [sys.executable, "-c", RUNNER, str(tmp / "blocks.json"), str(tmp / "results.json")],
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=HANG_S,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3", "MPLBACKEND": "Agg"},
    )
    output = f"{out.stdout[-1500:]}\n{out.stderr[-3000:]}"
    if out.returncode != 0 or not (tmp / "results.json").exists():  # the interpreter itself died
        return [(line, f"the process exited with {out.returncode}") for line, _ in blocks], output
    return [(line, error) for line, error in json.loads((tmp / "results.json").read_text(encoding="utf-8"))], output


PAGES_WITH_CODE = [path for path, blocks in PAGES.items() if any(marker is None for _, _, marker in blocks)]


@pytest.mark.parametrize("path", PAGES_WITH_CODE, ids=lambda p: str(p.relative_to(ROOT)))
def test_page_snippets_run(path: Path, tmp_path: Path):
    blocks = _runnable(PAGES[path])
    if not blocks:
        pytest.skip("every block needs a framework that is not installed")
    alone = [b for b in blocks if _OWN_PROCESS.search(b[1])]
    groups = [[b for b in blocks if b not in alone], *([b] for b in alone)]
    failures = []
    for i, group in enumerate(g for g in groups if g):
        results, output = _run(group, tmp_path / str(i))
        failures += [f"{path.relative_to(ROOT)}:{line}\n{error}\n{output}" for line, error in results if error]
    assert not failures, "\n\n".join(failures)


def test_runner_isolates_blocks_and_reports_each(tmp_path: Path):
    """Fresh namespace and working directory per block; a failure names its block; sys.exit(0) is a success."""
    blocks = [
        (1, "x = 1\nopen('f', 'w').write('a')"),
        (2, "import os\nassert 'x' not in globals() and not os.path.exists('f')"),
        (3, "raise ValueError('boom')"),
        (4, "import sys\nsys.exit(0)"),
        (5, "import sys\nsys.exit(3)"),
    ]
    results, _ = _run(blocks, tmp_path)
    assert [line for line, error in results if error] == [3, 5]
    assert "ValueError: boom" in dict(results)[3]
