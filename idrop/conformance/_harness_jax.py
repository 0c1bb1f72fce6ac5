"""Conformance harness for :mod:`idrop.backends.jax` (Flax is channels-last).

The suite speaks torch's layout (NCHW; linear weights ``[out, in]``; conv weights
``[out, in, kh, kw]``); Flax uses NHWC, a Linear kernel ``[in, out]`` and a Conv
kernel ``[kh, kw, in, out]``. This harness transposes inputs, noise, outputs,
weights and weight gradients both ways, so every test reads the same.
"""

from __future__ import annotations

import functools
from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from idrop.conformance._harness import LayerWeights, Output
from idrop.core import InfoDropoutSpec

# float64 needs x64 before any array exists (array-api-extra, SciPy); _backends.load does
# it too, this covers importing the harness directly.
jax.config.update("jax_enable_x64", True)

from idrop.backends import jax as backend  # noqa: E402 - after enabling x64

_DTYPES = {"float64": jnp.float64, "float32": jnp.float32, "float16": jnp.float16, "bfloat16": jnp.bfloat16}
_LAWS = {"binary": backend.binary_dropout, "gaussian": backend.gaussian_dropout, "lognormal": backend.lognormal_dropout}
# Full-precision matmuls and convolutions: on accelerators the default precision of
# float32 may be bfloat16 passes (TF32-like), far outside the float32 tolerances.
_PRECISION = jax.lax.Precision.HIGHEST


def _j(a: np.ndarray, dtype: str = "float64") -> jax.Array:
    # Round in NumPy, not with an XLA convert: XLA on CPU flushes subnormals to zero.
    return jnp.asarray(np.asarray(a, dtype=np.float64).astype(jnp.dtype(_DTYPES[dtype])))


def _np(a: jax.Array) -> np.ndarray:
    return np.asarray(a).astype(np.float64)


def _name(a: jax.Array) -> str:
    return jnp.dtype(a.dtype).name


def _noise_dtype(dtype: str) -> str:
    return dtype if dtype in ("float64", "float32") else "float32"


