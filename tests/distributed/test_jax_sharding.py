"""JAX data parallelism on a 2-device mesh (``--xla_force_host_platform_device_count=2``).

The flag must be set before JAX starts, so one subprocess (``_jax_worker.py``) runs every
check: a step sharded over 2 devices equals the 1-device step at the same global batch
(loss, KL, updated parameters), with injected AND sampled noise (one key for the global
batch, partitionable threefry); the halves of a batch of identical examples get different
noise; and ``idrop reproduce mnist --backend jax --devices 2`` writes the 1-device table.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("flax")

from _hang import HANG_S
from _mnist_data import table_shape, write_tiny_mnist

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def checks(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("jax")
    data = write_tiny_mnist(tmp_path_factory.mktemp("mnist"))
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run(
        [sys.executable, str(HERE / "_jax_worker.py"), str(out), str(data)],
        capture_output=True,
        text=True,
        env=env,
        timeout=HANG_S,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, json.loads((out / "checks.json").read_text())


@pytest.mark.parametrize("noise", ["injected", "sampled"])
def test_two_devices_match_one(checks: tuple[Path, dict], noise: str) -> None:
    c = checks[1][noise]
    assert c["shards"] == 2
    assert c["loss"][1] == pytest.approx(c["loss"][0], rel=1e-6)
    assert c["kl"][1] == pytest.approx(c["kl"][0], rel=1e-6)
    assert c["z_diff"] < 1e-5
    assert c["param_diff"] < 1e-6


def test_replicas_draw_different_noise(checks: tuple[Path, dict]) -> None:
    assert checks[1]["noise_differs"]
    assert checks[1]["replica_keys_differ"]


def test_mnist_on_two_devices_writes_the_same_table(checks: tuple[Path, dict]) -> None:
    out = checks[0]
    tables = [(out / d / "mnist" / "jax" / "table.md").read_text() for d in ("d1", "d2")]
    assert table_shape(tables[0]) == table_shape(tables[1])
    # One key for the global batch: 2 devices reproduce the 1-device run, noise included.
    rows = [json.loads((out / d / "mnist" / "jax" / "results.json").read_text())["runs"] for d in ("d1", "d2")]
    assert rows[0][0]["test_error"] == rows[1][0]["test_error"]
