"""Importing the TensorFlow adapter leaves ``os.environ`` alone and refuses another Keras backend clearly.

Each check runs in a fresh interpreter: which Keras backend runs is fixed when Keras is imported.
"""

import os
import subprocess
import sys

import pytest
from _hang import HANG_S

pytest.importorskip("tensorflow")
pytest.importorskip("keras")

_NOT_SET = ("KERAS_BACKEND", "TF_CPP_MIN_LOG_LEVEL")


def _run(code: str, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in _NOT_SET}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**base, **env}, timeout=HANG_S
    )


def test_import_does_not_touch_the_environment():
    # Keras and TensorFlow set variables of their own on import; idrop must add none.
    code = (
        "import os, keras, tensorflow\n"
        "before = dict(os.environ)\n"
        "import idrop, idrop.backends.tensorflow, idrop.distributed.tensorflow\n"
        "changed = sorted(k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k))\n"
        "print(changed, keras.backend.backend())"
    )
    proc = _run(code)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split("\n")[-2] == "[] tensorflow"  # Keras's own default backend, unset variable


def test_another_keras_backend_is_refused_with_the_fix():
    proc = _run("import idrop.backends.tensorflow", KERAS_BACKEND="numpy")
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: idrop.backends.tensorflow requires Keras 3 on its TensorFlow backend")
    assert "runs on 'numpy'" in last and "Set KERAS_BACKEND=tensorflow before Python imports keras" in last
    assert "For Keras on JAX or PyTorch use idrop.backends.keras" in last  # what serves them now


def test_keras_on_another_backend_is_served_by_the_keras_adapter():
    """``KERAS_BACKEND=torch``: the TensorFlow adapter refuses, ``idrop.backends.keras`` runs the layer."""
    code = (
        "import keras\n"
        "try:\n    import idrop.backends.tensorflow\nexcept ImportError as e:\n    print('refused')\n"
        "from idrop.backends.keras import InfoDropout\n"
        "layer = InfoDropout(keras.layers.Dense(3), seed=0)\n"
        "z = layer(keras.ops.ones((2, 4)), training=True)\n"
        "print(keras.backend.backend(), tuple(z.shape), tuple(layer.kl.shape))"
    )
    proc = _run(code, KERAS_BACKEND="torch")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["refused", "torch", "(2,", "3)", "(2,)"]
