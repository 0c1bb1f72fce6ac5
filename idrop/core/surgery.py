"""Model surgery, the rules every backend shares: which blocks ``to_info_dropout`` wraps.

A backend describes the children of one sequential container (``nn.Sequential``,
``keras.Sequential``, ``nnx.Sequential``) as a list of kinds, and :func:`plan` returns the
blocks to wrap. A block is a map (Linear/Dense/Conv), optionally a batch norm, then a ReLU or
Softplus, optionally followed by a dropout layer:

- ``replace="activations"`` (default): every block; a dropout after it stays as it is;
- ``replace="dropout"``: only the blocks followed by a dropout layer, whose place Information
  Dropout takes (the dropout layer is removed).

The wrapped layer is ``InfoDropout(map, activation=..., norm=norm)`` with the map and the norm
themselves (their trained weights), so in evaluation it computes ``act(norm(map(x)))``, as the
block did. A map that already carries its own ReLU/Softplus (Keras ``Dense(activation="relu")``)
is a block on its own (kind ``"map+relu"`` / ``"map+softplus"``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any, NamedTuple

from .spec import check_replace, unmatched_layers

#: The kinds a backend reports for each child of a sequential container.
KINDS = ("map", "map+relu", "map+softplus", "norm", "relu", "softplus", "dropout", "other")


class Block(NamedTuple):
    """Indices into the container's children of one block to wrap (``None``: absent)."""

    map: int
    norm: int | None
    act: int | None  # None when the map applies the activation itself
    dropout: int | None  # removed with replace="dropout"
    activation: str


def plan(kinds: list[str], *, replace: str = "activations") -> list[Block]:
    """The blocks of a sequential container with these children's kinds, in order."""
    replace = check_replace(replace)
    blocks, i, n = [], 0, len(kinds)
    while i < n:
        kind = kinds[i]
        if kind in ("map+relu", "map+softplus"):
            act, j = None, i + 1
            activation, norm = kind.split("+")[1], None
        elif kind == "map":
            j = i + 1
            norm = j if j < n and kinds[j] == "norm" else None
            j += norm is not None
            if j >= n or kinds[j] not in ("relu", "softplus"):
                i += 1
                continue
            act, activation, j = j, kinds[j], j + 1
        else:
            i += 1
            continue
        dropout = j if j < n and kinds[j] == "dropout" else None
        if replace == "activations" or dropout is not None:
            blocks.append(Block(i, norm, act, dropout if replace == "dropout" else None, activation))
        i = j + (dropout is not None)
    return blocks


def selector(layers: Any) -> Callable[[str, Any], bool]:
    """``to_info_dropout``'s ``layers=`` as a predicate of ``(name, map)``.

    ``None``: every block; a string or a collection of strings: the maps of these names (the
    dotted path in torch and NNX, the layer's name in Keras); a callable: itself.
    """
    if layers is None:
        return lambda name, layer: True
    if callable(layers):
        return layers
    names = {layers} if isinstance(layers, str) else set(layers)
    return lambda name, layer: name in names


def check_all_found(layers: Any, wrapped: Collection[str], candidates: Collection[str]) -> None:
    """Every name given in ``layers=`` must be the map of a block that was wrapped."""
    if layers is None or callable(layers):
        return
    names = [layers] if isinstance(layers, str) else list(layers)
    missing = [n for n in names if n not in wrapped]
    if missing:
        raise unmatched_layers(missing, sorted(candidates))
