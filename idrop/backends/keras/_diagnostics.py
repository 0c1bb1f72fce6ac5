r"""Diagnostics of the Information Dropout layers of a Keras model: KL maps, alpha statistics, logging.

Written on ``keras.ops`` only (any Keras backend). A layer's *KL map* is its per-unit KL (eq. 3 or 4)
on its own input, computed without noise by the layer's package's functional ``info_dropout``.
``kl_maps`` collects it for every ``InfoDropout`` of a model during one inference call (each layer
hands its input to a probe set for that call). :class:`DiagnosticsCallback` logs the same numbers
from ``model.fit``. The pass, the reductions and the warn-once rules are
:mod:`idrop.core.diagnostics`; this module holds the Keras calls only.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
from keras import ops

from idrop import plotting as _plotting
from idrop.core import diagnostics as _diag
from idrop.core.spec import check_count, not_a_layer

from ._keras_tools import as_tensor, is_info_dropout, kept_records, layers_of, package_of, xp


def _check_layer(layer: Any) -> Any:
    if not is_info_dropout(layer):
        raise not_a_layer("layer", layer, "an InfoDropout layer")
    return layer


def kl_map(layer: keras.Layer, x: Any) -> Any:
    """The per-unit KL of ``layer`` on its input ``x``, without noise: the shape of the layer's output.

    Sum it over the channel axis (``-1``) for a heat map per position, over every axis but the batch
    for the per-sample KL that ``.kl`` holds in training.
    """
    layer = _check_layer(layer)
    h = layer.layer(x)
    if layer.norm is not None:
        h = layer.norm(h, training=False)
    f = ops.relu(h) if layer.activation == "relu" else ops.softplus(h)
    lognormal = layer.spec.prior == "log-normal"
    _, kl = package_of(layer).info_dropout(
        f,
        layer.alpha_layer(x),
        **layer.spec.kl_options,
        training=False,
        mu=layer.mu if lognormal else None,
        sigma=layer.sigma if lognormal else None,
    )
    return kl


def alpha_map(layer: keras.Layer, x: Any) -> Any:
    """``alpha(x) = alpha_min + max_alpha * sigmoid(alpha_layer(x))`` per unit, the layer's noise scale."""
    layer = _check_layer(layer)
    s = layer.spec
    return package_of(layer).alpha_from_logits(layer.alpha_layer(x), max_alpha=s.max_alpha, alpha_min=s.alpha_min)


def _probe(model: keras.Layer, x: Any, fn: Callable[[keras.Layer, Any], Any]) -> dict[str, Any]:
    """``fn(layer, its input)`` for every call of every InfoDropout in one inference call of ``model``."""
    x = as_tensor("x", x)
    layers = [layer for _, layer in layers_of(model) if is_info_dropout(layer)]

    def install(layer: keras.Layer, probe: Callable[[keras.Layer, Any], None]) -> Callable[[], None]:
        object.__setattr__(layer, "_probe", probe)  # a plain attribute: not tracked, never saved
        return lambda: object.__setattr__(layer, "_probe", None)

    def run() -> None:
        with kept_records(model):
            model(x, training=False)

    return _diag.probe_pass(layers, lambda layer: str(layer.name), install, run, fn)


_CALLS = _diag.LayerCalls(
    kl_map=kl_map,
    alpha_map=alpha_map,
    batched=lambda layer, inp, kl: len(kl.shape) > 1,  # a 1-D input to Dense is one sample
    xp=xp,
)


def kl_maps(model: keras.Layer, x: Any) -> dict[str, Any]:
    """The KL map (:func:`kl_map`) of every InfoDropout of ``model`` on batch ``x``, by layer name.

    ``model`` is called once eagerly with ``training=False``; a layer called twice appears as
    ``"name"`` and ``"name#1"``.
    """
    return _probe(model, x, kl_map)


