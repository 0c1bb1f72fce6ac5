"""What the Keras tools share: finding idrop's layers in a model and the ``keras.ops`` namespaces.

The tools (``_uncertainty``, ``_diagnostics``, ``_schedules``) use ``keras.ops`` only, so they work
with the Keras layers on any Keras backend. They recognise idrop's layers by the package that
defines them (``idrop.backends.<name>``) rather than by one class, and call that package's own
functional ops, so the same code serves each package's layers.
"""

from __future__ import annotations

import contextlib
import importlib
import numbers
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import keras
from keras import ops

from idrop.core.spec import check_input_type

_NOISY = ("InfoDropout", "BinaryDropout", "GaussianDropout", "LogNormalDropout")


def _is_idrop(layer: Any, names: tuple[str, ...]) -> bool:
    cls = type(layer)
    return (
        isinstance(layer, keras.Layer) and cls.__module__.startswith("idrop.backends.") and cls.__name__ in names
    ) or any(c.__module__.startswith("idrop.backends.") and c.__name__ in names for c in cls.__mro__[1:])


def is_info_dropout(layer: Any) -> bool:
    """Whether ``layer`` is an idrop Keras ``InfoDropout`` (of any Keras package of idrop)."""
    return _is_idrop(layer, ("InfoDropout",))


def is_noisy(layer: Any) -> bool:
    """Whether ``layer`` is one of idrop's noisy Keras layers (``InfoDropout`` or a baseline)."""
    return _is_idrop(layer, _NOISY)


def package_of(layer: Any) -> ModuleType:
    """The idrop package that defines ``layer``'s class (its ``info_dropout``, ``alpha_from_logits``)."""
    for c in type(layer).__mro__:
        if c.__module__.startswith("idrop.backends."):
            return importlib.import_module(".".join(c.__module__.split(".")[:3]))
    raise TypeError(f"{type(layer).__name__} is not an idrop layer")


def layers_of(model: Any) -> Iterator[tuple[str, keras.Layer]]:
    """``(name, layer)`` for ``model`` and every layer under it, depth first (Keras's ``_flatten_layers``)."""
    for layer in model._flatten_layers(include_self=True, recursive=True):
        yield layer.name, layer


def as_tensor(name: str, x: Any) -> Any:
    """``x`` as a tensor of the running Keras backend; Python lists and numbers are refused (core's error)."""
    check_input_type(name, x, not isinstance(x, (list, tuple, numbers.Number)) and hasattr(x, "shape"))
    return ops.convert_to_tensor(x)


class OpsNamespace:
    """The core's array protocol (what :mod:`idrop.core.uncertainty` and ``diagnostics`` use) on ``keras.ops``."""

    exp = staticmethod(ops.exp)
    log = staticmethod(ops.log)
    sqrt = staticmethod(ops.sqrt)
    square = staticmethod(ops.square)
    where = staticmethod(ops.where)
    zeros_like = staticmethod(ops.zeros_like)
    ones_like = staticmethod(ops.ones_like)
    clip = staticmethod(ops.clip)
    cos = staticmethod(ops.cos)
    floor = staticmethod(ops.floor)

    @staticmethod
    def asarray(x: Any) -> Any:
        return ops.cast(x, "float32")

    @staticmethod
    def sum(x: Any, axis: Any = None) -> Any:
        return ops.sum(x, axis=axis)

    @staticmethod
    def mean(x: Any, axis: Any = None) -> Any:
        return ops.mean(x, axis=axis)


xp = OpsNamespace()


@contextlib.contextmanager
def kept_records(model: Any) -> Iterator[None]:
    """Leave every InfoDropout's KL records (``.kl``, what ``kl_loss`` collects) and KL metric as they were."""
    saved = []
    for _, layer in layers_of(model):
        if is_info_dropout(layer):
            r = layer._kl_records
            # No KL metric on the JAX backend (docs/design-notes.md section 6).
            variables = [] if layer.kl_metric is None else layer.kl_metric.variables
            metric = [ops.copy(ops.convert_to_tensor(v)) for v in variables]
            saved.append((layer, list(r.kls), r.latest, r.inert, metric))
    try:
        yield
    finally:
        for layer, kls, latest, inert, metric in saved:
            r = layer._kl_records
            r.kls, r.latest, r.inert = kls, latest, inert
            for v, value in zip([] if layer.kl_metric is None else layer.kl_metric.variables, metric):
                v.assign(value)
