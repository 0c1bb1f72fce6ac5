"""The Keras adapter on the OTHER Keras backends: one subprocess each, since Keras fixes its backend at import.

``python -m idrop.conformance`` checks ``keras`` in its own process on the Keras backend it runs
(``KERAS_BACKEND``, default tensorflow), then calls :func:`run` for each other Keras backend the
run selects: the same command with ``KERAS_BACKEND=<backend>`` and ``IDROP_BACKENDS=keras[<backend>]``,
whose report rows come back as JSON (``IDROP_CONFORMANCE_ROWS``) and join the table as
``keras[<backend>]``. A Keras backend whose framework is missing is skipped by name, or failed when
``IDROP_REQUIRE_BACKENDS`` lists it. ``tests/backends/test_keras_conformance.py`` runs the same for CI.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from idrop.backends import keras_label

from . import _backends

#: The variable a child run writes its report rows to (a JSON file path).
ROWS_VAR = "IDROP_CONFORMANCE_ROWS"
#: Set in a child run: it runs the backend's tests only (the backend-free ones ran in the parent).
CHILD_VAR = "IDROP_CONFORMANCE_KERAS_CHILD"


def others() -> list[str]:
    """The selected Keras backends other than this process's."""
    return [b for b in _backends.keras_selected() if b != _backends.keras_backend()]


def command(keras_backend: str, argv: list[str]) -> tuple[list[str], dict[str, str]]:
    """The command and environment of the conformance suite for ``keras[<keras_backend>]`` alone."""
    env = {**os.environ, "KERAS_BACKEND": keras_backend, "IDROP_BACKENDS": keras_label(keras_backend), CHILD_VAR: "1"}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return [sys.executable, "-m", "idrop.conformance", *argv], env


def run(keras_backend: str, argv: list[str]) -> tuple[int, list[tuple]]:
    """Run the suite for ``keras[<keras_backend>]`` in a subprocess: its exit code and report rows."""
    name = keras_label(keras_backend)
    if importlib.util.find_spec(keras_backend) is None or importlib.util.find_spec("keras") is None:
        outcome = "failed" if name in _backends.required() else "skipped"
        return (1 if outcome == "failed" else 0), [(name, "not installed", "(all)", 0, outcome)]
    with tempfile.TemporaryDirectory() as tmp:
        rows_path = Path(tmp) / "rows.json"
        cmd, env = command(keras_backend, argv)
        env[ROWS_VAR] = str(rows_path)
        print(f"\n--- {name}: {' '.join(cmd[1:])} (KERAS_BACKEND={keras_backend}) ---", flush=True)
        code = subprocess.run(cmd, env=env).returncode
        if code == 5:  # pytest's NO_TESTS_COLLECTED: the arguments (-k ...) select none of this backend's tests
            code = 0
        rows = json.loads(rows_path.read_text()) if rows_path.exists() else []
    rows = [tuple(r) for r in rows if r[0] == name]  # the backend-free ("core") checks ran in this process
    if not rows and code != 0:
        rows = [(name, "?", "(all)", 0, "failed")]
    return code, rows