def _split(options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    options = dict(options)
    return options.pop("activation", "relu"), options


def _to_flax(a: np.ndarray) -> np.ndarray:
    """NCHW -> NHWC (rank 4); other ranks are already in place."""
    return np.moveaxis(a, 1, -1) if np.ndim(a) == 4 else a


def _from_flax(a: np.ndarray) -> np.ndarray:
    """NHWC -> NCHW (rank 4)."""
    return np.moveaxis(a, -1, 1) if np.ndim(a) == 4 else a


def _kernel_to_flax(w: np.ndarray) -> np.ndarray:
    """``[out, in]`` -> ``[in, out]``; ``[out, in, kh, kw]`` -> ``[kh, kw, in, out]``."""
    return w.T if w.ndim == 2 else np.transpose(w, (2, 3, 1, 0))


def _kernel_from_flax(k: np.ndarray) -> np.ndarray:
    return k.T if k.ndim == 2 else np.transpose(k, (3, 2, 0, 1))


def _static(options: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(options.items()))


_CALLS = [0]


def _bounded(cached: Any) -> Any:
    """Clear JAX's compilation caches every few hundred calls.

    Each compiled executable keeps a few MB alive, and Hypothesis draws hundreds of
    shapes per test: without this a full run grows by gigabytes.
    """

    @functools.wraps(cached)
    def factory(*args: Any) -> Any:
        _CALLS[0] += 1
        if _CALLS[0] % 200 == 0:
            for fn in _CACHED:
                fn.cache_clear()
            jax.clear_caches()
        return cached(*args)

    _CACHED.append(cached)
    return factory


_CACHED: list[Any] = []


# Every call is jitted, with the options static: eager JAX compiles each op anew for
# each of the many shapes Hypothesis draws, which is much slower than one compile.
@_bounded
@functools.cache
def _functional(static: tuple[tuple[str, Any], ...]) -> Any:
    return jax.jit(functools.partial(backend.info_dropout, None, **dict(static)))


@_bounded
@functools.cache
def _functional_grads(static: tuple[tuple[str, Any], ...]) -> Any:
    def objective(p, eps, zc, klc):
        z, kl = backend.info_dropout(
            None, p["f"], p["alpha_logits"], noise=eps, mu=p.get("mu"), sigma=p.get("sigma"), **dict(static)
        )
        return jnp.sum(z * zc) + jnp.sum(kl * klc)

    return jax.jit(jax.grad(objective))


@_bounded
@functools.cache
def _law(law: str, static: tuple[tuple[str, Any], ...]) -> Any:
    return jax.jit(functools.partial(_LAWS[law], None, **dict(static)))


def _module(p: dict[str, jax.Array], kind: str, stride: int, padding: int, static: tuple) -> backend.InfoDropout:
    """``InfoDropout(nnx.Linear | nnx.Conv)`` holding the (possibly traced) weights ``p``."""
    options = dict(static)
    activation = options.pop("activation", "relu")
    dt = p["kernel"].dtype
    rngs = nnx.Rngs(0)
    kw = {"dtype": dt, "param_dtype": dt, "precision": _PRECISION, "rngs": rngs}
    if kind == "linear":
        layer = nnx.Linear(*p["kernel"].shape, **kw)
    else:
        k, _, i, o = p["kernel"].shape
        pad = ((padding, padding), (padding, padding))
        layer = nnx.Conv(i, o, (k, k), (stride, stride), padding=pad, **kw)
    # eval_kl: deterministic calls return the KL too (the suite compares it).
    module = backend.InfoDropout(layer, activation=activation, **options, eval_kl=True, rngs=rngs)
    module.layer.kernel[...] = p["kernel"]
    module.layer.bias[...] = p["bias"]
    module.alpha_layer.kernel[...] = p["alpha_kernel"]
    module.alpha_layer.bias[...] = p["alpha_bias"]
    if module.spec.prior == "log-normal":
        module.mu[...] = p["mu"]
        module.log_sigma[...] = p["log_sigma"]
    return module


@_bounded
@functools.cache
def _layer_forward(kind: str, stride: int, padding: int, static: tuple, training: bool) -> Any:
    def forward(p, x, noise):
        module = _module(p, kind, stride, padding, static)
        z = module(x, noise=noise, deterministic=not training)
        return z, module.kl[...]

    return jax.jit(forward)


@_bounded
@functools.cache
def _layer_grads(kind: str, stride: int, padding: int, static: tuple) -> Any:
    def objective(p, x, noise, zc):
        module = _module(p, kind, stride, padding, static)
        z = module(x, noise=noise, deterministic=False)
        return jnp.sum(z * zc) + jnp.sum(module.kl[...])

    return jax.jit(jax.grad(objective, argnums=(0, 1)))


def _weights(w: LayerWeights, dtype: str, mu: float, sigma: float) -> dict[str, jax.Array]:
    return {
        "kernel": _j(_kernel_to_flax(w.weight), dtype),
        "bias": _j(w.bias, dtype),
        "alpha_kernel": _j(_kernel_to_flax(w.alpha_weight), dtype),
        "alpha_bias": _j(w.alpha_bias, dtype),
        "mu": _j(mu, dtype),
        "log_sigma": _j(np.log(sigma), dtype),
    }


class JaxHarness:
    name = "jax"
    framework = f"jax {jax.__version__}, flax {flax.__version__}"
    dtypes = ("float64", "float32", "float16", "bfloat16")
    grad_dtypes = ("float64",)

    def info_dropout(self, f, alpha_logits, *, dtype, noise, training, mu, sigma, **options):
        _, options = _split(options)
        fn = _functional(_static({**options, "deterministic": not training}))
        z, kl = fn(
            _j(f, dtype),
            _j(alpha_logits, dtype),
            noise=None if noise is None else _j(noise, _noise_dtype(dtype)),
            mu=mu,
            sigma=sigma,
        )
        return Output(_np(z), _np(kl), _name(z), _name(kl))

    def alpha(self, alpha_logits, *, dtype, max_alpha, alpha_min):
        return _np(backend.alpha_from_logits(_j(alpha_logits, dtype), max_alpha=max_alpha, alpha_min=alpha_min))

    def info_dropout_grads(self, f, alpha_logits, *, noise, mu, sigma, z_cotangent, kl_cotangent, **options):
        _, options = _split(options)
        inputs = {"f": _j(f), "alpha_logits": _j(alpha_logits)}
        if options.get("prior") == "log-normal":
            inputs["mu"] = _j(mu)
            inputs["sigma"] = _j(sigma)
        grads = _functional_grads(_static(options))(inputs, _j(noise), _j(z_cotangent), _j(kl_cotangent))
        return {k: _np(v) for k, v in grads.items()}

    def apply_noise(self, law, f, raw, *, dtype, **params):
        return _np(_law(law, _static(params))(_j(f, dtype), noise=_j(raw, _noise_dtype(dtype))))

    def gaussian_kl(self, mu, scale, *, dtype):
        kl = backend.gaussian_kl(_j(mu, dtype), _j(scale, dtype))
        return Output(np.asarray(mu, dtype=np.float64), _np(kl), dtype, _name(kl))

    def sample(self, law, shape, *, seed, **params):
        key = jax.random.key(seed)
        ones = jnp.ones(shape, jnp.float64)
        if law == "information":
            params = dict(params)
            logits = jnp.full(shape, float(params.pop("alpha_logits")), jnp.float64)
            return _np(backend.info_dropout(key, ones, logits, **params)[0])
        return _np(_LAWS[law](key, ones, **params))

    # -- layers ----------------------------------------------------------------
    def layer(self, weights, x, *, dtype, noise, training, mu, sigma, **options):
        fn = _layer_forward(weights.kind, weights.stride, weights.padding, _static(options), training)
        noise = None if noise is None else _j(_to_flax(noise), _noise_dtype(dtype))
        z, kl = fn(_weights(weights, dtype, mu, sigma), _j(_to_flax(x), dtype), noise)
        return Output(_from_flax(_np(z)), _np(kl), _name(z), _name(kl))

    def layer_grads(self, weights, x, *, noise, mu, sigma, z_cotangent, **options):
        fn = _layer_grads(weights.kind, weights.stride, weights.padding, _static(options))
        gp, gx = fn(
            _weights(weights, "float64", mu, sigma), _j(_to_flax(x)), _j(_to_flax(noise)), _j(_to_flax(z_cotangent))
        )
        grads = {
            "x": _from_flax(_np(gx)),
            "weight": _kernel_from_flax(_np(gp["kernel"])),
            "bias": _np(gp["bias"]),
            "alpha_weight": _kernel_from_flax(_np(gp["alpha_kernel"])),
            "alpha_bias": _np(gp["alpha_bias"]),
        }
        if InfoDropoutSpec(**options).prior == "log-normal":
            grads["mu"] = _np(gp["mu"])
            # d/dsigma = d/dlog_sigma / sigma: report the gradient the contract names.
            grads["sigma"] = _np(gp["log_sigma"]) / sigma
        return grads

    # -- errors ----------------------------------------------------------------
    @staticmethod
    def _linear(out_features: int = 3) -> nnx.Linear:
        return nnx.Linear(4, out_features, rngs=nnx.Rngs(0))

    def construct_error(self, **kwargs):
        try:
            backend.InfoDropout(self._linear(), **kwargs, rngs=nnx.Rngs(0))
        except Exception as err:  # the suite compares whatever was raised
            return err
        return None

    def call_error(self, case):
        try:
            if case == "integer_input":
                backend.InfoDropout(self._linear(), rngs=nnx.Rngs(0))(jnp.ones((2, 4), jnp.int32))
            elif case == "alpha_layer_shape":
                backend.InfoDropout(self._linear(), alpha_layer=self._linear(5), rngs=nnx.Rngs(0))(jnp.ones((2, 4)))
            elif case == "n_train":
                model = backend.InfoDropout(self._linear(), rngs=nnx.Rngs(0))
                model(jnp.ones((2, 4)))
                backend.kl_loss(model, n_train=0)
            elif case == "beta":
                model = backend.InfoDropout(self._linear(), rngs=nnx.Rngs(0))
                model(jnp.ones((2, 4)))
                backend.ib_loss(jnp.zeros(()), model, beta=-1.0, n_train=10)
            else:
                raise KeyError(case)
        except KeyError:
            raise
        except Exception as err:
            return err
        return None


HARNESS = JaxHarness()
