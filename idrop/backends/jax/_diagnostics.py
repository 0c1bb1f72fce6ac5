r"""Diagnostics of the Information Dropout layers of an NNX model: KL maps, alpha statistics, logging.

A layer's *KL map* is its per-unit KL (eq. 3 or 4) on its own input, computed without noise
through the pure :func:`info_dropout` on the layer's ``f`` and alpha logits. ``kl_maps`` collects it
for every ``InfoDropout`` of a model during one deterministic pass (each layer hands its input to a
probe set for that pass). The reductions and warn-once rules are :mod:`idrop.core.diagnostics`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from idrop import plotting as _plotting
from idrop.core import diagnostics as _diag
from idrop.core.loss import batch_mean, per_sample_kl
from idrop.core.spec import check_beta, check_input_type, check_n_train, no_info_dropout, not_a_layer

from . import _maps
from ._functional import alpha_from_logits, info_dropout
from ._layers import InfoDropout
from ._uncertainty import _set_modes, kept_records


def _check_layer(layer: Any) -> InfoDropout:
    if not isinstance(layer, InfoDropout):
        raise not_a_layer("layer", layer, "an InfoDropout layer")
    return layer


def kl_map(layer: InfoDropout, x: jax.Array) -> jax.Array:
    """The per-unit KL of ``layer`` on its input ``x``, without noise: the shape of the layer's output.

    Sum it over the channel axis (``-1`` for ``nnx.Conv``) for a heat map per position. Pure: it
    mutates nothing, so it runs under ``jax.jit`` too.
    """
    layer = _check_layer(layer)
    f = layer.activation_of(x)
    lognormal = layer.spec.prior == "log-normal"
    _, kl = info_dropout(
        None,
        f,
        layer.alpha_layer(x),
        **layer.spec.kl_options,
        deterministic=True,
        mu=layer.mu[...] if lognormal else None,
        sigma=layer.sigma if lognormal else None,
    )
    return kl


def alpha_map(layer: InfoDropout, x: jax.Array) -> jax.Array:
    """``alpha(x) = alpha_min + max_alpha * sigmoid(alpha_layer(x))`` per unit, the layer's noise scale."""
    layer = _check_layer(layer)
    return alpha_from_logits(layer.alpha_layer(x), max_alpha=layer.spec.max_alpha, alpha_min=layer.spec.alpha_min)


def _probe(model: nnx.Module, x: jax.Array, fn: Callable[[InfoDropout, jax.Array], Any]) -> dict[str, Any]:
    """``fn(layer, its input)`` for every call of every InfoDropout in one deterministic pass of ``model``."""
    check_input_type("x", x, isinstance(x, jax.Array))
    names = {}
    for path, m in nnx.iter_modules(model):
        if isinstance(m, InfoDropout):
            names[id(m)] = "/".join(str(p) for p in path) or type(m).__name__
    if not names:
        raise no_info_dropout("model")
    out: dict[str, Any] = {}

    def probe(mod: InfoDropout, inp: jax.Array) -> None:
        key, n = names[id(mod)], 1
        while key in out:  # a layer called twice: "name", "name#1", ...
            key, n = f"{names[id(mod)]}#{n}", n + 1
        out[key] = fn(mod, inp)

    layers = [m for _, m in nnx.iter_modules(model) if isinstance(m, InfoDropout)]
    saved = _set_modes(model)
    try:
        for m in layers:
            m.deterministic = True
            object.__setattr__(m, "_probe", probe)  # a plain attribute: no graph node, removed below
        with kept_records(model):
            model(x)
    finally:
        for m in layers:
            object.__delattr__(m, "_probe")
        for m, attr, value in reversed(saved):
            setattr(m, attr, value)
    return out


def kl_maps(model: nnx.Module, x: jax.Array) -> dict[str, jax.Array]:
    """The KL map (:func:`kl_map`) of every InfoDropout of ``model`` on ``x``, by module path (``"a/0"``).

    ``model`` runs once in evaluation (its attributes are restored); a layer called twice appears
    as ``"name"`` and ``"name#1"``. Runs eagerly (the layers hand their input to a Python probe).
    """
    return _probe(model, x, kl_map)


