r"""Diagnostics of Information Dropout layers, written once: alpha statistics and the warn-once rules.

The backends compute, per layer, the per-unit KL (a *KL map*) and ``alpha`` on a batch without
noise; this module reduces them. A unit is *pinned* at a bound when ``sigmoid(a)``, the free part of
``alpha = alpha_min + max_alpha * sigmoid(a)``, is within ``pin_tol`` of 0 or 1: its gradient
through the sigmoid is then at most ``pin_tol`` of the largest, so the unit has stopped learning
its noise (all at ``alpha_min``: the layer transmits everything; all at the top: it transmits
nothing).

It also holds the backend-neutral glue of the backends' public functions, in plain Python over
callables (no framework is imported here): one probing pass over a model's layers
(:func:`probe_pass`; the framework installs the probe and runs the model), the per-layer
statistics (:func:`model_alpha_stats`) and the logged dictionary with its warn-once checks
(:func:`model_diagnostics`), over a backend's :class:`LayerCalls`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, TypeVar

from ._xp import Array, Namespace
from .loss import batch_mean, per_sample_kl
from .spec import check_beta, check_n_train, invalid, no_info_dropout

L = TypeVar("L")  # a framework's InfoDropout layer
T = TypeVar("T")
#: ``fn(layer, its input)`` called for every call of every InfoDropout layer of one pass.
LayerFn = Callable[[L, Any], T]
#: One pass of a model with a probe: ``probe(fn)`` is ``{name: fn(layer, its input)}`` (see :func:`probe_pass`).
Probe = Callable[[LayerFn[Any, T]], dict[str, T]]

#: Default tolerance of :func:`alpha_stats`: ``sigmoid(a)`` below 0.01 or above 0.99.
PIN_TOL = 0.01
#: Share of units pinned at one bound above which :func:`warn_pinned` warns ("most units").
PINNED_SHARE = 0.5
#: Share of the loss above which :func:`warn_kl_dominates` warns: ``beta * KL`` larger than the task loss.
KL_SHARE = 0.5


class IdropWarning(UserWarning):
    """The category of idrop's own warnings (filter them with ``warnings.filterwarnings``)."""


class AlphaStats(NamedTuple):
    """Alpha of one layer on a batch: its mean, and the shares of units pinned at each bound."""

    mean: Any
    pinned_low: Any
    pinned_high: Any


def check_pin_tol(pin_tol: Any) -> float:
    """``pin_tol`` as a float in ``(0, 0.5)``, or the core's ``ValueError``."""
    import numbers

    if not isinstance(pin_tol, bool) and isinstance(pin_tol, numbers.Real) and 0 < float(pin_tol) < 0.5:
        return float(pin_tol)
    raise invalid("pin_tol", "a float in (0, 0.5) (the distance of sigmoid(a) from 0 or 1)", pin_tol)


def alpha_stats(
    alpha: Array, *, max_alpha: float, alpha_min: float, pin_tol: float = PIN_TOL, xp: Namespace
) -> AlphaStats:
    """Mean alpha and the shares of units with ``sigmoid(a) <= pin_tol`` or ``>= 1 - pin_tol``.

    ``alpha`` is any array of one layer's per-unit noise scales (an empty one gives NaN means,
    as ``mean`` of nothing is). The shares are over every unit of every sample.
    """
    pin_tol = check_pin_tol(pin_tol)
    free = (alpha - alpha_min) / max_alpha  # sigmoid(a), in [0, 1]
    low = xp.where(free <= pin_tol, xp.ones_like(free), xp.zeros_like(free))
    high = xp.where(free >= 1 - pin_tol, xp.ones_like(free), xp.zeros_like(free))
    return AlphaStats(xp.mean(alpha), xp.mean(low), xp.mean(high))


_warned: set[tuple[str, str]] = set()


def warn_once(rule: str, subject: str, message: str, *, stacklevel: int = 4) -> bool:
    """Emit ``message`` as an :class:`IdropWarning` the first time ``(rule, subject)`` fires in this process."""
    key = (rule, subject)
    if key in _warned:
        return False
    _warned.add(key)
    warnings.warn(message, IdropWarning, stacklevel=stacklevel)
    return True


def reset_warnings() -> None:
    """Forget which warnings were shown, so each may fire once more (for tests and notebooks)."""
    _warned.clear()


def warn_pinned(layer: str, stats: AlphaStats, *, threshold: float = PINNED_SHARE, stacklevel: int = 4) -> bool:
    """Warn once per layer when most of its units are pinned at one alpha bound; return whether it fired.

    ``stacklevel`` as :func:`warn_once`'s: the default names the caller of the function that called this one.
    """
    low, high = float(stats.pinned_low), float(stats.pinned_high)
    if max(low, high) <= threshold:
        return False
    where, hint = (
        ("alpha_min", "the layer lets everything through: raise beta, or check the alpha branch's initialisation")
        if low >= high
        else ("the cap max_alpha", "the layer transmits almost nothing: lower beta or warm it up (beta_schedule)")
    )
    return warn_once(
        "pinned",
        layer,
        f"idrop: {max(low, high):.0%} of the units of layer {layer!r} have alpha pinned at {where}; {hint}.",
        stacklevel=stacklevel,
    )


