"""MNIST protocol: the paper setting, the validation split, the beta choice and the table (no framework)."""

from __future__ import annotations

import argparse
import gzip
from pathlib import Path

import numpy as np
import pytest

from idrop import cli
from idrop.experiments import mnist
from idrop.experiments.mnist import _report


def parse(argv: list[str]) -> argparse.Namespace:
    return cli.build_parser().parse_args(["reproduce", "mnist", *argv])


def test_paper_setting_is_the_papers_text() -> None:
    """Fig. 3a's setting as issue 13 reports it: Adam 0.01, /10 after 30 and 60, 80 epochs, 3 runs, alpha < 0.5.

    Unchecked against the paper's text, which could not be reached here (docs/reproduction.md).
    """
    cfg = mnist.config_from_args(parse([]), 60000, "test")
    assert (cfg.learning_rate, cfg.lr_drops, cfg.epochs, cfg.seeds, cfg.max_alpha) == (0.01, (30, 60), 80, 3, 0.5)
    assert [cfg.lr_at(e) for e in (1, 30, 31, 60, 61, 80)] == pytest.approx([0.01, 0.01, 1e-3, 1e-3, 1e-4, 1e-4])
    assert (cfg.n_train, cfg.n_valid) == (50000, 10000)
    quick = mnist.config_from_args(parse(["--quick"]), 5000, "test")
    assert (quick.n_train, quick.n_valid, quick.widths) == (4000, 1000, (32, 128))


def test_beta_grid_expands_information_only_and_beta_pins_it() -> None:
    cfg = mnist.config_from_args(parse(["--quick", "--widths", "8", "--seeds", "1"]), 5000, "test")
    assert [k.method for k in cfg.keys()] == ["none", "binary", "information-b0.3", "information-b1", "information-b3"]
    assert cfg.resolve("information-b0.3") == ("information", cfg.__class__(**{**cfg.__dict__, "beta": 0.3}))
    assert cfg.resolve("binary") == ("binary", cfg)
    one = mnist.config_from_args(parse(["--quick", "--beta", "2", "--methods", "information"]), 5000, "test")
    assert one.beta_grid == (2.0,) and {k.method for k in one.keys()} == {"information-b2"}
    # A small --limit-train keeps most of its images for training.
    small = mnist.config_from_args(parse(["--quick", "--limit-train", "200"]), 5000, "test")
    assert (small.n_train, small.n_valid) == (160, 40)


def test_alpha_rank_reaches_the_config_and_every_backends_mlp() -> None:
    """``--alpha-rank R`` goes to config.json and builds InfoDropout(alpha_rank=R); bad values are usage errors."""
    assert mnist.config_from_args(parse(["--quick"]), 5000, "test").alpha_rank is None
    cfg = mnist.config_from_args(parse(["--quick", "--alpha-rank", "8"]), 5000, "test")
    assert cfg.alpha_rank == 8 and cfg.as_dict()["alpha_rank"] == 8
    for bad in ("0", "-1", "2.5"):
        with pytest.raises(SystemExit):
            parse(["--quick", "--alpha-rank", bad])
    torch = pytest.importorskip("torch")
    from idrop.experiments.nets.torch import MLP

    net = MLP("information", 16, cfg)
    downs = [m.alpha_layer.down for m in net.hidden]
    assert [tuple(d.weight.shape) for d in downs] == [(8, 784), (8, 16), (8, 16)]
    assert net(torch.zeros(2, 784)).shape == (2, 10)


def test_validation_split_is_carved_from_the_training_images(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 130)  # sorted by class, as mnist_5k.csv.gz is
    pixels = rng.integers(0, 256, (1300, 784))
    with gzip.open(tmp_path / "mnist_5k.csv.gz", "wt") as fh:
        np.savetxt(fh, np.c_[pixels, labels], fmt="%d", delimiter=",")
    splits, source = mnist.load_data(str(tmp_path))  # no official test set here: a held-out part of the csv
    cfg = mnist.config_from_args(parse(["--quick", "--data-dir", str(tmp_path)]), len(splits.x_train), source)
    data, _ = mnist.load_data(str(tmp_path), cfg)
    n = len(splits.x_train)
    assert len(data.x_valid) == cfg.n_valid == n // 5 and len(data.x_train) == cfg.n_train == n - n // 5
    rows = {r.tobytes() for r in data.x_train}
    assert not any(r.tobytes() in rows for r in data.x_valid)
    assert not any(r.tobytes() in rows for r in data.x_test)  # the held-out test part is its own
    assert len(set(data.y_valid.tolist())) > 2  # a permutation, not the last (sorted) images


def _rows(values: dict[str, list[tuple[float, float]]]) -> list[dict]:
    return [
        {"method": m, "width": 32, "seed": s, "valid_error": v, "test_error": t}
        for m, pairs in values.items()
        for s, (v, t) in enumerate(pairs)
    ]


def test_beta_is_chosen_on_validation_not_test() -> None:
    rows = _rows(
        {
            "binary": [(0.2, 0.20), (0.2, 0.22), (0.2, 0.21)],
            "information-b0.3": [(0.10, 0.30), (0.11, 0.31), (0.12, 0.29)],  # best on validation
            "information-b1": [(0.15, 0.05), (0.16, 0.06), (0.15, 0.05)],  # best on test
        }
    )
    chosen = _report.choose_beta(rows)
    assert chosen[32.0]["beta"] == 0.3
    summary = _report.summarize(rows, ["binary", "information"])
    info = next(s for s in summary if s["method"] == "information")
    assert info["beta"] == 0.3 and info["mean"] == pytest.approx(0.30)
    assert 0 < info["p_vs_binary"] < 0.01


def test_table_bolds_only_the_best_of_a_row() -> None:
    rows = _rows(
        {
            "none": [(0.1, 0.04), (0.1, 0.05), (0.1, 0.045)],
            "binary": [(0.1, 0.10), (0.1, 0.11), (0.1, 0.12)],
            "information-b1": [(0.1, 0.06), (0.1, 0.07), (0.1, 0.065)],
        }
    )
    summary = _report.summarize(rows, ["none", "binary", "information"])
    text = _report.markdown(summary, _report.choose_beta(rows), "t")
    row = next(line for line in text.splitlines() if line.startswith("| 32 |"))
    assert row.count("**") == 2 and "**4.50 ± 0.50**" in row  # "none" is the row's best, not information
    assert "hidden units" in text and "width multiplier" not in text
