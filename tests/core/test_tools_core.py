"""The shared numerics of the tools (idrop.core.uncertainty, diagnostics, schedules), in NumPy."""

from __future__ import annotations

import math
import subprocess
import sys
import warnings

import numpy as np
import pytest

from idrop.core import diagnostics as diag
from idrop.core import uncertainty as mc
from idrop.core.schedules import BetaSchedule, beta_schedule
from idrop.core.spec import check_count, check_seed


def _probs(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    logits = rng.normal(size=shape) * 3
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_summary_matches_the_textbook_formulas() -> None:
    p = _probs(np.random.default_rng(0), (7, 4, 3))
    out = mc.predictive_summary(p, xp=np)
    mean = p.mean(0)
    np.testing.assert_allclose(out.mean, mean, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(out.std, p.std(0), rtol=1e-9, atol=1e-12)
    total = -(mean * np.log(mean)).sum(-1)
    expected = -(p * np.log(p)).sum(-1).mean(0)
    np.testing.assert_allclose(out.entropy, total, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(out.mutual_information, total - expected, rtol=1e-9, atol=1e-12)
    assert (out.mutual_information >= 0).all()


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, None])
def test_merged_chunks_equal_one_chunk(chunk: int | None) -> None:
    p = _probs(np.random.default_rng(1), (7, 5, 4))
    stats = None
    for a, b in mc.chunk_bounds(7, chunk):
        stats = mc.merge_stats(stats, mc.chunk_stats(p[a:b], xp=np))
    whole = mc.predictive_summary(p, xp=np)
    for got, want in zip(mc.summary(stats, xp=np), whole):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


def test_identical_samples_have_no_epistemic_uncertainty_and_zeros_are_safe() -> None:
    p = np.tile(np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]]), (4, 1, 1))
    out = mc.predictive_summary(p, xp=np)
    np.testing.assert_array_equal(out.mutual_information, [0.0, 0.0])
    np.testing.assert_allclose(out.entropy, [0.0, math.log(2)], rtol=1e-12, atol=0)
    np.testing.assert_array_equal(out.std, np.zeros((2, 3)))
    assert np.isfinite(out.entropy).all()


def test_disagreeing_confident_samples_are_all_epistemic() -> None:
    p = np.array([[[1.0, 0.0]], [[0.0, 1.0]]])  # two sure but opposite passes
    out = mc.predictive_summary(p, xp=np)
    np.testing.assert_allclose(out.mutual_information, [math.log(2)], rtol=1e-12, atol=0)


def test_chunk_bounds_and_seeds() -> None:
    assert mc.chunk_bounds(5, 2) == [(0, 2), (2, 4), (4, 5)]
    assert mc.chunk_bounds(3, None) == [(0, 3)]
    assert mc.chunk_bounds(3, 10) == [(0, 3)]
    seeds = {mc.sample_seed(0, s, c) for s in range(20) for c in range(3)}
    assert len(seeds) == 60 and all(0 <= s < 2**31 for s in seeds)
    assert mc.sample_seed(3, 1, 2) == mc.sample_seed(3, 1, 2) != mc.sample_seed(4, 1, 2)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "3"])
def test_counts_are_validated_in_the_core(bad: object) -> None:
    with pytest.raises(ValueError, match="Invalid value received for argument `n_samples`"):
        check_count("n_samples", bad, "the number of stochastic forward passes")
    with pytest.raises(ValueError, match="`seed`"):
        check_seed("seed", -1)
    assert check_count("chunk", None, "x", allow_none=True) is None


# --- schedules ----------------------------------------------------------------------------------------


