"""Cluttered MNIST experiment: the settings, the ink-proof measure, and tiny runs in each backend."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest

from idrop import cli
from idrop.experiments import cluttered
from idrop.experiments._common import box_on_grid
from idrop.experiments.cluttered._measure import ink_on_grid, localisation, shares_in_box


def parse(backend: str, argv: list[str]) -> argparse.Namespace:
    """The arguments exactly as ``idrop reproduce cluttered --backend <backend>`` parses them."""
    return cli.build_parser().parse_args(["reproduce", "cluttered", "--backend", backend, *argv])


# --- the settings ---------------------------------------------------------------------------------


def test_full_setting_is_the_official_one() -> None:
    f = cluttered.FULL
    assert (f.canvas, f.distractors, f.n_train, f.n_test) == (96, 21, 60000, 10000)
    assert (f.widths, f.top_width, f.convs_per_block) == ((32, 64, 96, 192), 192, 3)
    assert (f.activation, f.prior, f.max_alpha) == ("relu", "log-uniform", 1.0)
    assert (f.lr, f.lr_drops, f.epochs, f.batch_size) == (0.01, (30, 60), 80, 128)
    assert 0.0 in f.betas and max(f.betas) <= 0.5  # official README.md:66: beta <= 0.5


def test_quick_setting_keeps_beta_zero_and_the_official_range() -> None:
    q = cluttered.QUICK
    assert 0.0 in q.betas and max(q.betas) <= 0.5
    assert (q.activation, q.prior, q.max_alpha, q.batch_size) == ("relu", "log-uniform", 1.0, 128)
    assert q.canvas % 8 == 0  # layers 1-3 on exact grids
    assert len(q.lr_drops) == 2 and max(q.lr_drops) < q.epochs  # two x0.1 drops, as the official schedule


def test_config_from_the_command_line() -> None:
    cfg = cluttered.config_of(parse("torch", ["--quick", "--betas", "0", "0.2", "--activation", "softplus"]))
    assert cfg["betas"] == (0.0, 0.2) and cfg["prior"] == "log-normal" and cfg["setting"] == "quick"
    assert cfg["canvas"] == cluttered.QUICK.canvas and "--resume" not in cfg["command"]
    full = cluttered.config_of(parse("torch", ["--seeds", "2"]))
    assert full["seeds"] == (0, 1) and full["canvas"] == 96 and full["setting"] == "full"


@pytest.mark.parametrize(
    "change",
    [
        {"widths": (8, 16)},
        {"betas": (-0.1,)},
        {"betas": ()},
        {"max_alpha": 1.5},
        {"max_alpha": 0.0},
        {"prior": "log-normal"},
        {"show": 0},
        {"epochs": 0},
    ],
)
def test_bad_settings_are_rejected(change: dict) -> None:
    with pytest.raises(ValueError):
        dataclasses.replace(cluttered.QUICK, **change).check()


# --- the measure ----------------------------------------------------------------------------------


def _scene(n: int = 6, canvas: int = 48, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random images with a dense 'digit' in a box and sparse clutter outside it."""
    rng = np.random.default_rng(seed)
    images = (rng.random((n, canvas, canvas)) < 0.05).astype(np.float64)
    boxes = []
    for i in range(n):
        y0, x0 = rng.integers(0, canvas - 20, 2)
        images[i, y0 : y0 + 20, x0 : x0 + 16] = rng.random((20, 16)) < 0.5
        boxes.append((y0, x0, y0 + 20, x0 + 16))
    return images, np.array(boxes)


def test_kl_proportional_to_ink_gives_ratio_one() -> None:
    images, boxes = _scene()
    for size in (24, 12, 6):
        ink = ink_on_grid(images, size)
        out = localisation(3.7 * ink, 0.2 * ink, images, boxes, 48)
        assert out["kl_over_ink"] == pytest.approx(1.0) and out["kl_over_energy"] == pytest.approx(1.0)
        assert out["kl_over_box"] > 1.5  # the raw measure is inflated by the ink alone


