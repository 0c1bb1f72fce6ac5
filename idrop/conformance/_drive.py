"""The shared drivers: what the tests run against a harness, written once for every backend.

Each driver takes a harness and NumPy arrays in the reference layout and returns
float64 NumPy results in the reference layout. They only call the backend's public
API (through the harness's conversion hooks), so a failing example reruns by hand
with the same call (see :func:`idrop.conformance._report.repro`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ._harness import Harness, LayerWeights, Map
from ._layout import activation_from, activation_to, kernel_from, kernel_to
from ._rounding import noise_dtype


@dataclasses.dataclass
class Output:
    """What a forward call returns, as float64 NumPy in the reference layout.

    ``z`` like ``f``; ``kl`` per unit (functional form) or per sample (layer form);
    ``z_dtype``/``kl_dtype`` are the framework's dtype names of the raw results.
    """

    z: np.ndarray
    kl: np.ndarray
    z_dtype: str
    kl_dtype: str


def _output(h: Harness, z: Any, kl: Any, channels_last: bool = False) -> Output:
    return Output(activation_from(channels_last, h.to_numpy(z)), h.to_numpy(kl), h.dtype_name(z), h.dtype_name(kl))


def _prior(options: dict[str, Any], mu: Any, sigma: Any) -> dict[str, Any]:
    """The prior's keyword arguments: only the log-normal prior takes ``mu`` and ``sigma``."""
    return {"mu": mu, "sigma": sigma} if options.get("prior") == "log-normal" else {}


# --- functional ops ----------------------------------------------------------


def info_dropout(h: Harness, f, alpha_logits, *, dtype, noise, training, mu, sigma, **options) -> Output:
    """The backend's ``info_dropout`` on inputs cast to ``dtype``; ``kl`` per unit."""
    z, kl = h.functional(
        "info_dropout",
        h.asarray(f, dtype),
        h.asarray(alpha_logits, dtype),
        training=training,
        noise=None if noise is None else h.asarray(noise, noise_dtype(dtype)),
        **options,
        **_prior(options, mu, sigma),
    )
    return _output(h, z, kl)


def alpha(h: Harness, alpha_logits, *, dtype, max_alpha, alpha_min) -> np.ndarray:
    """The backend's ``alpha_from_logits``."""
    a = h.asarray(alpha_logits, dtype)
    return h.to_numpy(h.module.alpha_from_logits(a, max_alpha=max_alpha, alpha_min=alpha_min))


def apply_noise(h: Harness, law: str, f, raw, *, dtype, **params) -> np.ndarray:
    """The backend's baseline ``<law>_dropout`` on injected raw draws."""
    out = h.functional(f"{law}_dropout", h.asarray(f, dtype), noise=h.asarray(raw, noise_dtype(dtype)), **params)
    return h.to_numpy(out)


def gaussian_kl(h: Harness, mu, scale, *, dtype) -> Output:
    """The backend's ``gaussian_kl(mu, scale)``; ``Output.z`` is ``mu`` itself."""
    kl = h.module.gaussian_kl(h.asarray(mu, dtype), h.asarray(scale, dtype))
    return Output(np.asarray(mu, np.float64), h.to_numpy(kl), dtype, h.dtype_name(kl))


def sample(h: Harness, law: str, shape: tuple[int, ...], *, seed: int, **params) -> np.ndarray:
    """``z`` for ``f = ones(shape)`` drawn with the backend's own RNG, seeded with ``seed``.

    For ``"information"``, ``params`` has ``alpha_logits`` (one float for every unit) and the
    layer options; the baselines take ``rate`` or ``alpha`` (and ``mean_one``).
    """
    ones = h.asarray(np.ones(shape), "float64")
    if law == "information":
        params = dict(params)
        logits = h.asarray(np.full(shape, float(params.pop("alpha_logits"))), "float64")
        return h.to_numpy(h.functional("info_dropout", ones, logits, seed=seed, **params)[0])
    return h.to_numpy(h.functional(f"{law}_dropout", ones, seed=seed, **params))


def info_dropout_grads(
    h: Harness, f, alpha_logits, *, noise, mu, sigma, z_cotangent, kl_cotangent, dtype="float64", **options
) -> dict[str, np.ndarray]:
    """Gradients of ``sum(z * z_cot) + sum(kl * kl_cot)`` by ``f``, ``alpha_logits`` and, for the
    log-normal prior, the 0-d tensors ``mu`` and ``sigma`` (Python numbers below ``float64``)."""
    inputs = {"f": h.asarray(f, dtype), "alpha_logits": h.asarray(alpha_logits, dtype)}
    prior = _prior(options, mu, sigma)
    if prior and dtype == "float64":
        inputs |= {"mu": h.asarray(mu, dtype), "sigma": h.asarray(sigma, dtype)}
    eps = h.asarray(noise, noise_dtype(dtype))

    def fn(_, f, alpha_logits, **tensors):
        return h.functional("info_dropout", f, alpha_logits, noise=eps, **options, **(prior | tensors))

    grads, _ = h.vjp(fn, inputs, (z_cotangent, kl_cotangent))
    return grads