def test_schedule_formulas() -> None:
    lin = beta_schedule("linear", 2.0, warmup_steps=4)
    assert [lin(s) for s in range(6)] == [0.0, 0.5, 1.0, 1.5, 2.0, 2.0]
    cos = beta_schedule("cosine", 1.0, warmup_steps=2)
    assert [round(cos(s), 12) for s in range(4)] == [0.0, 0.5, 1.0, 1.0]
    cyc = beta_schedule("cyclical", 1.0, cycle_steps=4, ramp=0.5)
    assert [cyc(s) for s in range(9)] == [0.0, 0.5, 1.0, 1.0, 0.0, 0.5, 1.0, 1.0, 0.0]
    assert beta_schedule("constant", 0.3)(10**9) == 0.3
    assert beta_schedule("linear", 1.0, warmup_steps=2, start=0.5)(1) == 0.75


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"kind": "step", "beta": 1.0}, "kind"),
        ({"kind": "linear", "beta": -1.0, "warmup_steps": 3}, "beta"),
        ({"kind": "linear", "beta": 1.0}, "warmup_steps"),
        ({"kind": "cosine", "beta": 1.0, "warmup_steps": 2.5}, "warmup_steps"),
        ({"kind": "cyclical", "beta": 1.0}, "cycle_steps"),
        ({"kind": "cyclical", "beta": 1.0, "cycle_steps": 4, "ramp": 0.0}, "ramp"),
        ({"kind": "linear", "beta": 1.0, "warmup_steps": 3, "start": -0.1}, "start"),
    ],
)
def test_schedule_arguments_are_validated(kwargs: dict, name: str) -> None:
    kind, beta = kwargs.pop("kind"), kwargs.pop("beta")
    with pytest.raises(ValueError, match=f"Invalid value received for argument `{name}`"):
        beta_schedule(kind, beta, **kwargs)


def test_schedule_refuses_a_negative_step() -> None:
    with pytest.raises(ValueError, match="`step`"):
        BetaSchedule("linear", 1.0, 3)(-1)


# --- alpha statistics and warnings --------------------------------------------------------------------


def test_alpha_stats_counts_units_near_each_bound() -> None:
    free = np.array([0.0, 0.005, 0.5, 0.995, 1.0, 0.3])
    alpha = 1e-3 + 0.7 * free
    s = diag.alpha_stats(alpha, max_alpha=0.7, alpha_min=1e-3, xp=np)
    assert math.isclose(s.pinned_low, 2 / 6) and math.isclose(s.pinned_high, 2 / 6)
    assert math.isclose(s.mean, alpha.mean())
    with pytest.raises(ValueError, match="`pin_tol`"):
        diag.alpha_stats(alpha, max_alpha=0.7, alpha_min=1e-3, pin_tol=0.5, xp=np)


def test_warnings_fire_once_per_layer_and_rule() -> None:
    diag.reset_warnings()
    pinned = diag.AlphaStats(0.001, 0.9, 0.0)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert diag.warn_pinned("a", pinned)
        assert not diag.warn_pinned("a", pinned)
        assert diag.warn_pinned("b", diag.AlphaStats(0.7, 0.0, 0.8))
        assert not diag.warn_pinned("c", diag.AlphaStats(0.3, 0.4, 0.4))
        assert not diag.warn_kl_dominates(1.0, 0.5)
        assert diag.warn_kl_dominates(1.0, 2.0)
        assert not diag.warn_kl_dominates(1.0, 5.0)
    assert [w.category for w in seen] == [diag.IdropWarning] * 3
    assert "alpha_min" in str(seen[0].message) and "max_alpha" in str(seen[1].message)
    assert "beta" in str(seen[2].message)
    diag.reset_warnings()


class _Layer:
    """A stand-in for a framework's InfoDropout: its name, its bounds and a fixed alpha."""

    def __init__(self, name: str, free: float) -> None:
        self.name = name
        self.spec = type("Spec", (), {"max_alpha": 0.7, "alpha_min": 1e-3})()
        self.alpha = 1e-3 + 0.7 * np.full((2, 3), free)
        self.probe = None


def _pass(layers: list[_Layer], calls: list[int], *, fail: bool = False):
    """The probe of a model that calls ``layers[i]`` for each ``i`` in ``calls`` (its input: ``i``)."""

    def install(layer: _Layer, probe) -> object:
        layer.probe = probe
        return lambda: setattr(layer, "probe", None)

    def run() -> None:
        for i in calls:
            layers[i].probe(layers[i], np.full((2, 3), float(i)))
        if fail:
            raise RuntimeError("the model failed")

    return lambda fn: diag.probe_pass(layers, lambda layer: layer.name, install, run, fn)


