"""CI runs the conformance suite for the Keras adapter on every Keras backend.

This process checks ``keras`` on its own Keras backend (the ``keras`` parameter of
``idrop/conformance``, ``keras[tensorflow]`` by default); each other Keras backend runs the whole
suite here in its own process, as ``python -m idrop.conformance`` does, whose table must name it.

Under the default ``ci`` profile the children run the ``ci-light`` profile (6 examples a test instead
of 15): the adapter's code is the same on every Keras backend and is checked with ``ci`` in this
process; what a child adds is each backend's ops, which the first examples reach (the full Keras-on-JAX
child cost 5 of CI's 30 minutes). Any other profile (``thorough``) passes through unchanged.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from idrop.backends import KERAS_BACKENDS, keras_label
from idrop.conformance import _keras_runs
from idrop.conformance._backends import keras_backend


@pytest.mark.parametrize("backend", [b for b in KERAS_BACKENDS if b != keras_backend()])
def test_conformance_on_another_keras_backend(backend: str) -> None:
    cmd, env = _keras_runs.command(backend, [])
    if os.environ.get("IDROP_HYPOTHESIS_PROFILE", "ci") == "ci":
        env["IDROP_HYPOTHESIS_PROFILE"] = "ci-light"
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1500)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    summary = [line for line in proc.stdout.splitlines() if line.startswith(f"{keras_label(backend)}: ")]
    assert summary and "passed" in summary[0] and "failed" not in summary[0], out[-3000:]
