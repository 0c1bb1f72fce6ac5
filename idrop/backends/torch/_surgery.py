"""Model surgery for torch: :func:`to_info_dropout` puts Information Dropout into a trained model,
:func:`strip_info_dropout` takes it out again (the blocks are chosen by :mod:`idrop.core.surgery`).

Blocks are found inside ``nn.Sequential`` containers anywhere in the module tree: a
``Linear``/``Conv1d/2d/3d``, optionally a ``BatchNorm1d/2d/3d``, then an ``nn.ReLU`` or an
``nn.Softplus()`` (``beta=1``), optionally followed by a dropout module. The block's entries are
replaced in place of the map's entry (the other entries keep their keys, so ``state_dict`` keys
outside the blocks do not change). Not handled, by design: maps held as attributes of a custom
module and activations applied in ``forward`` (``F.relu``), whose data flow the module tree does
not show; naming such a map in ``layers=`` raises ``ValueError`` with the maps that can be wrapped.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from torch import nn

from idrop.core.surgery import check_all_found, plan, selector

from ._layers import InfoDropout, _NoisyMap

_MAPS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_DROPOUTS = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)


def _kind(m: nn.Module) -> str:
    if type(m) in _MAPS:
        return "map"
    if type(m) in _NORMS:
        return "norm"
    if type(m) is nn.ReLU:
        return "relu"
    # torch's softplus is linear above `threshold` (20): within float32 rounding of log(1 + e^x) there.
    if type(m) is nn.Softplus and m.beta == 1 and m.threshold >= 20:
        return "softplus"
    return "dropout" if isinstance(m, _DROPOUTS) else "other"


def _sequentials(module: nn.Module, prefix: str = "") -> Iterator[tuple[str, nn.Sequential]]:
    """``(path, nn.Sequential)`` pairs in the tree, not looking inside idrop's own layers."""
    if isinstance(module, _NoisyMap):
        return
    if isinstance(module, nn.Sequential):
        yield prefix, module
    for name, child in module.named_children():
        yield from _sequentials(child, f"{prefix}.{name}" if prefix else name)


def to_info_dropout(
    model: nn.Module, *, layers: Any = None, replace: str = "activations", inplace: bool = False, **options: Any
) -> nn.Module:
    """``model`` with Information Dropout in its ``map [norm] act`` blocks; evaluation outputs unchanged.

    Each chosen block becomes ``InfoDropout(map, activation=..., norm=norm, **options)`` around
    the trained map and norm themselves; only the alpha branch is new (the noise is off in
    ``model.eval()``, so the outputs in evaluation are those of ``model``).

    Args:
        model: an ``nn.Module`` whose blocks sit in ``nn.Sequential`` containers.
        layers: which maps to wrap: ``None`` (every block), a name or names (dotted paths as in
            ``named_modules``, e.g. ``"features.0"``), or a predicate ``(name, module) -> bool``.
        replace: ``"activations"`` (every block) or ``"dropout"`` (only blocks followed by a
            dropout module, which Information Dropout replaces).
        inplace: change ``model`` itself instead of a deep copy.
        **options: ``InfoDropout`` options (``max_alpha``, ``prior``, ``mean_one``, ...).

    Returns:
        The model with Information Dropout (``model`` itself when ``inplace``).

    Raises:
        ValueError: a bad ``replace`` or option, or a name in ``layers`` that is not the map of a block.

    Example:
        >>> import torch
        >>> from idrop.backends.torch import to_info_dropout
        >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2)).eval()
        >>> wrapped = to_info_dropout(net).eval()
        >>> x = torch.randn(3, 4)
        >>> torch.equal(wrapped(x), net(x))
        True
    """
    model = model if inplace else copy.deepcopy(model)
    keep = selector(layers)
    wrapped, candidates = [], []
    for path, seq in list(_sequentials(model)):
        entries = list(seq._modules.items())
        blocks = plan([_kind(m) for _, m in entries], replace=replace)
        drop, put = set(), {}
        for b in blocks:
            name, layer = entries[b.map]
            full = f"{path}.{name}" if path else name
            candidates.append(full)
            if not keep(full, layer):
                continue
            norm = None if b.norm is None else entries[b.norm][1]
            new = InfoDropout(layer, activation=b.activation, norm=norm, **options).train(layer.training)
            p = next(layer.parameters(), None)
            put[b.map] = new if p is None else new.to(p.device)  # the fresh alpha branch on the map's device
            drop |= {i for i in (b.norm, b.act, b.dropout) if i is not None}
            wrapped.append(full)
        if put:
            seq._modules = OrderedDict((n, put.get(i, m)) for i, (n, m) in enumerate(entries) if i not in drop)
    check_all_found(layers, wrapped, candidates)
    return model


def _plain(layer: _NoisyMap) -> nn.Sequential:
    act = nn.ReLU() if layer.spec_activation == "relu" else nn.Softplus()
    parts = [layer.layer] if layer.norm is None else [layer.layer, layer.norm]
    return nn.Sequential(*parts, act)


def strip_info_dropout(model: nn.Module, *, inplace: bool = False) -> nn.Module:
    """``model`` without idrop's layers: each becomes ``nn.Sequential(map, [norm,] ReLU/Softplus)``.

    The maps and norms keep their weights; the alpha branches and the priors' ``mu``/``sigma``
    are dropped. Evaluation outputs are those of ``model`` in ``model.eval()``. The baselines
    (``BinaryDropout``, ...) are taken out too. A model without them comes back unchanged.

    Args:
        model: an ``nn.Module``.
        inplace: change ``model`` itself instead of a deep copy.
    """
    if isinstance(model, _NoisyMap):
        return _plain(model if inplace else copy.deepcopy(model))
    model = model if inplace else copy.deepcopy(model)
    stack = [model]
    while stack:
        parent = stack.pop()
        for name, child in list(parent.named_children()):
            if isinstance(child, _NoisyMap):
                setattr(parent, name, _plain(child).train(child.training))
            else:
                stack.append(child)
    return model
