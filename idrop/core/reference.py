"""The NumPy float64 reference: the one place that decides "NumPy + float64".

It calls the same :mod:`idrop.core.functional` code as every backend, with
``xp=numpy`` and inputs cast to float64, and samples with an explicit
:class:`numpy.random.Generator` (never the global ``np.random``). It also holds
the reference linear and 2-D convolution maps that the conformance suite uses to
check whole layers.
"""

from __future__ import annotations

import numpy as np

from . import functional, loss, noise
from ._xp import activation as _activation
from .kl import kl_divergence
from .priors import GaussianPosterior, StandardNormalPrior
from .spec import InfoDropoutSpec

_F64 = np.float64


def as_f64(a: object) -> np.ndarray:
    """``a`` as a float64 NumPy array (the reference's only dtype)."""
    return np.asarray(a, dtype=_F64)


def sample_eps(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Standard-normal draws for the log-normal and Gaussian noise laws."""
    return rng.standard_normal(shape)


def sample_uniform(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Standard-uniform draws on ``[0, 1)`` for binary dropout."""
    return rng.random(shape)


def alpha(alpha_logits: object, *, max_alpha: float = 0.7, alpha_min: float = 1e-3) -> np.ndarray:
    """Reference ``alpha = alpha_min + max_alpha * sigmoid(a)``."""
    spec = InfoDropoutSpec(max_alpha=max_alpha, alpha_min=alpha_min)
    return functional.alpha_from_logits(as_f64(alpha_logits), max_alpha=spec.max_alpha, alpha_min=spec.alpha_min, xp=np)


def info_dropout(
    f: object,
    alpha_logits: object,
    *,
    activation: str = "relu",
    prior: str | None = None,
    max_alpha: float = 0.7,
    alpha_min: float = 1e-3,
    mean_one: bool = False,
    zero_units: str = "count",
    mu: float = 0.0,
    sigma: float = 1.0,
    training: bool = True,
    noise: object | None = None,
    rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Reference ``(z, kl_per_unit)`` in float64, with the same options as the adapters.

    ``noise`` is the standard-normal ``eps``; if it is ``None`` in training mode,
    it is drawn from ``rng`` (required then).

    Example:
        >>> z, kl = info_dropout([[1.0, 0.0]], [[0.0, 0.0]], noise=[[0.5, -1.0]])
        >>> np.round(z, 4).tolist(), np.round(kl, 4).tolist()
        ([[1.1933, 0.0]], [[0.6946, 0.6946]])
    """
    spec = InfoDropoutSpec(activation, prior, max_alpha, alpha_min, mean_one, zero_units)
    f = as_f64(f)
    if training and noise is None:
        if rng is None:
            raise ValueError("reference.info_dropout needs `noise` or `rng` in training mode")
        noise = sample_eps(f.shape, rng)
    eps = None if noise is None else as_f64(noise)
    return functional.info_dropout(
        f, as_f64(alpha_logits), eps, spec=spec, mu=as_f64(mu), sigma=as_f64(sigma), training=training, xp=np
    )


def apply_noise(name: str, f: object, raw: object, **params: object) -> np.ndarray:
    """Reference output of the registered noise law ``name`` on raw draws ``raw``."""
    law = noise.NOISE_LAWS[name]
    return law.apply(as_f64(f), as_f64(raw), xp=np, **params)


def gaussian_kl(mu: object, scale: object) -> np.ndarray:
    """Reference per-unit ``KL(N(mu, scale^2) || N(0, 1))`` (the VAE, Sec. 5)."""
    return kl_divergence(GaussianPosterior(as_f64(mu), as_f64(scale)), StandardNormalPrior(), xp=np)


def per_sample_kl(kl_per_unit: object) -> np.ndarray:
    """Reference per-sample KL: the sum over every axis but the batch axis."""
    return loss.per_sample_kl(as_f64(kl_per_unit), xp=np)


def act(name: str, a: object) -> np.ndarray:
    """Reference activation (``"relu"`` or ``"softplus"``)."""
    return _activation(name, as_f64(a), xp=np)


def linear(x: object, weight: object, bias: object | None) -> np.ndarray:
    """``x @ weight.T + bias`` with torch's ``[out, in]`` weight layout."""
    y = as_f64(x) @ as_f64(weight).T
    return y if bias is None else y + as_f64(bias)


def conv2d(x: object, weight: object, bias: object | None, *, stride: int = 1, padding: int = 0) -> np.ndarray:
    """2-D cross-correlation, NCHW input and ``[out, in, kh, kw]`` weight (torch layout)."""
    x, w = as_f64(x), as_f64(weight)
    x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    h, wd = x.shape[2:]
    kh, kw = w.shape[2:]
    ho, wo = (h - kh) // stride + 1, (wd - kw) // stride + 1
    windows = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(2, 3))
    windows = windows[:, :, ::stride, ::stride][:, :, :ho, :wo]  # n c ho wo kh kw
    y = np.einsum("nchwij,ocij->nohw", windows, w)
    return y if bias is None else y + as_f64(bias)[None, :, None, None]
