"""Model surgery for Keras 3: :func:`to_info_dropout` and :func:`strip_info_dropout` (rules in
:mod:`idrop.core.surgery`).

Written on Keras APIs only (``keras.models.clone_model`` with a ``clone_function``), so the same
code serves every Keras backend; the layer classes are arguments of :func:`wrap` and :func:`strip`.

- ``keras.Sequential``: the layers in order give the blocks (``Dense``/``ConvND`` [``BatchNormalization``]
  ``ReLU``/``Activation("relu"|"softplus")`` [``Dropout``]); the block's other layers become
  ``keras.layers.Identity`` in the clone.
- Functional models: a ``Dense``/``ConvND`` with its own ``activation="relu"``/``"softplus"`` (the
  Keras idiom) is a block on its own. Separate activation layers in a functional graph are not
  matched (their data flow would need the graph's nodes); naming such a map in ``layers=`` raises
  ``ValueError`` with the maps that can be wrapped.

Every layer of the result is a new layer holding a copy of the trained weights, so training the
result leaves ``model`` as it was.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import keras

from idrop.core.spec import unsupported_model
from idrop.core.surgery import check_all_found, plan, selector

_MAPS = (keras.layers.Dense, keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)
_ACTS = ("relu", "softplus")


def _act_name(fn: Any) -> str | None:
    return getattr(fn, "__name__", None)


def _kind(layer: keras.Layer) -> str:
    if type(layer) in _MAPS:
        act = _act_name(layer.activation)
        return "map" if act in (None, "linear") else f"map+{act}" if act in _ACTS else "other"
    if type(layer) is keras.layers.BatchNormalization:
        return "norm"
    if type(layer) is keras.layers.ReLU:
        plain = layer.max_value is None and not layer.negative_slope and not layer.threshold
        return "relu" if plain else "other"
    if type(layer) is keras.layers.Activation:
        act = _act_name(layer.activation)
        if act in _ACTS:
            return act
    return "dropout" if isinstance(layer, keras.layers.Dropout) else "other"


def _copy(layer: keras.Layer, **config: Any) -> keras.Layer:
    """A new layer of ``layer``'s class and config (``config`` overrides) with its trained weights."""
    new = type(layer).from_config({**layer.get_config(), **config})
    if layer.built:
        new.build(layer.input.shape if _has_input(layer) else layer._build_shapes_dict["input_shape"])
        new.set_weights(layer.get_weights())
    return new


def _has_input(layer: keras.Layer) -> bool:
    try:
        layer.input  # noqa: B018 - raises for a layer that was never called in a graph
    except (AttributeError, ValueError):
        return False
    return True


def _clone(model: keras.Model, replace_layer: dict[int, Any]) -> keras.Model:
    # keras.src.models.functional.Functional (Keras 3.15): the class of functional models, which
    # clone_model can rebuild as Sequential ones; a subclassed model's call is Python it cannot see.
    from keras.src.models.functional import Functional

    if not isinstance(model, (keras.Sequential, Functional)):
        raise unsupported_model(
            "a keras.Sequential or functional keras.Model (a subclassed model's call cannot be rebuilt; "
            "apply the surgery to its Sequential or functional parts)",
            model,
        )

    def clone_function(layer: keras.Layer) -> keras.Layer:
        made = replace_layer.get(id(layer))
        return made() if made is not None else _copy(layer)

    return keras.models.clone_model(model, clone_function=clone_function)


def wrap(model: keras.Model, info_dropout: type, *, layers: Any, replace: str, **options: Any) -> keras.Model:
    """:func:`to_info_dropout` with the given ``InfoDropout`` class (one per Keras adapter)."""
    keep = selector(layers)
    ordered = list(model.layers)
    sequential = isinstance(model, keras.Sequential)
    kinds = [_kind(layer) for layer in ordered]
    if not sequential:
        kinds = [k if k.startswith("map+") else "other" for k in kinds]
    todo: dict[int, Callable[[], keras.Layer]] = {}
    wrapped: list[str] = []
    candidates: list[str] = []
    for b in plan(kinds, replace=replace):
        layer = ordered[b.map]
        candidates.append(layer.name)
        if not keep(layer.name, layer):
            continue
        norm = None if b.norm is None else ordered[b.norm]

        def make(
            layer: keras.Layer = layer, norm: keras.Layer | None = norm, activation: str = b.activation
        ) -> keras.Layer:
            inner = _copy(layer, activation="linear")
            return info_dropout(
                inner,
                activation=activation,
                norm=None if norm is None else _copy(norm),
                name=f"{layer.name}_info_dropout",
                **options,
            )

        todo[id(layer)] = make
        for i in (b.norm, b.act, b.dropout):
            if i is not None:
                todo[id(ordered[i])] = functools.partial(keras.layers.Identity, name=ordered[i].name)
        wrapped.append(layer.name)
    check_all_found(layers, wrapped, candidates)
    return _clone(model, todo)


def strip(model: keras.Model, noisy: type) -> keras.Model:
    """:func:`strip_info_dropout` for the adapter whose layers share the base class ``noisy``."""
    todo: dict[int, Callable[[], keras.Layer]] = {}
    for layer in model.layers:
        if isinstance(layer, noisy):

            def make(layer: Any = layer) -> keras.Layer:
                parts = [_copy(layer.layer)]
                if layer.norm is not None:
                    parts.append(_copy(layer.norm))
                parts.append(keras.layers.Activation(layer.activation))
                return keras.Sequential(parts, name=layer.name)

            todo[id(layer)] = make
    return _clone(model, todo)


def to_info_dropout(
    model: keras.Model, *, layers: Any = None, replace: str = "activations", **options: Any
) -> keras.Model:
    """A copy of ``model`` with Information Dropout in its ``map [norm] act`` blocks; same outputs in evaluation.

    Each chosen block becomes ``InfoDropout(<copy of the map, linear>, activation=..., norm=<copy>,
    **options)`` with the trained weights; only the alpha branch is new, and in evaluation
    (``training=False``) the output is ``act(norm(map(x)))`` as before.

    Args:
        model: a built ``keras.Sequential`` or functional ``keras.Model``.
        layers: which maps to wrap: ``None`` (every block), a layer name or names, or a predicate
            ``(name, layer) -> bool``.
        replace: ``"activations"`` (every block) or ``"dropout"`` (only blocks followed by a
            ``Dropout`` layer, which Information Dropout replaces).
        **options: ``InfoDropout`` options (``max_alpha``, ``prior``, ``seed``, ``beta``, ``n_train``, ...).

    Raises:
        ValueError: a bad ``replace`` or option, or a name in ``layers`` that is not the map of a block.
    """
    from ._layers import InfoDropout

    return wrap(model, InfoDropout, layers=layers, replace=replace, **options)


def strip_info_dropout(model: keras.Model) -> keras.Model:
    """A copy of ``model`` with each idrop layer replaced by ``Sequential([map, [norm,] Activation])``.

    The maps and norms keep their trained weights; the alpha branches and priors are dropped, so the
    outputs in evaluation are ``model``'s. The baselines (``BinaryDropout``, ...) are taken out too.
    """
    from ._maps import NoisyMap

    return strip(model, NoisyMap)
