"""What a backend must provide to be checked by the conformance suite.

One :class:`Harness` per backend (``_harness_<name>.py``) translates between
NumPy arrays in the *reference layout* and the framework. The reference layout
is torch's: activations ``[batch, features]`` or NCHW ``[batch, channels, h, w]``;
linear weights ``[out, in]``; conv weights ``[out, in, kh, kw]``. A harness whose
framework is channels-last (Keras, Flax) transposes inputs, noise, outputs,
weights and weight gradients itself, so every test reads the same.

Every array crossing this boundary is a NumPy array; the harness returns float64
copies of the framework's results (after checking nothing; the tests check
dtypes through :meth:`Harness.dtype_name`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

import numpy as np

#: Float dtypes the suite knows, by name. A harness lists the ones it supports.
DTYPES = ("float64", "float32", "float16", "bfloat16")


@dataclasses.dataclass(frozen=True)
class LayerWeights:
    """Weights of one wrapped map and its alpha branch, in the reference layout.

    ``kind`` is ``"linear"`` (weights ``[out, in]``) or ``"conv2d"`` (weights
    ``[out, in, kh, kw]``, square kernel ``kh``, ``stride`` and ``padding`` as in
    torch's ``Conv2d(..., padding=p)``, zero padding).
    """

    kind: str
    weight: np.ndarray
    bias: np.ndarray
    alpha_weight: np.ndarray
    alpha_bias: np.ndarray
    stride: int = 1
    padding: int = 0


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


class Harness(Protocol):
    """The adapter between the suite and one backend.

    ``options`` below always means the shared keyword options of DESIGN.md
    section 2: ``prior``, ``max_alpha``, ``alpha_min``, ``mean_one``,
    ``zero_units`` (and ``activation`` for layers). ``mu``/``sigma`` are the
    log-normal prior's scalars (floats; ignored for the log-uniform prior).
    """

    name: str  #: backend name: "torch", "tensorflow" or "jax"
    framework: str  #: e.g. "torch 2.13.0"
    dtypes: tuple[str, ...]  #: the names of DTYPES this backend supports
    grad_dtypes: tuple[str, ...]  #: dtypes whose gradients are compared (float64 at least)

    def info_dropout(
        self,
        f: np.ndarray,
        alpha_logits: np.ndarray,
        *,
        dtype: str,
        noise: np.ndarray | None,
        training: bool,
        mu: float,
        sigma: float,
        **options: Any,
    ) -> Output:
        """The backend's functional ``info_dropout`` on inputs cast to ``dtype``; kl per unit."""

    def alpha(self, alpha_logits: np.ndarray, *, dtype: str, max_alpha: float, alpha_min: float) -> np.ndarray:
        """The backend's ``alpha_from_logits``, returned as float64."""

    def info_dropout_grads(
        self,
        f: np.ndarray,
        alpha_logits: np.ndarray,
        *,
        noise: np.ndarray,
        mu: float,
        sigma: float,
        z_cotangent: np.ndarray,
        kl_cotangent: np.ndarray,
        **options: Any,
    ) -> dict[str, np.ndarray]:
        """Float64 gradients of ``sum(z * z_cot) + sum(kl * kl_cot)`` (functional form).

        Keys: ``"f"``, ``"alpha_logits"``, ``"mu"``, ``"sigma"`` (the last two
        only for the log-normal prior).
        """

    def apply_noise(self, law: str, f: np.ndarray, raw: np.ndarray, *, dtype: str, **params: Any) -> np.ndarray:
        """The backend's baseline ``law`` ("binary", "gaussian", "lognormal") on injected raw draws."""

    def gaussian_kl(self, mu: np.ndarray, scale: np.ndarray, *, dtype: str) -> Output:
        """The backend's ``gaussian_kl(mu, scale)`` (the VAE latent KL); ``Output.z`` is unused (``mu``)."""

    def sample(self, law: str, shape: tuple[int, ...], *, seed: int, **params: Any) -> np.ndarray:
        """Draw ``z`` for ``f = ones(shape)`` with the backend's *own* RNG, float64.

        ``law`` is a key of :data:`idrop.core.NOISE_LAWS`. For ``"information"``,
        ``params`` has ``alpha_logits`` (a float, the same for every unit),
        ``max_alpha``, ``alpha_min`` and ``mean_one``; the baselines take ``rate``
        or ``alpha`` (and ``mean_one``).
        """

    def layer(
        self,
        weights: LayerWeights,
        x: np.ndarray,
        *,
        dtype: str,
        noise: np.ndarray | None,
        training: bool,
        mu: float,
        sigma: float,
        **options: Any,
    ) -> Output:
        """Build ``InfoDropout(<map>)`` with these weights, call it on ``x``; kl per sample."""

    def layer_grads(
        self,
        weights: LayerWeights,
        x: np.ndarray,
        *,
        noise: np.ndarray,
        mu: float,
        sigma: float,
        z_cotangent: np.ndarray,
        **options: Any,
    ) -> dict[str, np.ndarray]:
        """Float64 gradients of ``sum(z * z_cot) + sum(layer.kl)`` in the reference layout.

        Keys: ``"x"``, ``"weight"``, ``"bias"``, ``"alpha_weight"``, ``"alpha_bias"``,
        and ``"mu"``, ``"sigma"`` for the log-normal prior.
        """

    def construct_error(self, **kwargs: Any) -> BaseException | None:
        """Build ``InfoDropout(Linear(4, 3), **kwargs)``; return the exception raised, or None."""

    def call_error(self, case: str) -> BaseException | None:
        """Provoke the call-time error ``case`` and return it (or None).

        Cases: ``"integer_input"`` (a layer called on an int32 tensor),
        ``"alpha_layer_shape"`` (``alpha_layer`` = Linear(4, 5) beside Linear(4, 3)),
        ``"n_train"`` (``kl_loss(model, n_train=0)``), ``"beta"`` (``ib_loss`` with
        ``beta=-1``).
        """