def alpha_stats(model: keras.Layer, x: Any, *, pin_tol: float = _diag.PIN_TOL) -> dict[str, _diag.AlphaStats]:
    """Per InfoDropout of ``model`` on batch ``x``: mean alpha and the shares of units pinned at each bound.

    A unit is pinned when ``sigmoid(a)`` is within ``pin_tol`` of 0 (``pinned_low``, alpha at
    ``alpha_min``) or of 1 (``pinned_high``, alpha at ``alpha_min + max_alpha``).
    """
    return _diag.model_alpha_stats(functools.partial(_probe, model, x), _CALLS, pin_tol=pin_tol)


def diagnostics(
    model: keras.Layer,
    x: Any,
    *,
    task_loss: Any = None,
    beta: float | None = None,
    n_train: int | None = None,
    pin_tol: float = _diag.PIN_TOL,
    warn: bool = True,
) -> dict[str, float]:
    """What a training loop logs, as Python floats: per layer ``"<name>/kl"`` (mean per-sample KL),
    ``"<name>/alpha_mean"``, ``"<name>/pinned_low"``, ``"<name>/pinned_high"``; with ``task_loss``,
    ``beta`` and ``n_train`` also ``"kl_term"`` (``beta * sum kl / n_train``) and ``"kl_share"``.

    With ``warn`` it warns once (:class:`~idrop.core.diagnostics.IdropWarning`) when most units of a
    layer are pinned at a bound, or the KL term is most of the loss. :class:`DiagnosticsCallback`
    calls it from ``model.fit``.
    """
    probe = functools.partial(_probe, model, x)
    return _diag.model_diagnostics(
        probe, _CALLS, task_loss=task_loss, beta=beta, n_train=n_train, pin_tol=pin_tol, warn=warn
    )


class DiagnosticsCallback(keras.callbacks.Callback):
    """Add :func:`diagnostics` of a fixed batch ``x`` to ``model.fit``'s logs at the end of each epoch.

    The keys are ``"<layer>/kl"``, ``"<layer>/alpha_mean"``, ``"<layer>/pinned_low"`` and
    ``"<layer>/pinned_high"`` (so ``History``, ``CSVLogger`` and TensorBoard record them). The KL-share
    check uses each InfoDropout's own ``beta`` and ``n_train`` (the KL term it adds to the loss)
    against the epoch's ``"loss"``; it and the pinned-alpha check warn once.

    Args:
        x: a batch of training inputs (kept; a few hundred examples are enough).
        every: run every ``every`` epochs (default 1).
        pin_tol: as :func:`alpha_stats`.
    """

    def __init__(self, x: Any, *, every: int = 1, pin_tol: float = _diag.PIN_TOL) -> None:
        super().__init__()
        self.x = as_tensor("x", x)
        self.every = check_count("every", every, "epochs between two logs")
        self.pin_tol = _diag.check_pin_tol(pin_tol)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if epoch % self.every:
            return
        logs = {} if logs is None else logs
        stats = diagnostics(self.model, self.x, pin_tol=self.pin_tol)
        logs.update(stats)
        kl_term = 0.0
        for _, layer in layers_of(self.model):
            if is_info_dropout(layer) and layer.beta is not None and f"{layer.name}/kl" in stats:
                scheduled = getattr(layer, "_beta_schedule", None)  # installed by BetaScheduler
                beta = layer.beta if scheduled is None else float(ops.convert_to_numpy(scheduled()))
                kl_term += beta * stats[f"{layer.name}/kl"] / layer.n_train
        if kl_term > 0 and "loss" in logs:
            _diag.warn_kl_dominates(float(logs["loss"]) - kl_term, kl_term)


def plot_kl_maps(
    maps: dict[str, Any], *, index: int = 0, channel_axis: int = -1, image: Any = None, cmap: str = "viridis"
) -> Any:
    """:func:`idrop.plotting.plot_kl_maps` for Keras maps (channels last); needs matplotlib."""
    cpu = {name: np.asarray(ops.convert_to_numpy(kl)) for name, kl in maps.items()}
    if image is not None and not isinstance(image, np.ndarray):
        image = ops.convert_to_numpy(image)
    return _plotting.plot_kl_maps(cpu, index=index, channel_axis=channel_axis, image=image, cmap=cmap)
