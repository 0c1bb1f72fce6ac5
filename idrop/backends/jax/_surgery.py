"""Model surgery for Flax NNX: :func:`to_info_dropout` and :func:`strip_info_dropout` (rules in
:mod:`idrop.core.surgery`).

Blocks are found inside ``nnx.Sequential`` modules anywhere in the graph: an ``nnx.Linear`` or
``nnx.Conv``, optionally an ``nnx.BatchNorm``, then ``nnx.relu``/``jax.nn.relu`` or
``nnx.softplus``/``jax.nn.softplus``, optionally followed by an ``nnx.Dropout``. Not handled, by
design: maps held as attributes of a custom module with the activation applied in ``__call__``,
whose data flow the graph does not show; naming such a map in ``layers=`` raises ``ValueError``
with the maps that can be wrapped.
"""

from __future__ import annotations

from typing import Any

import jax
from flax import nnx

from idrop.core.surgery import check_all_found, plan, selector

from ._layers import InfoDropout, _NoisyMap

_ACTS = {jax.nn.relu: "relu", jax.nn.softplus: "softplus"}


def _kind(m: Any) -> str:
    if type(m) in (nnx.Linear, nnx.Conv):
        return "map"
    if type(m) is nnx.BatchNorm:
        return "norm"
    try:
        act = _ACTS.get(m)
    except TypeError:  # an unhashable callable
        act = None
    if act is not None:
        return act
    return "dropout" if isinstance(m, nnx.Dropout) else "other"


def _sequentials(model: nnx.Module) -> list[tuple[str, nnx.Sequential]]:
    """``(dotted path, nnx.Sequential)`` pairs, not looking inside idrop's own layers."""
    inside = [path for path, m in nnx.iter_modules(model) if isinstance(m, _NoisyMap)]
    found = []
    for path, m in nnx.iter_modules(model):
        if isinstance(m, nnx.Sequential) and not any(path[: len(p)] == p for p in inside):
            found.append((".".join(map(str, path)), m))
    return found


def to_info_dropout(
    model: nnx.Module,
    *,
    rngs: nnx.Rngs,
    layers: Any = None,
    replace: str = "activations",
    inplace: bool = False,
    **options: Any,
) -> nnx.Module:
    """``model`` with Information Dropout in its ``map [norm] act`` blocks; same outputs in evaluation.

    Each chosen block becomes ``InfoDropout(map, activation=..., norm=norm, rngs=rngs, **options)``
    around the trained map and norm themselves; only the alpha branch is new (initialised from
    ``rngs``). With ``model.eval()`` (or ``deterministic=True``) the outputs are ``model``'s.

    Args:
        model: an NNX module whose blocks sit in ``nnx.Sequential`` modules.
        rngs: ``nnx.Rngs`` for the alpha branches (``params``) and the noise (``dropout``).
        layers: which maps to wrap: ``None`` (every block), a name or names (dotted paths, e.g.
            ``"layers.0"``), or a predicate ``(name, module) -> bool``.
        replace: ``"activations"`` (every block) or ``"dropout"`` (only blocks followed by an
            ``nnx.Dropout``, which Information Dropout replaces).
        inplace: change ``model`` itself instead of a copy (``nnx.clone``).
        **options: ``InfoDropout`` options (``max_alpha``, ``prior``, ``deterministic``, ...).

    Raises:
        ValueError: a bad ``replace`` or option, or a name in ``layers`` that is not the map of a block.
    """
    model = model if inplace else nnx.clone(model)
    keep = selector(layers)
    wrapped, candidates = [], []
    for path, seq in _sequentials(model):
        entries = list(seq.layers)
        drop, put = set(), {}
        for b in plan([_kind(m) for m in entries], replace=replace):
            name = f"{path}.layers.{b.map}" if path else f"layers.{b.map}"
            candidates.append(name)
            if not keep(name, entries[b.map]):
                continue
            norm = None if b.norm is None else entries[b.norm]
            put[b.map] = InfoDropout(entries[b.map], activation=b.activation, norm=norm, rngs=rngs, **options)
            drop |= {i for i in (b.norm, b.act, b.dropout) if i is not None}
            wrapped.append(name)
        if put:
            seq.layers = nnx.List([put.get(i, m) for i, m in enumerate(entries) if i not in drop])
    check_all_found(layers, wrapped, candidates)
    return model


def _plain(layer: _NoisyMap) -> list[Any]:
    act = jax.nn.relu if layer.spec_activation == "relu" else jax.nn.softplus
    return [layer.layer, act] if layer.norm is None else [layer.layer, layer.norm, act]


def strip_info_dropout(model: nnx.Module, *, inplace: bool = False) -> nnx.Module:
    """``model`` without idrop's layers: each becomes ``map, [norm,] relu/softplus`` in its ``nnx.Sequential``
    (an ``nnx.Sequential`` of them where it is an attribute). Maps and norms keep their weights; the
    alpha branches and priors are dropped, so evaluation outputs are ``model``'s. The baselines are
    taken out too.

    Args:
        model: an NNX module.
        inplace: change ``model`` itself instead of a copy (``nnx.clone``).
    """
    model = model if inplace else nnx.clone(model)
    if isinstance(model, _NoisyMap):
        return nnx.Sequential(*_plain(model))
    modules = [m for _, m in nnx.iter_modules(model) if not isinstance(m, _NoisyMap)]
    for seq in modules:  # first splice the layers of every Sequential, then attributes elsewhere
        if isinstance(seq, nnx.Sequential):
            seq.layers = nnx.List([p for m in seq.layers for p in (_plain(m) if isinstance(m, _NoisyMap) else [m])])
    for parent in modules:
        for name, value in list(vars(parent).items()):
            if isinstance(value, _NoisyMap):
                setattr(parent, name, nnx.Sequential(*_plain(value)))
    return model
