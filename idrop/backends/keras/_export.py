"""Export for Keras 3: ``model.export`` (a TensorFlow SavedModel, or ONNX; :data:`FORMATS` per backend) of the
evaluation graph and of the sampling graph with the noise as inputs (the rules in :mod:`idrop.core.export`).

Written on Keras APIs only, so the same code serves every Keras backend (which formats a backend can
write is Keras's business). Both graphs are a small ``keras.Model`` around ``model`` whose ``call``
takes ``x`` (evaluation) or ``[x, noise_0, ..., noise_{k-1}]`` (sampling) and calls ``model(x,
training=False)``; in the sampling graph each ``InfoDropout`` layer's ``call`` is replaced, while the
graph is traced, by its output with the noise on and the given draws (``noisy_output``; its
sublayers, a ``norm=`` batch norm included, keep ``training=False`` from Keras's call context).
The layers' KL records and KL metric are put back as they were after the export, and the graphs hold no
KL: a layer built with ``eval_kl=True`` is traced with it off (its evaluation output is the same).
"""

from __future__ import annotations

import contextlib
import importlib.util
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import keras
import numpy as np

from idrop.core.export import export_format
from idrop.core.spec import missing_exporter, unsupported_export_format

# What Keras 3.15's model.export writes on each backend, of the formats idrop exports: on torch a SavedModel
# goes through torch_xla (not a dependency of torch, and tied to its version), so it is refused; ONNX goes
# through tf2onnx on TensorFlow, jax2onnx on JAX and torch.onnx on torch.
FORMATS = {"tensorflow": ("tf_saved_model", "onnx"), "jax": ("tf_saved_model", "onnx"), "torch": ("onnx",)}
_WHY = {"torch": "; a SavedModel needs torch_xla there"}
_EXPORTERS = {("jax", "onnx"): "jax2onnx", ("jax", "tf_saved_model"): "tensorflow"}


def _format(path: Any, fmt: str | None) -> str:
    """The format to write on this Keras backend, with a clear error for one Keras cannot write here."""
    backend = keras.backend.backend()
    formats = FORMATS[backend]
    if fmt in ("tf_saved_model", "onnx") and fmt not in formats:
        raise unsupported_export_format(fmt, backend, formats, _WHY.get(backend, ""))
    fmt = export_format(path, fmt, formats)
    module = _EXPORTERS.get((backend, fmt))
    if module is not None and importlib.util.find_spec(module) is None:
        raise missing_exporter(fmt, backend, module)
    return fmt


def _info_layers(model: keras.Layer, info_dropout: type) -> list[Any]:
    return [layer for layer in model._flatten_layers(include_self=True) if isinstance(layer, info_dropout)]


@contextlib.contextmanager
def _fed(layers: list[Any], noises: list[Any], noisy_output: Callable[..., Any]) -> Iterator[None]:
    """``layers[i]`` computes ``noisy_output(layers[i], x, noises[i])`` inside this context."""
    for layer, eps in zip(layers, noises):

        def call(x: Any, training: Any = None, noise: Any = None, _layer: Any = layer, _eps: Any = eps) -> Any:
            return noisy_output(_layer, x, _eps)

        object.__setattr__(layer, "call", call)
    try:
        yield
    finally:
        for layer in layers:
            layer.__dict__.pop("call", None)


def _metric_variables(layer: Any) -> list[Any]:
    """The variables of ``layer``'s KL metric (none on JAX, where the layer has no metric, design notes section 6)."""
    metric = getattr(layer, "kl_metric", None)
    return [] if metric is None else list(metric.variables)


@contextlib.contextmanager
def _records_kept(layers: list[Any]) -> Iterator[None]:
    """Fresh KL records for ``layers`` inside, theirs (and their KL metric's state) back after: the calls
    export makes (and the ones TensorFlow traces when it writes a SavedModel) must neither drop a step's
    records nor leave traced ones."""
    saved = [(layer, layer.__dict__.get("_kl_records")) for layer in layers]
    metrics = [(v, v.numpy()) for layer in layers for v in _metric_variables(layer)]
    for layer, records in saved:
        if records is not None:
            object.__setattr__(layer, "_kl_records", type(records)())
    try:
        yield
    finally:
        for layer, records in saved:
            if records is not None:
                object.__setattr__(layer, "_kl_records", records)
        for v, value in metrics:  # the "<name>_kl" metric: an export call is no training step
            v.assign(value)