def test_kl_only_on_the_box_beats_ink_and_uniform_kl_trails_it() -> None:
    images, boxes = _scene()
    size = 24
    grid = box_on_grid(boxes, 48, size)
    on_box = np.zeros((len(images), size, size))
    for i, (y0, x0, y1, x1) in enumerate(grid):
        on_box[i, y0:y1, x0:x1] = 1.0
    ink = ink_on_grid(images, size)
    assert localisation(on_box, ink, images, boxes, 48)["kl_over_ink"] > 1.0
    uniform = localisation(np.ones_like(on_box), ink, images, boxes, 48)
    assert uniform["kl_over_ink"] < 1.0 and uniform["kl_over_box"] == pytest.approx(1.0)


def test_ink_on_grid_sums_cells_and_pads() -> None:
    x = np.arange(36.0).reshape(1, 6, 6)
    np.testing.assert_allclose(ink_on_grid(x, 3)[0], x[0].reshape(3, 2, 3, 2).sum(axis=(1, 3)))
    padded = ink_on_grid(np.ones((1, 5, 5)), 3)  # 5 -> cells of 2, padded to 6
    assert padded.sum() == 25 and padded[0, 2, 2] == 1


def test_shares_reject_bad_maps_and_handle_empty_ones() -> None:
    boxes = np.array([[0, 0, 10, 10]])
    assert shares_in_box(np.zeros((1, 4, 4)), boxes, 40).tolist() == [0.0]
    with pytest.raises(ValueError, match="non-negative"):
        shares_in_box(-np.ones((1, 4, 4)), boxes, 40)
    with pytest.raises(ValueError, match=r"\[n, h, h\]"):
        shares_in_box(np.ones((1, 4, 5)), boxes, 40)


# --- tiny runs ------------------------------------------------------------------------------------

TINY = [
    "--epochs", "2", "--no-progress", "--betas", "0", "0.5", "--widths", "2,2,2,2", "--top-width", "4",
    "--convs-per-block", "2", "--canvas", "32", "--distractors", "2", "--n-train", "24", "--n-test", "8",
    "--show", "2", "--batch-size", "16", "--lr-drops", "1",
]  # fmt: skip


def _splits() -> tuple:
    rng = np.random.default_rng(0)
    digits = (rng.random((40, 784)) > 0.7).astype(np.float32)
    labels = rng.integers(0, 10, 40)
    return digits, labels, digits[:20], labels[:20], "synthetic digits"


@pytest.mark.parametrize("backend", ["torch", "tensorflow", "jax"])
def test_tiny_end_to_end(tmp_path: Path, backend: str) -> None:
    pytest.importorskip({"torch": "torch", "tensorflow": "tensorflow", "jax": "flax"}[backend])
    pytest.importorskip("matplotlib")
    assert cluttered.run(parse(backend, ["--out", str(tmp_path), *TINY]), splits=_splits()) == 0
    root = tmp_path / "cluttered" / backend
    assert (root / "heatmaps.png").stat().st_size > 0 and (root / "table.md").exists()
    summary = json.loads((root / "results.json").read_text())
    assert [r["beta"] for r in summary["runs"]] == [0.0, 0.5] and len(summary["untrained"]) == 1
    assert "idrop" in summary["config"]["command"]
    for r in [*summary["runs"], *summary["untrained"]]:
        assert math.isfinite(r["test_error"])
        assert [r[f"layer{i}_size"] for i in (1, 2, 3)] == [16, 8, 4]
        for i in (1, 2, 3):
            assert 0 <= r[f"layer{i}_kl_share"] <= 1 and 0 < r[f"layer{i}_ink_share"] <= 1
            assert math.isfinite(r[f"layer{i}_kl_over_ink"]) and math.isfinite(r[f"layer{i}_kl_over_energy"])
    maps = np.load(root / "kl_maps" / "beta0.5_w2_s0.npz")
    assert maps["layer1"].shape == (2, 16, 16) and (maps["layer1"] >= 0).all()
    assert not (root / "checkpoints").exists() or not any((root / "checkpoints").iterdir())


