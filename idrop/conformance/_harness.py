"""What a backend must provide to be checked by the conformance suite: conversions, nothing else.

A harness (``_harness_<name>.py``) is an adapter in the style of einops'
``AbstractBackend``: it converts NumPy arrays to the framework and back, builds
the framework's maps and layers from backend-neutral descriptions, calls them,
and differentiates. Every check, every expected value and every bad input is
written once, in the ``test_*.py`` files and the shared drivers of
:mod:`idrop.conformance._drive`; a harness never decides whether a result is right.

The suite speaks the *reference layout*, torch's: activations ``[batch, features]``
or NCHW; linear weights ``[out, in]``; conv weights ``[out, in, kh, kw]``. A harness
of a channels-last framework sets ``channels_last`` and the shared code
(:mod:`idrop.conformance._layout`) transposes for it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from types import ModuleType
from typing import Any, Protocol

import numpy as np

#: Float dtypes the suite knows, by name. A harness lists the ones it supports.
DTYPES = ("float64", "float32", "float16", "bfloat16")

#: The public layer classes every backend exports.
LAYERS = ("InfoDropout", "BinaryDropout", "GaussianDropout", "LogNormalDropout")


@dataclasses.dataclass(frozen=True)
class LayerWeights:
    """Weights of one wrapped map and its alpha branch, in the reference layout.

    ``kind`` is ``"linear"`` (weights ``[out, in]``) or ``"conv2d"`` (weights
    ``[out, in, kh, kw]``, square kernel ``kh``, ``stride`` and ``padding`` as in
    torch's ``Conv2d(..., padding=p)``, zero padding).

    ``alpha_down`` set: the cheap alpha branch of ``InfoDropout(alpha_rank=r)``,
    ``alpha(x) = up(down(x))``. ``alpha_down`` is ``down``'s weight (``[r, in]`` or
    ``[r, in, kh, kw]``, the map's geometry, no bias); ``alpha_weight`` and ``alpha_bias``
    are then ``up``'s (``[out, r]`` or ``[out, r, 1, 1]``, stride 1, no padding).
    """

    kind: str
    weight: np.ndarray
    bias: np.ndarray
    alpha_weight: np.ndarray
    alpha_bias: np.ndarray
    stride: int = 1
    padding: int = 0
    alpha_down: np.ndarray | None = None

    @property
    def alpha_rank(self) -> int | None:
        """``r`` of the cheap alpha branch, ``None`` for the full alpha map."""
        return None if self.alpha_down is None else int(self.alpha_down.shape[0])


@dataclasses.dataclass(frozen=True)
class Map:
    """A backend-neutral description of a map the harness builds in its framework.

    ``kind``: ``"linear"`` (``n_in -> n_out``), ``"conv2d"`` (``n_in -> n_out`` channels,
    ``kernel``, ``stride``, ``padding``), ``"batch_norm"`` (``n_out`` features) or
    ``"linear_relu"`` (a linear map that applies its own ReLU, where the framework's map
    can carry an activation; the harness returns ``None`` where it cannot).
    """

    kind: str
    n_in: int = 4
    n_out: int = 3
    kernel: int = 1
    stride: int = 1
    padding: int = 0


class Harness(Protocol):
    """The conversion-only adapter between the suite and one backend."""

    name: str  #: backend name, an entry of :data:`idrop.backends.BACKENDS`
    framework: str  #: e.g. "torch 2.13.0", for the report
    module: ModuleType  #: the public adapter, ``idrop.backends.<name>``
    dtypes: tuple[str, ...]  #: the names of DTYPES this backend supports
    channels_last: bool  #: activations NHWC, linear kernels ``[in, out]``, conv kernels ``[kh, kw, in, out]``
    batchless_maps: bool  #: whether the framework's linear map takes input without a batch axis
    #: The functional ops' mode keyword: ``"training"`` or ``"deterministic"`` (its negation).
    functional_flag: str
    #: The layers' per-call mode keyword and whether it accepts ``None``; ``None`` when the
    #: framework sets the mode with a method of its own that validates its argument (torch's ``train``).
    layer_flag: tuple[str, bool] | None

    def asarray(self, a: Any, dtype: str) -> Any:
        """``a`` (NumPy, any dtype) as a framework array of ``dtype``, rounded in NumPy."""

    def to_numpy(self, t: Any) -> np.ndarray:
        """A float64 NumPy copy of a framework array."""

    def dtype_name(self, t: Any) -> str:
        """The framework array's dtype as a NumPy-style name (``"float32"``, ``"bfloat16"``)."""

    def make_map(self, spec: Map, dtype: str) -> Any:
        """The framework map ``spec`` describes, computing in ``dtype`` (``None`` if it has no such map)."""

    def build_layer(self, cls: str, layer: Any, *, dtype: str, **options: Any) -> Any:
        """``module.<cls>(layer, **options)``, plus what the framework needs (Flax's ``rngs``).

        ``options`` may hold :class:`Map` values (``norm``, ``alpha_layer``), built with :meth:`make_map`.
        """

    def parameters(self, layer: Any) -> dict[str, Any]:
        """The layer's variables by reference name: ``weight``, ``bias``, ``alpha_weight``,
        ``alpha_bias`` (``up``'s, with ``alpha_down`` for ``down``'s weight, when the layer has
        ``alpha_rank``) and, for the log-normal prior, ``mu`` and ``log_sigma`` (framework layout)."""

    def assign(self, variable: Any, value: np.ndarray) -> None:
        """Overwrite a variable of :meth:`parameters` with ``value`` (framework layout)."""

    def call(self, layer: Any, x: Any, *, training: Any, noise: Any = None) -> Any:
        """Call the layer on ``x`` in training or evaluation mode (``training`` passed as given)."""

    def kl(self, layer: Any) -> Any:
        """The layer's ``.kl`` as an array, or ``None``."""

    def differentiating(self) -> Any:
        """A context in which calls can be differentiated, as in a training step (the KL
        bookkeeping adds such calls; one with nothing to differentiate replaces the records)."""

    def functional(self, op: str, *args: Any, training: Any = True, seed: int | None = None, **kwargs: Any) -> Any:
        """``module.<op>`` (a noisy op: ``info_dropout`` or a baseline) with the mode and RNG
        spelled as the backend spells them: its own RNG seeded with ``seed``, or no RNG."""

    def vjp(
        self, fn: Callable[..., tuple[Any, ...]], inputs: dict[str, Any], cotangents: tuple[Any, ...], layer: Any = None
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Gradients of ``sum_i sum(out_i * cotangents[i])`` where ``outs = fn(layer, **inputs)``.

        ``cotangents`` are NumPy arrays (cast to each output's dtype); a ``None`` output or
        cotangent is left out. Returns float64 gradients by input name and by :meth:`parameters`
        name (zeros for what the outputs do not depend on).
        """

    def jvp(
        self,
        fn: Callable[..., tuple[Any, ...]],
        inputs: dict[str, Any],
        tangents: dict[str, np.ndarray],
        layer: Any = None,
    ) -> tuple[np.ndarray, ...]:
        """Forward mode: the tangents of ``fn(layer, **inputs)``'s outputs along ``tangents`` (NumPy,
        by input name), by the framework's forward-mode transform (``torch.func.jvp``, ``jax.jvp``,
        ``tf.autodiff.ForwardAccumulator``), as float64 NumPy."""

    def vmap(
        self, fn: Callable[..., tuple[Any, ...]], inputs: dict[str, Any], layer: Any = None
    ) -> tuple[np.ndarray, ...]:
        """``fn(layer, **inputs)`` mapped over the leading axis of every input by the framework's
        vectorising transform (``torch.func.vmap``, ``jax.vmap``, ``tf.vectorized_map``), as float64 NumPy."""

    def transform_grad(
        self, fn: Callable[..., tuple[Any, ...]], inputs: dict[str, Any], cotangents: tuple[Any, ...]
    ) -> dict[str, np.ndarray]:
        """As :meth:`vjp` without a layer, by the framework's function transforms (``torch.func.grad``,
        ``jax.jit(jax.grad)``, a ``tf.function`` around a tape)."""
