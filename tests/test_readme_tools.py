"""The README's "Model surgery and export" snippets run as written (one per backend, in a scratch directory)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
FRAMEWORK = {"torch": "torch", "tensorflow": "tensorflow", "jax": "flax"}


def _snippets() -> dict[str, str]:
    text = README.read_text()
    section = text.split("## Model surgery and export", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    return {re.search(r"idrop\.backends\.(\w+)", b).group(1): b for b in blocks}


def test_one_snippet_per_backend():
    assert sorted(_snippets()) == sorted(FRAMEWORK)


@pytest.mark.parametrize("backend", ["torch", "tensorflow", "jax"])
def test_snippet_runs(backend, tmp_path, monkeypatch):
    pytest.importorskip(FRAMEWORK[backend])
    if backend != "jax":
        pytest.importorskip("onnxscript" if backend == "torch" else "tf2onnx")  # they write ONNX (idrop[export])
    monkeypatch.chdir(tmp_path)
    exec(compile(_snippets()[backend], f"README.md[{backend}]", "exec"), {})
