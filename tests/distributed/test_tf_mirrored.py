"""TensorFlow MirroredStrategy over 2 logical CPUs, with Keras ``model.fit``.

The CPU must be split before TensorFlow starts, so one subprocess (``_tf_worker.py``) runs
every check: one ``fit`` step on 2 replicas equals 1 device at the same global batch with
injected noise (loss, the layer's ``add_loss`` KL term, updated weights), which shows Keras
scales ``add_loss`` by 1/replicas; replicas draw different noise once
the layers fold the replica id into their seeds;
and ``idrop reproduce mnist --backend tensorflow --devices 2`` writes the 1-device table.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("tensorflow")

from _hang import HANG_S
from _mnist_data import mnist_args, table_shape, write_tiny_mnist

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def checks(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("tf")
    data = write_tiny_mnist(tmp_path_factory.mktemp("mnist"))
    env = {**os.environ, "IDROP_TF_JIT": "0", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(
        [sys.executable, str(HERE / "_tf_worker.py"), str(out), str(data)],
        capture_output=True,
        text=True,
        env=env,
        timeout=HANG_S,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, json.loads((out / "checks.json").read_text())


def test_two_replicas_match_one_device_with_injected_noise(checks: tuple[Path, dict]) -> None:
    c = checks[1]
    assert c["replicas"] == 2
    assert c["loss"][1] == pytest.approx(c["loss"][0], rel=1e-5)
    assert c["kl"][1] == pytest.approx(c["kl"][0], rel=1e-5)
    assert c["param_diff"] < 1e-5


def test_replicas_draw_different_noise(checks: tuple[Path, dict]) -> None:
    assert checks[1]["noise_differs"]


def test_mnist_on_two_devices_writes_the_same_table(checks: tuple[Path, dict]) -> None:
    out = checks[0]
    tables = [(out / d / "mnist" / "tensorflow" / "table.md").read_text() for d in ("d1", "d2")]
    assert table_shape(tables[0]) == table_shape(tables[1])


def test_the_documented_multi_cpu_command_runs_without_extra_variables(tmp_path: Path) -> None:
    """``idrop reproduce mnist --backend tensorflow --devices 2 --device cpu`` as docs/distributed.md shows it.

    It failed with an XLA device error ("Trying to access resource ... located in device CPU:1")
    unless IDROP_TF_JIT=0 was set: XLA cannot compile a step over replicas on logical CPUs.
    """
    data = write_tiny_mnist(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("IDROP_TF_JIT", "KERAS_BACKEND", "TF_XLA_FLAGS")}
    args = mnist_args("tensorflow", data, tmp_path / "out", "--quick", "--devices", "2")
    proc = subprocess.run(
        [sys.executable, "-m", "idrop", *args], capture_output=True, text=True, env=env, timeout=HANG_S, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (tmp_path / "out" / "mnist" / "tensorflow" / "table.md").exists()
