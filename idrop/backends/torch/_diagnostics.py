r"""Diagnostics of the Information Dropout layers of a torch model: KL maps, alpha statistics, logging.

A layer's *KL map* is its per-unit KL (eq. 3 or 4) on its own input, computed without noise
(the KL depends on ``f(x)`` and ``alpha(x)`` only); ``kl_maps`` collects it for every
``InfoDropout`` of a model with forward pre-hooks during one evaluation pass. The pass itself, the
reductions, the pinned-unit rule and the warn-once checks are :mod:`idrop.core.diagnostics`; this
module holds the torch calls only.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from idrop import plotting as _plotting
from idrop.core import diagnostics as _diag
from idrop.core.spec import check_input_type, not_a_layer

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

    def install(layer: InfoDropout, probe: Callable[[InfoDropout, Any], None]) -> Callable[[], object]:
        return layer.register_forward_pre_hook(lambda mod, args: probe(mod, args[0])).remove

    def run() -> None:
        modes = [(m, m.training) for m in model.modules()]
        try:
            model.eval()
            with kept_records(model):
                model(x)
        finally:
            for m, mode in modes:
                m.training = mode

    return _diag.probe_pass(list(names), names.__getitem__, install, run, fn)


_CALLS = _diag.LayerCalls(
    kl_map=kl_map,
    alpha_map=alpha_map,
    batched=lambda layer, inp, kl: not unbatched(layer.layer, inp),
    xp=xp,
)


def kl_maps(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The KL map (:func:`kl_map`) of every InfoDropout of ``model`` on batch ``x``, by module name.

    ``model`` runs once in evaluation mode (its modes are restored); a layer called twice appears as
    ``"name"`` and ``"name#1"``.
    """
    return _probe(model, x, kl_map)


def alpha_stats(model: nn.Module, x: torch.Tensor, *, pin_tol: float = _diag.PIN_TOL) -> dict[str, _diag.AlphaStats]:
    """Per InfoDropout of ``model`` on batch ``x``: mean alpha and the shares of units pinned at each bound.

    A unit is pinned when ``sigmoid(a)`` is within ``pin_tol`` of 0 (``pinned_low``, alpha at
    ``alpha_min``) or of 1 (``pinned_high``, alpha at ``alpha_min + max_alpha``).
    """
    return _diag.model_alpha_stats(functools.partial(_probe, model, x), _CALLS, pin_tol=pin_tol)


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
    probe = functools.partial(_probe, model, x)
    return _diag.model_diagnostics(
        probe, _CALLS, task_loss=task_loss, beta=beta, n_train=n_train, pin_tol=pin_tol, warn=warn
    )


def plot_kl_maps(
    maps: dict[str, torch.Tensor], *, index: int = 0, channel_axis: int = 1, image: Any = None, cmap: str = "viridis"
) -> Any:
    """:func:`idrop.plotting.plot_kl_maps` for torch maps (channels on ``dim=1``); needs matplotlib."""
    cpu = {name: kl.detach().float().cpu().numpy() for name, kl in maps.items()}
    if isinstance(image, torch.Tensor):
        image = image.detach().float().cpu().numpy()
    return _plotting.plot_kl_maps(cpu, index=index, channel_axis=channel_axis, image=image, cmap=cmap)