def warn_kl_dominates(task_loss: float, kl_term: float, *, threshold: float = KL_SHARE, stacklevel: int = 4) -> bool:
    """Warn once when ``beta * KL / n_train`` is more than ``threshold`` of the whole loss; return whether it fired."""
    task_loss, kl_term = float(task_loss), float(kl_term)
    total = task_loss + kl_term
    if not total > 0 or kl_term / total <= threshold:
        return False
    return warn_once(
        "kl_dominates",
        "loss",
        f"idrop: the KL term ({kl_term:.4g}) is {kl_term / total:.0%} of the loss (task loss {task_loss:.4g}); "
        "the network may learn to transmit nothing. Lower beta, check n_train (the training-set size), "
        "or warm beta up with beta_schedule.",
        stacklevel=stacklevel,
    )


# ----------------------------------------------------------------- the backends' shared glue --


def record(out: dict[str, T], name: str, value: T) -> None:
    """``out[name] = value``; a layer called again in the same pass is ``"name#1"``, ``"name#2"``, ..."""
    key, n = name, 1
    while key in out:
        key, n = f"{name}#{n}", n + 1
    out[key] = value


def probe_pass(
    layers: Sequence[L],
    name_of: Callable[[L], str],
    install: Callable[[L, Callable[[L, Any], None]], Callable[[], object]],
    run: Callable[[], object],
    fn: LayerFn[L, T],
) -> dict[str, T]:
    """``{name: fn(layer, its input)}`` for every call of every layer in ``layers`` during ``run()``.

    ``install(layer, probe)`` makes the framework call ``probe(layer, input)`` when ``layer`` is
    called (a hook, an attribute the layer reads) and returns what removes it; every probe is
    removed whatever ``run`` raises. ``run`` runs the model once and restores its modes itself.
    No layer at all is the core's ``ValueError`` for ``model``.
    """
    if not layers:
        raise no_info_dropout("model")
    out: dict[str, T] = {}

    def probe(layer: L, inp: Any) -> None:
        record(out, name_of(layer), fn(layer, inp))

    removers: list[Callable[[], object]] = []
    try:
        for layer in layers:
            removers.append(install(layer, probe))
        run()
    finally:
        for remove in removers:
            remove()
    return out


class LayerCalls(NamedTuple):
    """A backend's per-layer calls (one constant per backend), for :func:`model_diagnostics` and the like."""

    kl_map: Callable[[Any, Any], Array]  #: the layer's per-unit KL on its input, without noise
    alpha_map: Callable[[Any, Any], Array]  #: the layer's alpha per unit on its input
    batched: Callable[[Any, Any, Array], bool]  #: ``batched(layer, input, kl_map)``: has it a batch axis?
    xp: Namespace  #: the namespace the reductions run on


def _layer_stats(layer: Any, alpha: Array, pin_tol: float, xp: Namespace) -> AlphaStats:
    """:func:`alpha_stats` of one layer's ``alpha``, with the layer's own bounds (``layer.spec``)."""
    s = layer.spec
    return alpha_stats(alpha, max_alpha=s.max_alpha, alpha_min=s.alpha_min, pin_tol=pin_tol, xp=xp)


def model_alpha_stats(probe: Probe[AlphaStats], calls: LayerCalls, *, pin_tol: float) -> dict[str, AlphaStats]:
    """The backends' ``alpha_stats(model, x)``: :func:`alpha_stats` of ``calls.alpha_map(layer, input)`` per call."""
    pin_tol = check_pin_tol(pin_tol)
    return probe(lambda layer, inp: _layer_stats(layer, calls.alpha_map(layer, inp), pin_tol, calls.xp))


def model_diagnostics(
    probe: Probe[tuple[Array, AlphaStats]],
    calls: LayerCalls,
    *,
    task_loss: Any,
    beta: float | None,
    n_train: int | None,
    pin_tol: float,
    warn: bool,
) -> dict[str, float]:
    """The backends' ``diagnostics(model, x, ...)``: what a training loop logs, as Python floats.

    Per layer call ``"<name>/kl"`` (the batch mean of the per-sample KL: ``calls.kl_map`` summed
    over every axis but the batch when ``calls.batched``), ``"<name>/alpha_mean"``,
    ``"<name>/pinned_low"`` and ``"<name>/pinned_high"``; with ``task_loss``, ``beta`` and
    ``n_train`` also ``"kl_term"`` (``beta * sum kl / n_train``) and ``"kl_share"``. With ``warn``
    it warns once (:func:`warn_pinned`, :func:`warn_kl_dominates`).
    """
    pin_tol = check_pin_tol(pin_tol)
    xp = calls.xp

    def both(layer: Any, inp: Any) -> tuple[Array, AlphaStats]:
        kl = calls.kl_map(layer, inp)
        kl = per_sample_kl(kl, batched=calls.batched(layer, inp, kl), xp=xp)
        return batch_mean(kl, xp=xp), _layer_stats(layer, calls.alpha_map(layer, inp), pin_tol, xp)

    logs: dict[str, float] = {}
    total_kl = 0.0
    for name, (kl, stats) in probe(both).items():
        logs[f"{name}/kl"] = float(kl)
        total_kl += float(kl)
        logs[f"{name}/alpha_mean"] = float(stats.mean)
        logs[f"{name}/pinned_low"] = float(stats.pinned_low)
        logs[f"{name}/pinned_high"] = float(stats.pinned_high)
        if warn:  # stacklevel 5: the warning names the line that called the backend's diagnostics()
            warn_pinned(name, stats, stacklevel=5)
    if task_loss is not None and beta is not None and n_train is not None:
        kl_term = check_beta(beta) * total_kl / check_n_train(n_train)
        task = float(task_loss)
        logs["kl_term"] = kl_term
        logs["kl_share"] = kl_term / (task + kl_term) if task + kl_term > 0 else 0.0
        if warn:
            warn_kl_dominates(task, kl_term, stacklevel=5)
    return logs
