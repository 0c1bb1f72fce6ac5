"""The README's tool sections show each tool in every backend.

The snippets themselves run in tests/docs/test_snippets.py (every python block of the README, each in
a fresh process in a scratch directory); this checks that none of the per-backend snippets is missing.
"""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
BACKENDS = ["jax", "tensorflow", "torch"]


def _section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(title)
    return text[start : text.index("\n## ", start + len(title))]


def _backends(code: str) -> str:
    return re.search(r"idrop\.backends\.(torch|tensorflow|jax)", code).group(1)


def test_every_tool_subsection_has_a_snippet_per_backend() -> None:
    section = _section("## Beyond the layer: uncertainty, diagnostics, beta schedules")
    per_heading: dict[str, list[str]] = {}
    heading = ""
    for part in re.split(r"(^### .*$)", section, flags=re.MULTILINE):
        if part.startswith("### "):
            heading = part[4:].strip()
            continue
        for code in re.findall(r"```python\n(.*?)```", part, flags=re.DOTALL):
            per_heading.setdefault(heading, []).append(_backends(code))
    assert set(per_heading) == {"Monte-Carlo prediction", "Diagnostics", "Beta schedules"}
    for heading, found in per_heading.items():
        assert sorted(found) == BACKENDS, heading


def test_surgery_and_export_have_a_snippet_per_backend() -> None:
    blocks = re.findall(r"```python\n(.*?)```", _section("## Model surgery and export"), flags=re.DOTALL)
    assert sorted(_backends(b) for b in blocks) == BACKENDS