def test_probe_pass_names_repeated_calls_and_always_removes_the_probes() -> None:
    layers = [_Layer("a", 0.0), _Layer("b", 0.5)]
    out = _pass(layers, [0, 1, 0, 0])(lambda layer, x: float(x[0, 0]))
    assert out == {"a": 0.0, "b": 1.0, "a#1": 0.0, "a#2": 0.0}
    assert all(layer.probe is None for layer in layers)
    with pytest.raises(RuntimeError, match="the model failed"):
        _pass(layers, [1], fail=True)(lambda layer, x: x)
    assert all(layer.probe is None for layer in layers)
    with pytest.raises(ValueError, match=r"`model`.*InfoDropout"):
        _pass([], [])(lambda layer, x: x)


def test_model_diagnostics_logs_and_warns_at_the_caller() -> None:
    layers = [_Layer("a", 0.0), _Layer("b", 0.5)]
    probe = _pass(layers, [0, 1])
    kl = {"a": np.ones((2, 3)), "b": np.zeros((2, 3))}

    calls = diag.LayerCalls(
        kl_map=lambda layer, x: kl[layer.name],
        alpha_map=lambda layer, x: layer.alpha,
        batched=lambda layer, x, k: True,
        xp=np,
    )

    def run(**options: object) -> dict[str, float]:
        return diag.model_diagnostics(probe, calls, pin_tol=diag.PIN_TOL, **options)

    stats = diag.model_alpha_stats(probe, calls, pin_tol=0.01)
    assert float(stats["a"].pinned_low) == 1.0 and float(stats["b"].pinned_low) == 0.0
    with pytest.raises(ValueError, match="`pin_tol`"):
        diag.model_alpha_stats(probe, calls, pin_tol=0.0)
    diag.reset_warnings()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        logs = run(task_loss=1.0, beta=2.0, n_train=1, warn=True)
    assert logs["a/kl"] == 3.0 and logs["b/kl"] == 0.0 and logs["a/pinned_low"] == 1.0
    assert logs["kl_term"] == 6.0 and math.isclose(logs["kl_share"], 6 / 7)
    assert all(isinstance(v, float) for v in logs.values())
    assert [w.category for w in seen] == [diag.IdropWarning] * 2  # a pinned, KL dominates
    assert {w.filename for w in seen} == {__file__}  # stacklevel: one frame above model_diagnostics' caller
    diag.reset_warnings()
    assert sorted(run(task_loss=None, beta=None, n_train=None, warn=False)) == [
        f"{n}/{k}" for n in "ab" for k in ("alpha_mean", "kl", "pinned_high", "pinned_low")
    ]


def test_plot_without_matplotlib_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['matplotlib'] = None; sys.modules['matplotlib.pyplot'] = None\n"
        "import numpy as np\nfrom idrop.plotting import plot_kl_maps\n"
        "try:\n    plot_kl_maps({'a': np.ones((1, 3))})\nexcept ImportError as e:\n    print(e)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "pip install 'idrop[examples]'" in out, out


def test_plot_draws_one_panel_per_layer() -> None:
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    from idrop.plotting import plot_kl_maps, position_map

    maps = {"conv": np.ones((2, 4, 4, 3)), "dense": np.arange(10.0).reshape(2, 5)}
    np.testing.assert_array_equal(position_map(maps["conv"], index=1), np.full((4, 4), 3.0))
    np.testing.assert_array_equal(position_map(np.ones((2, 3, 4, 4)), channel_axis=1), np.full((4, 4), 3.0))
    assert position_map(maps["dense"], index=1).shape == (1, 5)
    fig = plot_kl_maps(maps, image=np.zeros((8, 8)))
    assert len([ax for ax in fig.axes if ax.get_title()]) == 3
    import matplotlib.pyplot as plt

    plt.close(fig)
