"""Conformance harness for :mod:`idrop.backends.jax` (Flax NNX, channels-last): conversions only.

Everything runs eagerly: an error the adapter raises at trace time is then raised at
the call, as a user sees it, and a Python number stays a Python number (``sigma > 0``
is checked on the value).
"""

from __future__ import annotations

import contextlib
from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from idrop.conformance._harness import DTYPES, Map

# float64 needs x64 before any array exists (array-api-extra, SciPy); _backends.load does
# it too, this covers importing the harness directly.
jax.config.update("jax_enable_x64", True)

from idrop.backends import jax as backend  # noqa: E402 - after enabling x64

# Full-precision matmuls and convolutions: on accelerators the default precision of
# float32 may be bfloat16 passes (TF32-like), far outside the float32 tolerances.
_PRECISION = jax.lax.Precision.HIGHEST

#: Where each parameter of :meth:`JaxHarness.parameters` lives in the module.
_PATHS = {
    "weight": ("layer", "kernel"),
    "bias": ("layer", "bias"),
    "alpha_weight": ("alpha_layer", "kernel"),
    "alpha_bias": ("alpha_layer", "bias"),
    "mu": ("mu",),
    "log_sigma": ("log_sigma",),
}
#: The cheap alpha branch's (``alpha_rank``): ``up``'s weight and bias, and ``down``'s weight.
_LOW_RANK_PATHS = {
    **_PATHS,
    "alpha_down": ("alpha_layer", "down", "kernel"),
    "alpha_weight": ("alpha_layer", "up", "kernel"),
    "alpha_bias": ("alpha_layer", "up", "bias"),
}


def _paths(layer: Any) -> dict[str, tuple[str, ...]]:
    return _LOW_RANK_PATHS if getattr(layer, "alpha_rank", None) is not None else _PATHS


#: Calls between two clearings of JAX's compilation caches (see :func:`_bounded`).
CLEAR_EVERY = 300
_CALLS = [0]


def _bounded() -> None:
    """Clear JAX's compilation caches every :data:`CLEAR_EVERY` calls into the backend.

    Each compiled executable keeps memory alive, and the suite runs every dtype, option set
    and shape of the menus: without this a full run grows past 3 GB (about 1.2 GB with it).
    """
    _CALLS[0] += 1
    if _CALLS[0] % CLEAR_EVERY == 0:
        jax.clear_caches()


def _not(flag: Any) -> Any:
    """``deterministic`` from ``training``; anything but a bool passes through, to be refused as it is."""
    if isinstance(flag, np.bool_):
        return np.logical_not(flag)
    return not flag if isinstance(flag, bool) else flag


def _value(v: Any) -> Any:
    return v.get_value() if isinstance(v, nnx.Variable) else v