@pytest.mark.parametrize("alpha_rank", [None, 2])
@pytest.mark.parametrize("backend", ["torch", "tensorflow", "jax"])
def test_alpha_branch_has_a_bias(backend: str, alpha_rank: int | None) -> None:
    """The official alpha conv has a bias (cluttered.py:89); without it alpha on blank canvas is pinned.
    The cheap branch (``--alpha-rank``) has it on its 1x1 ``up`` conv."""
    pytest.importorskip({"torch": "torch", "tensorflow": "tensorflow", "jax": "flax"}[backend])
    cfg = {**dataclasses.asdict(cluttered.QUICK), "device": "cpu", "backend": backend, "alpha_rank": alpha_rank}
    module = __import__(f"idrop.experiments.cluttered.{backend}", fromlist=["alpha_biases"])
    # alpha_biases reads `up.bias` of the layers whose alpha_rank is set, `bias` of the others.
    biases = module.alpha_biases(module.build_model(cfg, seed=0))
    assert len(biases) == len(cfg["widths"]) and all(b is not None for b in biases)


def test_resume_after_a_kill_finishes_the_same_runs(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("matplotlib")
    argv = ["--out", str(tmp_path), *TINY]
    with pytest.raises(SystemExit) as stop:  # the CLI's kill simulation: exit once an epoch is saved
        cluttered.run(parse("torch", [*argv, "--stop-after-epochs", "1"]), splits=_splits())
    assert stop.value.code == 3
    state = json.loads((tmp_path / "cluttered" / "torch" / "state.json").read_text())
    assert state  # a checkpoint is recorded
    assert cluttered.run(parse("torch", [*argv, "--resume"]), splits=_splits()) == 0
    runs = json.loads((tmp_path / "cluttered" / "torch" / "results.json").read_text())["runs"]
    assert [r["beta"] for r in runs] == [0.0, 0.5]


def test_table_flags_networks_that_do_not_classify(tmp_path: Path) -> None:
    from idrop.experiments import ResultDir
    from idrop.experiments.cluttered._report import write_results

    layer = {"size": 6, "kl_share": 0.5, "ink_share": 0.5, "energy_share": 0.5, "box_share": 0.2}
    layer |= {"kl_over_ink": 1.0, "kl_over_energy": 1.0, "kl_over_box": 2.5}
    fields = {f"layer1_{k}": v for k, v in layer.items()}
    rows = [{"method": "beta0", "seed": 0, "test_error": 0.05, **fields}]
    rows.append({"method": "beta0.5", "seed": 0, "test_error": 0.3, **fields})
    results = ResultDir.create(tmp_path, "cluttered", "torch")
    cfg = {"seeds": [0], "n_test": 10}
    write_results(results, cfg, rows, [{"test_error": 0.9, **fields}])
    lines = results.table.read_text().splitlines()
    flagged = [line for line in lines if "not quoted" in line]
    assert len(flagged) == 1 and "| 0.5 |" in flagged[0]  # the untrained control is reported as such


def test_kl_floor_dilutes_the_raw_share_but_not_the_excess_share() -> None:
    images, boxes = _scene()
    ink = ink_on_grid(images, 12)
    out = localisation(ink + 5.0, ink, images, boxes, 48)  # the same floor on every cell, blank canvas included
    assert out["kl_over_ink"] < 0.9 and out["excess_kl_over_ink"] == pytest.approx(1.0)


def _old_per_unit_kl(backend: str, layer: object, x: object) -> np.ndarray:
    """The formula the experiment computed privately before it used the public ``kl_map`` (frozen copy)."""
    lognormal = layer.spec.prior == "log-normal"
    if backend == "torch":
        from idrop.backends.torch import info_dropout

        f = layer.activation_of(x)
        mu, sigma = (layer.mu, layer.sigma) if lognormal else (None, None)
        return info_dropout(f, layer.alpha_layer(x), **layer.spec.kl_options, training=False, mu=mu, sigma=sigma)[1]
    if backend == "jax":
        from idrop.backends.jax import info_dropout

        f = layer.activation_of(x)
        mu, sigma = (layer.mu[...], layer.sigma) if lognormal else (None, None)
        kw = dict(layer.spec.kl_options, deterministic=True, mu=mu, sigma=sigma)
        return info_dropout(None, f, layer.alpha_layer(x), **kw)[1]
    import keras

    from idrop.backends.tensorflow import info_dropout

    h = layer.norm(layer.layer(x), training=False)
    f = keras.ops.relu(h) if layer.activation == "relu" else keras.ops.softplus(h)
    mu, sigma = (layer.mu, layer.sigma) if lognormal else (None, None)
    return info_dropout(f, layer.alpha_layer(x), **layer.spec.kl_options, training=False, mu=mu, sigma=sigma)[1]


@pytest.mark.parametrize("backend", ["torch", "tensorflow", "jax"])
@pytest.mark.parametrize("activation", ["relu", "softplus"])
def test_heat_maps_through_the_public_api_are_unchanged(backend: str, activation: str) -> None:
    """The experiment's KL maps now come from ``kl_map``; they equal the private formula bit for bit."""
    pytest.importorskip({"torch": "torch", "tensorflow": "tensorflow", "jax": "flax"}[backend])
    prior = {"relu": "log-uniform", "softplus": "log-normal"}[activation]
    cfg = {**dataclasses.asdict(cluttered.QUICK), "device": "cpu", "backend": backend}
    cfg.update(widths=(4, 4), top_width=4, convs_per_block=1, activation=activation, prior=prior)
    module = __import__(f"idrop.experiments.cluttered.{backend}", fromlist=["build_model"])
    if backend == "jax":  # eagerly: build_model compiles the initialiser once per architecture, for grids
        from flax import nnx

        keys = ("widths", "top_width", "convs_per_block", "activation", "prior", "max_alpha")
        model = module.ClutteredCNN(**{k: cfg[k] for k in keys}, rngs=nnx.Rngs(0))
    else:
        model = module.build_model(cfg, seed=0)
    images = np.random.default_rng(0).random((2, 16, 16)).astype(np.float32)
    if backend == "torch":
        import torch

        model.eval()
        _, kls, _ = module._maps(model, images, 2, torch.device("cpu"))
        layers = [m for m in model.modules() if isinstance(m, module.InfoDropout)]
        inputs = []
        hooks = [m.register_forward_pre_hook(lambda _, inp: inputs.append(inp[0])) for m in layers]
        with torch.no_grad():
            model(torch.from_numpy(images[:, None]))
            old = [_old_per_unit_kl(backend, m, i).sum(1).numpy() for m, i in zip(layers, inputs)]
        for h in hooks:
            h.remove()
    elif backend == "tensorflow":
        import tensorflow as tf

        x = tf.constant(images[..., None])
        _, kls, _ = model.logits_and_maps(x)
        old = []
        for layer in model.blocks:
            if isinstance(layer, module.InfoDropout):
                old.append(tf.reduce_sum(_old_per_unit_kl(backend, layer, x), axis=-1))
            x = layer(x, training=False)
    else:
        import jax.numpy as jnp
        from flax import nnx

        model = nnx.view(model, deterministic=True, use_running_average=True)
        x = jnp.asarray(images[..., None])
        maps: list = []
        model(x, maps=maps)
        kls, old = [m[0] for m in maps], []
        for layer in model.features:
            if isinstance(layer, module.InfoDropout):
                old.append(_old_per_unit_kl(backend, layer, x).sum(-1))
            x = layer(x)
    assert len(kls) == len(old) == 2
    for new, before in zip(kls, old):
        np.testing.assert_array_equal(np.asarray(new), np.asarray(before))
