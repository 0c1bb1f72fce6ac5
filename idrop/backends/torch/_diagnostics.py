r"""Diagnostics of the Information Dropout layers of a torch model: KL maps, alpha statistics, logging.

A layer's *KL map* is its per-unit KL (eq. 3 or 4) on its own input, computed without noise
(the KL depends on ``f(x)`` and ``alpha(x)`` only); ``kl_maps`` collects it for every
``InfoDropout`` of a model with forward pre-hooks during one evaluation pass. The reductions, the
pinned-unit rule and the warn-once checks are :mod:`idrop.core.diagnostics`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from idrop import plotting as _plotting
from idrop.core import diagnostics as _diag
from idrop.core.loss import batch_mean, per_sample_kl
from idrop.core.spec import check_beta, check_input_type, check_n_train, no_info_dropout, not_a_layer

from ._functional import alpha_from_logits, info_dropout
from ._layers import InfoDropout
from ._maps import unbatched
from ._namespace import xp
from ._uncertainty import kept_records


def _check_layer(layer: Any) -> InfoDropout:
    if not isinstance(layer, InfoDropout):
        raise not_a_layer("layer", layer, "an InfoDropout layer")
    return layer


def kl_map(layer: InfoDropout, x: torch.Tensor) -> torch.Tensor:
    """The per-unit KL of ``layer`` on its input ``x``, without noise: the shape of the layer's output.

    Sum it over the channel axis (``dim=1`` for a conv) for a heat map per position, over every
    axis but the batch for the per-sample KL that ``.kl`` holds in training.
    """
    layer = _check_layer(layer)
    f = layer.activation_of(x)
    lognormal = layer.spec.prior == "log-normal"
    _, kl = info_dropout(
        f,
        layer.alpha_layer(x),
        **layer.spec.kl_options,
        training=False,
        mu=layer.mu if lognormal else None,
        sigma=layer.sigma if lognormal else None,
    )
    return kl


def alpha_map(layer: InfoDropout, x: torch.Tensor) -> torch.Tensor:
    """``alpha(x) = alpha_min + max_alpha * sigmoid(alpha_layer(x))`` per unit, the layer's noise scale."""
    layer = _check_layer(layer)
    return alpha_from_logits(layer.alpha_layer(x), max_alpha=layer.spec.max_alpha, alpha_min=layer.spec.alpha_min)


@torch.no_grad()
def _probe(model: nn.Module, x: torch.Tensor, fn: Callable[[InfoDropout, torch.Tensor], Any]) -> dict[str, Any]:
    """``fn(layer, its input)`` for every call of every InfoDropout in one evaluation pass of ``model``."""
    check_input_type("x", x, isinstance(x, torch.Tensor))
    names = {m: (name or type(m).__name__) for name, m in model.named_modules() if isinstance(m, InfoDropout)}
    if not names:
        raise no_info_dropout("model")
    out: dict[str, Any] = {}

    def hook(mod: InfoDropout, args: tuple[Any, ...]) -> None:
        key, n = names[mod], 1
        while key in out:  # a layer called twice: "name", "name#1", ...
            key, n = f"{names[mod]}#{n}", n + 1
        out[key] = fn(mod, args[0])

    handles = [m.register_forward_pre_hook(hook) for m in names]
    modes = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        with kept_records(model):
            model(x)
    finally:
        for h in handles:
            h.remove()
        for m, mode in modes:
            m.training = mode
    return out


def kl_maps(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The KL map (:func:`kl_map`) of every InfoDropout of ``model`` on batch ``x``, by module name.

    ``model`` runs once in evaluation mode (its modes are restored); a layer called twice appears as
    ``"name"`` and ``"name#1"``.
    """
    return _probe(model, x, kl_map)


def _layer_alpha_stats(layer: InfoDropout, x: torch.Tensor, pin_tol: float) -> _diag.AlphaStats:
    s = layer.spec
    return _diag.alpha_stats(alpha_map(layer, x), max_alpha=s.max_alpha, alpha_min=s.alpha_min, pin_tol=pin_tol, xp=xp)


def alpha_stats(model: nn.Module, x: torch.Tensor, *, pin_tol: float = _diag.PIN_TOL) -> dict[str, _diag.AlphaStats]:
    """Per InfoDropout of ``model`` on batch ``x``: mean alpha and the shares of units pinned at each bound.

    A unit is pinned when ``sigmoid(a)`` is within ``pin_tol`` of 0 (``pinned_low``, alpha at
    ``alpha_min``) or of 1 (``pinned_high``, alpha at ``alpha_min + max_alpha``).
    """
    pin_tol = _diag.check_pin_tol(pin_tol)
    return _probe(model, x, lambda layer, inp: _layer_alpha_stats(layer, inp, pin_tol))


def diagnostics(
    model: nn.Module,
    x: torch.Tensor,
    *,
    task_loss: float | torch.Tensor | None = None,
    beta: float | None = None,
    n_train: int | None = None,
    pin_tol: float = _diag.PIN_TOL,
    warn: bool = True,
) -> dict[str, float]:
    """What a training loop logs, as Python floats: per layer ``"<name>/kl"`` (mean per-sample KL),
    ``"<name>/alpha_mean"``, ``"<name>/pinned_low"``, ``"<name>/pinned_high"``; with ``task_loss``,
    ``beta`` and ``n_train`` also ``"kl_term"`` (``beta * sum kl / n_train``) and ``"kl_share"``.

    With ``warn`` it warns once (:class:`~idrop.core.diagnostics.IdropWarning`) when most units of a
    layer are pinned at a bound, or the KL term is most of the loss. Runs ``model`` once on ``x``
    in evaluation mode, without gradients.
    """
    pin_tol = _diag.check_pin_tol(pin_tol)

    def both(layer: InfoDropout, inp: torch.Tensor) -> tuple[torch.Tensor, _diag.AlphaStats]:
        kl = per_sample_kl(kl_map(layer, inp), batched=not unbatched(layer.layer, inp), xp=xp)
        return batch_mean(kl, xp=xp), _layer_alpha_stats(layer, inp, pin_tol)

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
    maps: dict[str, torch.Tensor], *, index: int = 0, channel_axis: int = 1, image: Any = None, cmap: str = "viridis"
) -> Any:
    """:func:`idrop.plotting.plot_kl_maps` for torch maps (channels on ``dim=1``); needs matplotlib."""
    cpu = {name: kl.detach().float().cpu().numpy() for name, kl in maps.items()}
    if isinstance(image, torch.Tensor):
        image = image.detach().float().cpu().numpy()
    return _plotting.plot_kl_maps(cpu, index=index, channel_axis=channel_axis, image=image, cmap=cmap)