# --- layers ------------------------------------------------------------------


def map_of(w: LayerWeights) -> Map:
    """The map that ``w``'s weights belong to."""
    if w.kind == "linear":
        n_out, n_in = w.weight.shape
        return Map("linear", n_in, n_out)
    n_out, n_in, k, _ = w.weight.shape
    return Map("conv2d", n_in, n_out, k, w.stride, w.padding)


def build(h: Harness, w: LayerWeights, *, dtype: str, mu: float, sigma: float, input_shape=None, **options) -> Any:
    """``InfoDropout(<map of w>)`` computing in ``dtype``, holding ``w`` and the prior's ``mu``, ``sigma``
    (with ``alpha_rank`` when ``w`` holds the cheap alpha branch's weights)."""
    if w.alpha_rank is not None:
        options = {**options, "alpha_rank": w.alpha_rank}
    layer = h.build_layer("InfoDropout", map_of(w), dtype=dtype, input_shape=input_shape, **options)
    params = h.parameters(layer)
    cl = h.channels_last
    values = {
        "weight": kernel_to(cl, w.weight),
        "bias": w.bias,
        "alpha_weight": kernel_to(cl, w.alpha_weight),
        "alpha_bias": w.alpha_bias,
    }
    if w.alpha_down is not None:
        values["alpha_down"] = kernel_to(cl, w.alpha_down)
    if "mu" in params:
        values |= {"mu": np.float64(mu), "log_sigma": np.log(np.float64(sigma))}
    for name, value in values.items():
        h.assign(params[name], value)
    return layer


def layer_forward(h: Harness, w: LayerWeights, x, *, dtype, noise, training, mu, sigma, **options) -> Output:
    """Build ``InfoDropout(<map>)`` with these weights (``eval_kl=True``), call it on ``x``; ``kl`` per sample."""
    cl = h.channels_last
    xf = h.asarray(activation_to(cl, x), dtype)
    layer = build(h, w, dtype=dtype, mu=mu, sigma=sigma, input_shape=tuple(xf.shape), eval_kl=True, **options)
    eps = None if noise is None else h.asarray(activation_to(cl, noise), noise_dtype(dtype))
    z = h.call(layer, xf, training=training, noise=eps)
    return _output(h, z, h.kl(layer), cl)


def layer_grads(
    h: Harness, w: LayerWeights, x, *, noise, mu, sigma, z_cotangent, dtype="float64", training=True, **options
) -> dict[str, np.ndarray]:
    """Gradients of ``sum(z * z_cot) + sum(layer.kl)`` by the input, the weights and the prior.

    Weight gradients come back in the reference layout; the log-normal prior's ``log_sigma``
    gradient is reported as the gradient by ``sigma`` (``d/dsigma = d/dlog_sigma / sigma``),
    the one the contract names. ``layer.kl`` is left out where the call records none.
    """
    cl = h.channels_last
    xf = h.asarray(activation_to(cl, x), dtype)
    layer = build(h, w, dtype=dtype, mu=mu, sigma=sigma, input_shape=tuple(xf.shape), **options)
    eps = h.asarray(activation_to(cl, noise), noise_dtype(dtype))

    def fn(layer, x):
        z = h.call(layer, x, training=training, noise=eps)
        return z, h.kl(layer)

    kl_cotangent = np.ones(x.shape[:1]) if x.ndim > 1 else np.ones(())
    by_input, by_param = h.vjp(fn, {"x": xf}, (activation_to(cl, z_cotangent), kl_cotangent), layer)
    grads = {
        "x": activation_from(cl, by_input["x"]),
        "weight": kernel_from(cl, by_param["weight"]),
        "bias": by_param["bias"],
        "alpha_weight": kernel_from(cl, by_param["alpha_weight"]),
        "alpha_bias": by_param["alpha_bias"],
    }
    if "alpha_down" in by_param:
        grads["alpha_down"] = kernel_from(cl, by_param["alpha_down"])
    if "mu" in by_param:
        grads["mu"] = by_param["mu"]
        grads["sigma"] = by_param["log_sigma"] / sigma
    return grads
