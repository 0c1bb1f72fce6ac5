"""Export for JAX/Flax NNX: ``jax.export`` (StableHLO, serialised) of the evaluation graph and of the
sampling graph with the noise as inputs (the rules in :mod:`idrop.core.export`).

Both graphs are pure functions of ``x`` (and the noise) with the weights as constants: a copy of the
module is merged inside the traced function and put in evaluation (``model.eval()``); for the
sampling graph each ``InfoDropout`` of that copy gets its draws through a subclass whose call passes
``noise=`` and ``deterministic=False`` (the copy's class is switched; the model itself is untouched).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from idrop.core.export import export_format

from ._layers import InfoDropout


class _Fed(InfoDropout):
    """An InfoDropout whose calls use the draws in ``_idrop_feed`` (noise on, whatever the mode)."""

    def __call__(self, x: jax.Array, noise: Any = None, deterministic: Any = None, rngs: Any = None) -> jax.Array:
        return super().__call__(x, noise=self.__dict__["_idrop_feed"], deterministic=False)


class _Recorder(InfoDropout):
    """An InfoDropout that notes its index and output shape at each (evaluation) call."""

    def __call__(self, x: jax.Array, noise: Any = None, deterministic: Any = None, rngs: Any = None) -> jax.Array:
        z = super().__call__(x, noise=noise, deterministic=deterministic, rngs=rngs)
        self.__dict__["_idrop_log"].append((self.__dict__["_idrop_index"], tuple(z.shape)))
        return z


def _info_layers(model: nnx.Module) -> list[InfoDropout]:
    return [m for _, m in nnx.iter_modules(model) if isinstance(m, InfoDropout)]


def _calls(model: nnx.Module, x: jax.Array) -> list[tuple[int, tuple[int, ...]]]:
    """``(index among the InfoDropout layers, output shape)`` of each InfoDropout call, in order."""
    graphdef, state = nnx.split(model)
    log: list[tuple[int, tuple[int, ...]]] = []

    def run(x: jax.Array) -> Any:
        # The copy is merged inside the trace, so its calls may update its state: a layer built with
        # eval_kl=True records its KL in evaluation too, which Flax refuses for a module from outside.
        copy = nnx.merge(graphdef, state, copy=True)
        copy.eval()
        for k, layer in enumerate(_info_layers(copy)):
            layer.__class__ = _Recorder
            layer.__dict__.update(_idrop_log=log, _idrop_index=k)
        return copy(x)

    jax.eval_shape(run, x)
    return log


def noise_shapes(model: nnx.Module, x: jax.Array) -> list[tuple[int, ...]]:
    """The shape of each ``InfoDropout`` layer's output for ``x``, in call order: the sampling graph's noise inputs."""
    return [shape for _, shape in _calls(model, x)]


def export(
    model: nnx.Module,
    path: str | Path,
    x: jax.Array,
    *,
    sampling: bool = False,
    format: str | None = None,
    dynamic_batch: bool = False,
) -> jax.export.Exported:
    """Write the evaluation graph of ``model`` (or, with ``sampling=True``, its sampling graph) to ``path``.

    The file holds ``jax.export.Exported.serialize()``; read it with ``jax.export.deserialize`` and
    call ``.call(x)`` or ``.call(x, noise_0, ..., noise_{k-1})`` (the standard-normal draws of the
    ``k`` ``InfoDropout`` calls in order, shapes from :func:`noise_shapes`; float32 at least).

    Args:
        model: an NNX module.
        path: the file to write.
        x: an example input; it fixes the shapes and dtype.
        sampling: write the sampling graph instead of the evaluation graph.
        format: ``"jax"`` (the only one; ONNX is not a format ``jax.export`` writes).
        dynamic_batch: let the graph take any batch size (the first axis of ``x`` and of every
            noise; a ``jax.export.symbolic_shape`` dimension).

    Returns:
        The ``jax.export.Exported``.
    """
    export_format(path, format, ("jax",))
    graphdef, state = nnx.split(model)
    calls = _calls(model, x) if sampling else []
    noise_dtype = jnp.promote_types(x.dtype, jnp.float32)

    def graph(x: jax.Array, *noises: jax.Array) -> Any:
        m = nnx.merge(graphdef, state, copy=True)
        m.eval()
        layers = _info_layers(m)
        for (k, _), eps in zip(calls, noises):
            layers[k].__class__ = _Fed
            layers[k].__dict__["_idrop_feed"] = eps
        return m(x)

    batch = jax.export.symbolic_shape("batch") if dynamic_batch else ()  # one symbol (one scope) for all inputs

    def batched(shape: tuple[int, ...]) -> tuple:
        return (*batch, *shape[1:]) if dynamic_batch else shape

    specs = [jax.ShapeDtypeStruct(batched(x.shape), x.dtype)]
    specs += [jax.ShapeDtypeStruct(batched(shape), noise_dtype) for _, shape in calls]
    exported = jax.export.export(jax.jit(graph))(*specs)
    Path(path).write_bytes(exported.serialize())
    return exported
