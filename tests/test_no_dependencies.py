"""``import idrop`` and ``import idrop.core`` import no framework (array-api-compat's test)."""

import subprocess
import sys

import pytest

HEAVY = ("torch", "tensorflow", "keras", "jax", "flax", "matplotlib", "scipy")


@pytest.mark.parametrize(
    "module", ["idrop", "idrop.core", "idrop.backends", "idrop.conformance._harness", "idrop.plotting"]
)
def test_import_is_light(module):
    code = f"import sys, {module}; print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", f"importing {module} imported {out.strip()}"


@pytest.mark.parametrize(
    ("backend", "framework"), [("torch", "torch"), ("tensorflow", "tensorflow"), ("jax", "jax"), ("keras", "keras")]
)
def test_missing_framework_names_the_extra(backend, framework):
    code = (
        f"import sys; sys.modules[{framework!r}] = None\n"
        f"try:\n    import idrop.backends.{backend}\nexcept ImportError as e:\n    print(e)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert f"pip install 'idrop[{backend}]'" in out, out
