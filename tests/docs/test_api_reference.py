"""The API reference covers every public name of every backend, and the site builds strictly.

The reference pages are generated from each module's ``__all__`` read statically (the build
imports no framework). These tests compare that with the ``__all__`` each importable backend
has at run time, for ``idrop.backends.BACKENDS`` and every other backend package (``keras``
once it exists), and check the built site has an entry for each name.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from _docs_util import ROOT, hooks, require_tool, skip_unless_installed
from _hang import HANG_S

from idrop.backends import BACKENDS

HOOKS = hooks()
PACKAGES = sorted(set(BACKENDS) | set(HOOKS.backend_packages()))
RUNTIME_ALL = """
import importlib, json, sys
module = importlib.import_module(sys.argv[1])
print(json.dumps(list(module.__all__)))
"""


def runtime_all(module: str) -> list[str]:
    """``module.__all__`` after importing it, in a fresh process (a framework import per backend)."""
    out = subprocess.run(
        [sys.executable, "-c", RUNTIME_ALL, module],
        capture_output=True,
        text=True,
        timeout=HANG_S,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_every_backend_package_has_a_page():
    pages = HOOKS.api_modules()
    for name in PACKAGES:
        assert name in pages, f"idrop.backends.{name} has no API page"
    assert pages["core"][0] == "idrop.core"


@pytest.mark.parametrize("backend", PACKAGES)
def test_reference_lists_every_public_name(backend):
    skip_unless_installed({backend})
    module, documented = HOOKS.api_modules()[backend]
    names = runtime_all(module)
    missing = sorted(set(names) - set(documented))
    assert not missing, f"{module}.__all__ names missing from the API reference: {missing}"
    page = HOOKS.api_page(backend, module, documented)
    for name in names:
        assert f"::: {module}.{name}\n" in page


def test_core_reference_lists_every_public_name():
    import idrop.core

    _, documented = HOOKS.api_modules()["core"]
    assert sorted(documented) == sorted(idrop.core.__all__)


def test_site_builds_strictly_with_an_entry_per_name(tmp_path):
    """``mkdocs build --strict`` (warnings fail: broken links, unresolved references, griffe)."""
    for tool in ("mkdocs", "material", "mkdocstrings_handlers.python", "jupytext", "latex2mathml"):
        require_tool(tool)
    site = tmp_path / "site"
    out = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=HANG_S,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert out.returncode == 0, out.stderr[-5000:]
    for stem, (module, names) in HOOKS.api_modules().items():
        html = (site / "api" / stem / "index.html").read_text(encoding="utf-8")
        absent = [n for n in names if f'id="{module}.{n}"' not in html]
        assert not absent, f"site/api/{stem}: no entry for {absent}"
    # Tutorials are rendered as pages, and their notebooks can be downloaded.
    for notebook in (ROOT / "docs" / "tutorials").glob("*.py"):
        assert (site / "tutorials" / notebook.stem / "index.html").is_file()
        assert (site / "tutorials" / notebook.name).is_file()
    # Maths is MathML made at build time: no MathJax, nothing fetched from another host.
    maths = (site / "maths" / "index.html").read_text(encoding="utf-8")
    assert "<math" in maths and "arithmatex" not in maths
    for page in site.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        assert "fonts.googleapis" not in text and "mathjax" not in text.lower(), page