@contextlib.contextmanager
def _no_eval_kl(layers: list[Any]) -> Iterator[None]:
    """``eval_kl`` off inside: an exported graph outputs no KL, so a layer built with ``eval_kl=True`` must not
    trace its alpha branch and KL into the evaluation graph, nor its KL metric's update (a variable the
    served graph would assign at every call); the output, ``act(map(x))``, is the same."""
    saved = [(layer, layer.eval_kl) for layer in layers]
    for layer, _ in saved:
        layer.eval_kl = False
    try:
        yield
    finally:
        for layer, flag in saved:
            layer.eval_kl = flag


@contextlib.contextmanager
def _tracer_notes_ignored() -> Iterator[None]:
    """On the torch backend, Keras 3.15 writes ONNX with a free batch axis (and whenever the dynamo exporter
    fails) through ``torch.jit.trace``, whose ``TracerWarning`` on every Python int or bool taken from a traced
    shape (Keras's variables, idrop's shape checks: constants at trace time, equal at any batch size) Keras
    means to silence but does not (``keras/src/export/onnx.py``: its filters close before the export call)."""
    with warnings.catch_warnings():
        if keras.backend.backend() == "torch":
            import torch

            for kind in ("boolean", "integer"):
                warnings.filterwarnings(
                    "ignore", message=f"Converting a tensor to a Python {kind}", category=torch.jit.TracerWarning
                )
        yield


def _calls(model: keras.Model, x: Any, info_dropout: type) -> list[tuple[int, tuple[int, ...]]]:
    """``(index among the InfoDropout layers, output shape)`` of each InfoDropout call, in order."""
    layers = _info_layers(model, info_dropout)
    log: list[tuple[int, tuple[int, ...]]] = []
    for k, layer in enumerate(layers):
        original = type(layer).call.__get__(layer)

        def call(x: Any, training: Any = None, noise: Any = None, _original: Any = original, _k: int = k) -> Any:
            z = _original(x, training=training, noise=noise)
            log.append((_k, tuple(z.shape)))
            return z

        object.__setattr__(layer, "call", call)
    try:
        with _records_kept(layers):
            model(x, training=False)
    finally:
        for layer in layers:
            layer.__dict__.pop("call", None)
    return log


class _Graph(keras.Model):
    """``x -> model(x)`` or ``[x, *noises] -> model(x)`` with the noises fed to ``layers`` in order."""

    def __init__(self, model: keras.Model, layers: list[Any], noisy_output: Callable[..., Any]) -> None:
        super().__init__(name="idrop_export")  # a valid TF scope name (not "_graph")
        self.inner = model
        self.fed = layers
        self.noisy_output = noisy_output

    def call(self, inputs: Any) -> Any:
        if not self.fed:
            return self.inner(inputs, training=False)
        x, *noises = inputs
        with _fed(self.fed, noises, self.noisy_output):
            return self.inner(x, training=False)