def _layer_alpha_stats(layer: InfoDropout, x: jax.Array, pin_tol: float) -> _diag.AlphaStats:
    s = layer.spec
    return _diag.alpha_stats(alpha_map(layer, x), max_alpha=s.max_alpha, alpha_min=s.alpha_min, pin_tol=pin_tol, xp=jnp)


def alpha_stats(model: nnx.Module, x: jax.Array, *, pin_tol: float = _diag.PIN_TOL) -> dict[str, _diag.AlphaStats]:
    """Per InfoDropout of ``model`` on ``x``: mean alpha and the shares of units pinned at each bound.

    A unit is pinned when ``sigmoid(a)`` is within ``pin_tol`` of 0 (``pinned_low``, alpha at
    ``alpha_min``) or of 1 (``pinned_high``, alpha at ``alpha_min + max_alpha``).
    """
    pin_tol = _diag.check_pin_tol(pin_tol)
    return _probe(model, x, lambda layer, inp: _layer_alpha_stats(layer, inp, pin_tol))


def diagnostics(
    model: nnx.Module,
    x: jax.Array,
    *,
    task_loss: float | jax.Array | None = None,
    beta: float | None = None,
    n_train: int | None = None,
    pin_tol: float = _diag.PIN_TOL,
    warn: bool = True,
) -> dict[str, float]:
    """What a training loop logs, as Python floats: per layer ``"<path>/kl"`` (mean per-sample KL),
    ``"<path>/alpha_mean"``, ``"<path>/pinned_low"``, ``"<path>/pinned_high"``; with ``task_loss``,
    ``beta`` and ``n_train`` also ``"kl_term"`` (``beta * sum kl / n_train``) and ``"kl_share"``.

    Call it outside the jitted step (every few steps, on a batch). With ``warn`` it warns once
    (:class:`~idrop.core.diagnostics.IdropWarning`) when most units of a layer are pinned at a bound,
    or the KL term is most of the loss.
    """
    pin_tol = _diag.check_pin_tol(pin_tol)

    def both(layer: InfoDropout, inp: jax.Array) -> tuple[jax.Array, _diag.AlphaStats]:
        kl = per_sample_kl(kl_map(layer, inp), batched=_maps.is_batched(layer.layer, inp), xp=jnp)
        return batch_mean(kl, xp=jnp), _layer_alpha_stats(layer, inp, pin_tol)

    logs: dict[str, float] = {}
    total_kl = 0.0
    for name, (kl, stats) in _probe(model, x, both).items():
        logs[f"{name}/kl"] = float(kl)
        total_kl += float(kl)
        logs[f"{name}/alpha_mean"] = float(stats.mean)
        logs[f"{name}/pinned_low"] = float(stats.pinned_low)
        logs[f"{name}/pinned_high"] = float(stats.pinned_high)
        if warn:
            _diag.warn_pinned(name, stats)
    if task_loss is not None and beta is not None and n_train is not None:
        kl_term = check_beta(beta) * total_kl / check_n_train(n_train)
        task = float(task_loss)
        logs["kl_term"] = kl_term
        logs["kl_share"] = kl_term / (task + kl_term) if task + kl_term > 0 else 0.0
        if warn:
            _diag.warn_kl_dominates(task, kl_term)
    return logs


def plot_kl_maps(
    maps: dict[str, jax.Array], *, index: int = 0, channel_axis: int = -1, image: Any = None, cmap: str = "viridis"
) -> Any:
    """:func:`idrop.plotting.plot_kl_maps` for JAX maps (channels last); needs matplotlib."""
    return _plotting.plot_kl_maps(
        {k: jax.device_get(v) for k, v in maps.items()}, index=index, channel_axis=channel_axis, image=image, cmap=cmap
    )
