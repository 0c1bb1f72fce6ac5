"""The README's snippets of the tools section run (one subprocess per backend, each snippet in a fresh namespace)."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
SECTION = "## Beyond the layer: uncertainty, diagnostics, beta schedules"
_MODULE = {"torch": "torch", "tensorflow": "tensorflow", "jax": "flax"}


def snippets() -> dict[str, list[tuple[str, str]]]:
    """``{backend: [(subsection, code), ...]}`` for the python blocks under the section's ``###`` headings."""
    text = README.read_text()
    start = text.index(SECTION)
    end = text.index("\n## ", start + len(SECTION))
    out: dict[str, list[tuple[str, str]]] = {b: [] for b in _MODULE}
    heading = ""
    for part in re.split(r"(^### .*$)", text[start:end], flags=re.MULTILINE):
        if part.startswith("### "):
            heading = part[4:].strip()
            continue
        for code in re.findall(r"```python\n(.*?)```", part, flags=re.DOTALL):
            backend = re.search(r"idrop\.backends\.(torch|tensorflow|jax)", code).group(1)
            out[backend].append((heading, code))
    return out


def test_every_subsection_has_a_snippet_per_backend() -> None:
    found = snippets()
    headings = {h for blocks in found.values() for h, _ in blocks}
    assert headings == {"Monte-Carlo prediction", "Diagnostics", "Beta schedules"}
    for backend, blocks in found.items():
        assert sorted(h for h, _ in blocks) == sorted(headings), backend


@pytest.mark.parametrize("backend", list(_MODULE))
def test_snippets_run(backend: str) -> None:
    if importlib.util.find_spec(_MODULE[backend]) is None:
        pytest.skip(f"{backend} is not installed")
    blocks = snippets()[backend]
    driver = "for title, code in SNIPPETS:\n    print('---', title)\n    exec(compile(code, title, 'exec'), {})\n"
    code = f"SNIPPETS = {blocks!r}\n" + driver
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "MPLBACKEND": "Agg", "TF_CPP_MIN_LOG_LEVEL": "2"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    assert out.stdout.count("--- ") == len(blocks)