def export_graph(
    model: keras.Model,
    path: str | Path,
    x: Any,
    info_dropout: type,
    noisy_output: Callable[..., Any],
    *,
    sampling: bool,
    fmt: str | None,
    dynamic_batch: bool = False,
) -> keras.Model:
    """:func:`export` with the given ``InfoDropout`` class and its noisy output ``(layer, x, eps) -> z``
    (one per Keras adapter)."""
    fmt = _format(path, fmt)
    x = np.asarray(x)
    calls = _calls(model, x, info_dropout) if sampling else []
    layers = _info_layers(model, info_dropout)
    graph = _Graph(model, [layers[k] for k, _ in calls], noisy_output)
    noise_dtype = np.promote_types(x.dtype, np.float32).name

    def batched(shape: tuple[int, ...]) -> tuple:
        return (None, *shape[1:]) if dynamic_batch else tuple(shape)

    x_spec = keras.InputSpec(shape=batched(x.shape), dtype=x.dtype.name)
    noise_specs = [keras.InputSpec(shape=batched(shape), dtype=noise_dtype) for _, shape in calls]
    with _records_kept(layers), _no_eval_kl(layers):  # build the wrapper
        graph([x, *(np.zeros(s, noise_dtype) for _, s in calls)] if sampling else x)
    signature = [[x_spec, *noise_specs]] if sampling else [x_spec]
    if fmt == "onnx" and keras.backend.backend() == "tensorflow":
        from idrop.backends.tensorflow._onnx import register_log1p  # the softplus's log1p, which tf2onnx cannot convert

        register_log1p()
    if fmt == "onnx" and keras.backend.backend() == "torch":
        from ._torch_onnx import register_logaddexp  # the softplus's logaddexp, for torch.onnx's TorchScript path

        register_logaddexp()
    with _records_kept(layers), _no_eval_kl(layers), _tracer_notes_ignored():
        graph.export(str(path), format=fmt, input_signature=signature, verbose=False)
    return graph


def noise_shapes(model: keras.Model, x: Any) -> list[tuple[int, ...]]:
    """The shape of each ``InfoDropout`` layer's output for ``x``, in call order: the sampling graph's noise inputs."""
    from ._layers import InfoDropout

    return [shape for _, shape in _calls(model, np.asarray(x), InfoDropout)]


def export(
    model: keras.Model,
    path: str | Path,
    x: Any,
    *,
    sampling: bool = False,
    format: str | None = None,
    dynamic_batch: bool = False,
) -> keras.Model:
    """Write the evaluation graph of ``model`` (or, with ``sampling=True``, its sampling graph) to ``path``.

    The sampling graph takes one list ``[x, noise_0, ..., noise_{k-1}]``: the standard-normal draws
    of the ``k`` ``InfoDropout`` calls in order (shapes from :func:`noise_shapes`; float32 at least),
    see :mod:`idrop.core.export`.

    Args:
        model: a built Keras model or layer.
        path: where to write: a directory (``"tf_saved_model"``, served by ``tf.saved_model.load(path).serve``)
            or a ``.onnx`` file (``"onnx"``, needs ``pip install "idrop[export]"``).
        x: an example input; it fixes the shapes and dtype.
        sampling: write the sampling graph instead of the evaluation graph.
        format: ``"tf_saved_model"`` or ``"onnx"``; default from the path's suffix. On Keras's JAX backend
            a SavedModel needs TensorFlow and ONNX needs ``jax2onnx``; on the torch backend only ``"onnx"``
            (Keras writes a SavedModel there through ``torch_xla``).
        dynamic_batch: let the graph take any batch size (the first axis of ``x`` and of every noise).

    Returns:
        The exported ``keras.Model`` wrapper (its ``call`` is the graph).
    """
    from ._layers import InfoDropout

    return export_graph(
        model, path, x, InfoDropout, _noisy_output, sampling=sampling, fmt=format, dynamic_batch=dynamic_batch
    )


def _noisy_output(layer: Any, x: Any, eps: Any) -> Any:
    """``z`` of a training call of ``layer`` with the noise ``eps``, by the functional op (plain ops:
    the fused kernel's ``tf.custom_gradient`` becomes a function call that tf2onnx cannot freeze with a
    free batch axis, and an exported graph needs no gradient). Uses ``InfoDropout._maps`` (its two maps)."""
    from idrop.core._xp import activation

    from ._functional import info_dropout
    from ._namespace import xp

    h, alpha_logits = layer._maps(x)
    prior = {"mu": layer.mu, "sigma": layer.sigma} if layer.spec.prior == "log-normal" else {}
    f = activation(layer.activation, h, xp=xp)
    return info_dropout(f, alpha_logits, noise=eps, training=True, **layer.spec.kl_options, **prior)[0]
