r"""Diagnostics of the Information Dropout layers of an NNX model: KL maps, alpha statistics, logging.

A layer's *KL map* is its per-unit KL (eq. 3 or 4) on its own input, computed without noise
through the pure :func:`info_dropout` on the layer's ``f`` and alpha logits. ``kl_maps`` collects it
for every ``InfoDropout`` of a model during one deterministic pass (each layer hands its input to a
probe set for that pass). The pass, the reductions and the warn-once rules are
:mod:`idrop.core.diagnostics`; this module holds the NNX calls only.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from idrop import plotting as _plotting
from idrop.core import diagnostics as _diag
from idrop.core.spec import check_input_type, not_a_layer

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
    layers = [m for _, m in nnx.iter_modules(model) if isinstance(m, InfoDropout)]

    def install(layer: InfoDropout, probe: Callable[[InfoDropout, Any], None]) -> Callable[[], None]:
        object.__setattr__(layer, "_probe", probe)  # a plain attribute: no graph node, removed after the pass
        return lambda: object.__delattr__(layer, "_probe")

    def run() -> None:
        saved = _set_modes(model)
        try:
            for m in layers:
                m.deterministic = True
            with kept_records(model):
                model(x)
        finally:
            for m, attr, value in reversed(saved):
                setattr(m, attr, value)

    return _diag.probe_pass(layers, lambda m: names[id(m)], install, run, fn)


_CALLS = _diag.LayerCalls(
    kl_map=kl_map,
    alpha_map=alpha_map,
    batched=lambda layer, inp, kl: _maps.is_batched(layer.layer, inp),
    xp=jnp,
)


def kl_maps(model: nnx.Module, x: jax.Array) -> dict[str, jax.Array]:
    """The KL map (:func:`kl_map`) of every InfoDropout of ``model`` on ``x``, by module path (``"a/0"``).

    ``model`` runs once in evaluation (its attributes are restored); a layer called twice appears
    as ``"name"`` and ``"name#1"``. Runs eagerly (the layers hand their input to a Python probe).
    """
    return _probe(model, x, kl_map)


def alpha_stats(model: nnx.Module, x: jax.Array, *, pin_tol: float = _diag.PIN_TOL) -> dict[str, _diag.AlphaStats]:
    """Per InfoDropout of ``model`` on ``x``: mean alpha and the shares of units pinned at each bound.

    A unit is pinned when ``sigmoid(a)`` is within ``pin_tol`` of 0 (``pinned_low``, alpha at
    ``alpha_min``) or of 1 (``pinned_high``, alpha at ``alpha_min + max_alpha``).
    """
    return _diag.model_alpha_stats(functools.partial(_probe, model, x), _CALLS, pin_tol=pin_tol)


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
    probe = functools.partial(_probe, model, x)
    return _diag.model_diagnostics(
        probe, _CALLS, task_loss=task_loss, beta=beta, n_train=n_train, pin_tol=pin_tol, warn=warn
    )


def plot_kl_maps(
    maps: dict[str, jax.Array], *, index: int = 0, channel_axis: int = -1, image: Any = None, cmap: str = "viridis"
) -> Any:
    """:func:`idrop.plotting.plot_kl_maps` for JAX maps (channels last); needs matplotlib."""
    return _plotting.plot_kl_maps(
        {k: jax.device_get(v) for k, v in maps.items()}, index=index, channel_axis=channel_axis, image=image, cmap=cmap
    )