class JaxHarness:
    name = "jax"
    framework = f"jax {jax.__version__}, flax {flax.__version__}"
    module = backend
    dtypes = DTYPES
    channels_last = True
    batchless_maps = True
    functional_flag = "deterministic"
    layer_flag = ("deterministic", True)  # None: the module's own attribute

    def asarray(self, a: Any, dtype: str) -> jax.Array:
        # Round in NumPy, not with an XLA convert: XLA on CPU flushes subnormals to zero.
        a = np.asarray(a)
        return jnp.asarray((a.astype(np.float64) if dtype in DTYPES else a).astype(jnp.dtype(dtype)))

    def to_numpy(self, t: Any) -> np.ndarray:
        return np.asarray(_value(t)).astype(np.float64)

    def dtype_name(self, t: Any) -> str:
        return jnp.dtype(_value(t).dtype).name

    def make_map(self, spec: Map, dtype: str) -> nnx.Module | None:
        dt = jnp.dtype(dtype)
        kw = {"dtype": dt, "param_dtype": dt, "rngs": nnx.Rngs(0)}
        if spec.kind == "linear":
            return nnx.Linear(spec.n_in, spec.n_out, precision=_PRECISION, **kw)
        if spec.kind == "conv2d":
            k, s, p = spec.kernel, spec.stride, spec.padding
            return nnx.Conv(spec.n_in, spec.n_out, (k, k), (s, s), padding=((p, p), (p, p)), precision=_PRECISION, **kw)
        if spec.kind == "batch_norm":
            return nnx.BatchNorm(spec.n_out, **kw)
        if spec.kind == "linear_relu":
            return None  # Flax maps carry no activation
        raise KeyError(spec.kind)

    def build_layer(self, cls: str, layer: Any, *, dtype: str, input_shape: Any = None, **options: Any) -> Any:
        layer = self.make_map(layer, dtype) if isinstance(layer, Map) else layer
        options = {k: self.make_map(v, dtype) if isinstance(v, Map) else v for k, v in options.items()}
        options.setdefault("rngs", nnx.Rngs(0))
        _bounded()
        return getattr(backend, cls)(layer, **options)

    def parameters(self, layer: Any) -> dict[str, Any]:
        params = {}
        for name, path in _paths(layer).items():
            node = layer
            for attr in path:
                node = getattr(node, attr, None)
            if node is not None:
                params[name] = node
        return params

    def assign(self, variable: Any, value: np.ndarray) -> None:
        variable[...] = self.asarray(value, self.dtype_name(variable))

    def call(self, layer: Any, x: Any, *, training: Any, noise: Any = None) -> Any:
        return layer(x, noise=noise, deterministic=_not(training))

    def kl(self, layer: Any) -> Any:
        return _value(layer.kl)

    def differentiating(self) -> Any:
        return contextlib.nullcontext()  # a pure function of its inputs: every call is differentiable

    def functional(self, op: str, *args: Any, training: Any = True, seed: int | None = None, **kwargs: Any) -> Any:
        key = None if seed is None else jax.random.key(seed)
        _bounded()
        return getattr(backend, op)(key, *args, deterministic=_not(training), **kwargs)

    def vjp(self, fn, inputs, cotangents, layer=None):
        _bounded()

        def loss(layer, inputs):
            outs = fn(layer, **inputs)
            pairs = [(o, c) for o, c in zip(outs, cotangents) if o is not None and c is not None]
            return sum(jnp.sum(o * jnp.asarray(np.asarray(c).astype(o.dtype))).astype(jnp.float64) for o, c in pairs)

        if layer is None:
            by_input = jax.grad(lambda i: loss(None, i))(inputs)
            return {k: self.to_numpy(v) for k, v in by_input.items()}, {}
        state, by_input = nnx.grad(loss, argnums=(0, 1))(layer, inputs)
        by_param = {}
        for name in self.parameters(layer):
            node = state
            for attr in _paths(layer)[name]:
                node = node[attr]
            by_param[name] = self.to_numpy(node)
        return {k: self.to_numpy(v) for k, v in by_input.items()}, by_param

    def _pure(self, fn, layer):
        """``fn`` as a pure function of its inputs: a copy of the module is merged inside the transform
        (a module of the outer trace may not record its KL there: Flax's ``TraceContextError``)."""
        if layer is None:
            return lambda inputs: tuple(fn(None, **inputs))
        graphdef, state = nnx.split(layer)
        return lambda inputs: tuple(fn(nnx.merge(graphdef, state, copy=True), **inputs))

    def jvp(self, fn, inputs, tangents, layer=None):
        _bounded()
        tans = {k: self.asarray(tangents[k], self.dtype_name(v)) for k, v in inputs.items()}
        _, out = jax.jvp(self._pure(fn, layer), (inputs,), (tans,))
        return tuple(self.to_numpy(t) for t in out)

    def vmap(self, fn, inputs, layer=None):
        _bounded()
        return tuple(self.to_numpy(t) for t in jax.vmap(self._pure(fn, layer))(inputs))

    def transform_grad(self, fn, inputs, cotangents):
        _bounded()

        def loss(inputs):
            outs = fn(None, **inputs)
            return sum(jnp.sum(o * jnp.asarray(np.asarray(c).astype(o.dtype))) for o, c in zip(outs, cotangents))

        return {k: self.to_numpy(v) for k, v in jax.jit(jax.grad(loss))(inputs).items()}


HARNESS = JaxHarness()
