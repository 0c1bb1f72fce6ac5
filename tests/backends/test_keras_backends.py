"""``idrop.backends.keras`` on each Keras backend, each in its own process (Keras fixes its backend at import).

One subprocess per backend runs ``_keras_script.py`` (config, ``model.fit`` with the KL metric and
``add_loss``, ``jit_compile``, mixed precision, ``.keras`` save/load with ``mu``/``sigma``, the Keras
tools with ``BetaScheduler``'s beta checked per step and both export graphs, JAX data parallelism on two CPU
devices) and loads the ``.keras`` files the backends before it saved; then each
but the last loads the files saved after it, so every file is loaded on every other backend and gives
the same evaluation and noisy training outputs to float32 rounding.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
from _hang import HANG_S

from idrop.backends import KERAS_BACKENDS, keras_label
from idrop.conformance._backends import required

SCRIPT = Path(__file__).with_name("_keras_script.py")


def _available() -> list[str]:
    have = [b for b in KERAS_BACKENDS if importlib.util.find_spec(b) and importlib.util.find_spec("keras")]
    missing = [keras_label(b) for b in KERAS_BACKENDS if b not in have and keras_label(b) in required()]
    if missing:
        pytest.fail(f"{missing} required (IDROP_REQUIRE_BACKENDS) but not installed")
    return have


def _run(backend: str, *args: str) -> str:
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
    if backend == "jax":  # two CPU replicas for keras.distribution.DataParallel
        env["XLA_FLAGS"] = " ".join(filter(None, [env.get("XLA_FLAGS"), "--xla_force_host_platform_device_count=2"]))
    proc = subprocess.run([sys.executable, str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and f"OK {backend}" in proc.stdout, (proc.stdout + proc.stderr)[-4000:]
    return proc.stdout


def test_conventions_and_portability_on_every_keras_backend(tmp_path: Path) -> None:
    backends = _available()
    if len(backends) < 2:
        pytest.skip(f"one Keras backend installed ({backends}): nothing to port between")
    loaded = set()
    for backend in backends:  # each checks itself, saves, and loads what the earlier ones saved
        out = _run(backend, str(tmp_path), str(tmp_path))
        loaded |= {tuple(line.split()[1::2]) for line in out.splitlines() if line.startswith("loaded ")}
    for backend in backends[:-1]:  # and the files saved after it
        out = _run(backend, str(tmp_path), "--load-only", str(tmp_path))
        loaded |= {tuple(line.split()[1::2]) for line in out.splitlines() if line.startswith("loaded ")}
    assert loaded == {(a, b) for a in backends for b in backends if a != b}


def test_an_unsupported_keras_backend_is_refused_with_the_fix() -> None:
    pytest.importorskip("keras")
    env = {**os.environ, "KERAS_BACKEND": "numpy"}
    proc = subprocess.run(
        [sys.executable, "-c", "import idrop.backends.keras"], env=env, capture_output=True, text=True, timeout=HANG_S
    )
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode != 0 and last.startswith("ImportError: idrop.backends.keras runs on the tensorflow, jax")
    assert "'numpy'" in last and "Set KERAS_BACKEND" in last


def test_on_tensorflow_the_keras_layers_are_the_tensorflow_adapters() -> None:
    """One set of classes: ``idrop.backends.tensorflow`` exports the Keras adapter's (KERAS_BACKEND=tensorflow)."""
    pytest.importorskip("tensorflow")
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "tensorflow":
        pytest.skip("this process runs Keras on another backend; the subprocess test above covers it")
    import idrop.backends.keras as k
    import idrop.backends.tensorflow as t

    assert set(k.__all__) == set(t.__all__)
    for name in k.__all__:
        assert getattr(k, name) is getattr(t, name), name
