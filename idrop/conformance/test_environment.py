"""A typo in a backend list fails every entry point at once, before a test runs.

``IDROP_REQUIRE_BACKENDS=torch,tensorfow`` used to pass silently wherever every framework
was installed: the list was only read for a backend that failed to import.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ._backends import ENV_VARS

ENTRY_POINTS = {
    "pytest": [sys.executable, "-m", "pytest", "--pyargs", "idrop.conformance", "--collect-only", "-q"],
    "python -m idrop.conformance": [sys.executable, "-m", "idrop.conformance", "--collect-only"],
}
# A guard against a hang, not a speed goal (a loaded machine may take minutes to import the frameworks).
HANG_S = 900
SELECT = ["-k", "test_every_noise_law_has_cases", "-p", "no:cacheprovider"]


def _run(entry: str, var: str, value: str, cwd) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS} | {var: value}
    return subprocess.run(
        ENTRY_POINTS[entry] + SELECT, env=env, cwd=cwd, capture_output=True, text=True, timeout=HANG_S
    )


@pytest.mark.parametrize("var", ENV_VARS)
@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_typo_fails_loudly(entry, var, tmp_path):
    """Nonzero exit, and the output names the variable and the unknown name."""
    proc = _run(entry, var, "torch,tensorfow", tmp_path)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output[-2000:]
    assert f"`{var}`" in output and "'tensorfow'" in output, output[-2000:]


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_valid_lists_pass(entry, tmp_path):
    """The control: the same command with correct names (and ``all``) succeeds."""
    for var, value in (("IDROP_REQUIRE_BACKENDS", "all"), ("IDROP_BACKENDS", "torch, jax")):
        proc = _run(entry, var, value, tmp_path)
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-2000:]
