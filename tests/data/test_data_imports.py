"""``import idrop.data`` / ``idrop.experiments`` load no framework, matplotlib or tqdm."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HEAVY = ("torch", "tensorflow", "jax", "flax", "keras", "matplotlib", "tqdm", "mlxtend")


def test_no_heavy_imports() -> None:
    code = (
        f"import sys, idrop, idrop.data, idrop.experiments\nprint(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip() == ""
