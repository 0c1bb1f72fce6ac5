"""PyTorch DistributedDataParallel: two gloo processes under torchrun match one process.

One ``python -m torch.distributed.run --nproc_per_node 2`` launch runs every check
(``_torch_worker.py``): the loss, KL and one SGD step of 2 ranks at global batch 7 (shards of
4 and 3) equal one process's at batch 7 with injected noise; the ranks' sampled noise
differs; and the tiny MNIST experiment under torchrun writes a table like a 1-process run.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

from _hang import HANG_S
from _mnist_data import mnist_args, table_shape, write_tiny_mnist

from idrop import cli

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    out = tmp_path_factory.mktemp("ddp")
    data = write_tiny_mnist(tmp_path_factory.mktemp("mnist"))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with socket.socket() as s:  # a free port for the rendezvous (port 0 makes torchrun wait forever)
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        port,
        str(HERE / "_torch_worker.py"),
        str(out),
        str(data),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=HANG_S)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, data, json.loads((out / "checks.json").read_text())


def test_two_ranks_match_one_process_with_injected_noise(ddp_run: tuple[Path, Path, dict]) -> None:
    checks = ddp_run[2]
    assert checks["world"] == 2
    # float64 model; the adapter accumulates the KL in float32, hence 1e-6.
    assert checks["loss"] == pytest.approx(checks["ref_loss"], rel=1e-6)
    assert checks["kl"] == pytest.approx(checks["ref_kl"], rel=1e-6)
    assert checks["param_diff"] < 1e-6


def test_ranks_draw_different_noise(ddp_run: tuple[Path, Path, dict]) -> None:
    assert ddp_run[2]["noise_differs"]


def test_mnist_under_torchrun_writes_the_same_table(ddp_run: tuple[Path, Path, dict], tmp_path: Path) -> None:
    out, data, _ = ddp_run
    assert cli.main(mnist_args("torch", data, tmp_path)) == 0
    single = (tmp_path / "mnist" / "torch" / "table.md").read_text()
    ddp = (out / "ddp" / "mnist" / "torch" / "table.md").read_text()
    assert table_shape(ddp) == table_shape(single)
    assert not (out / "ddp" / "mnist" / "torch" / "checkpoints").exists()


def test_shards_cover_the_batch_in_order() -> None:
    import numpy as np

    from idrop.distributed.torch import shard_indices

    idx = np.arange(7)
    parts = [shard_indices(idx, r, 3) for r in range(3)]
    assert [len(p) for p in parts] == [3, 2, 2]
    assert np.array_equal(np.concatenate(parts), idx)
    assert len(shard_indices(np.arange(1), 1, 2)) == 0
