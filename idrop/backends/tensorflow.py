"""TensorFlow / Keras 3 adapter: ``info_dropout`` (functional) and ``InfoDropout`` (a ``keras.Layer``).

Sections, in order: (1) the framework import; the ``xp`` shim (over ``keras.ops``) the
core runs on, with the seeds and noise draws, is in ``_tensorflow_ops.py``, the maps'
calls in ``_tensorflow_maps.py`` and the training kernel in ``_tensorflow_kernel.py``;
(2) the functional ops, which draw noise with
``tf.random.stateless_*(alg="philox")`` seeded from a ``keras.random.SeedGenerator``
or an int ``seed=`` unless ``noise=`` is given; (3) the layers and the loss helpers.
It needs Keras 3 on its TensorFlow backend (``KERAS_BACKEND=tensorflow``).

Example:
    >>> import numpy as np
    >>> import keras
    >>> from idrop.backends.tensorflow import InfoDropout
    >>> layer = InfoDropout(keras.layers.Dense(256), activation="relu", seed=0)
    >>> z = layer(np.random.rand(32, 784).astype("float32"), training=True)
    >>> tuple(z.shape), tuple(layer.kl.shape)
    ((32, 256), (32,))
"""

from __future__ import annotations

import os
from typing import Any

from idrop.backends import missing_framework

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter
os.environ.setdefault("KERAS_BACKEND", "tensorflow")  # only if keras is not imported yet and nothing chose

try:
    import keras
    import tensorflow as tf  # noqa: F401 - the framework must be importable; the helpers use it
    from keras import ops
except ImportError as err:  # pragma: no cover - exercised in a subprocess test
    raise missing_framework("tensorflow", "TensorFlow") from err

if keras.backend.backend() != "tensorflow":  # pragma: no cover - needs another KERAS_BACKEND
    raise ImportError(
        "idrop.backends.tensorflow requires Keras 3 on its TensorFlow backend; "
        f"set KERAS_BACKEND=tensorflow before importing keras (found {keras.backend.backend()!r}). "
        "For JAX use idrop.backends.jax, for PyTorch idrop.backends.torch."
    )


from idrop.backends._tensorflow_kernel import info_dropout_kernel as _info_dropout_kernel
from idrop.backends._tensorflow_maps import (
    _build,
    _direct,
    _fresh_copy,
    _map_call,
    _twin_call,
    _twins,
)
from idrop.backends._tensorflow_ops import (
    _check_float,
    _compute_dtype,
    _draw_normal,
    _draw_uniform,
    _dtype,
    _layer_activation,
    _seed,
    _tensor,
    xp,
)
from idrop.core import functional as _functional
from idrop.core import noise as _noise
from idrop.core.kl import kl_divergence
from idrop.core.loss import ib_loss as _ib_loss
from idrop.core.loss import kl_term as _kl_term
from idrop.core.loss import per_sample_kl as _per_sample_kl
from idrop.core.priors import GaussianPosterior, StandardNormalPrior
from idrop.core.spec import (
    InfoDropoutSpec,
    check_beta,
    check_n_train,
    check_nonnegative,
    check_probability,
    check_same_shape,
    invalid,
)

__all__ = [
    "BinaryDropout",
    "GaussianDropout",
    "InfoDropout",
    "LogNormalDropout",
    "alpha_from_logits",
    "binary_dropout",
    "gaussian_dropout",
    "gaussian_kl",
    "ib_loss",
    "info_dropout",
    "kl_loss",
    "lognormal_dropout",
    "xp",
]

# 1. The array namespace (``xp``), activations, dtype checks, seeds and noise  #
#    draws live in _tensorflow_ops.py; the two maps' calls in _tensorflow_maps. #


# --------------------------------------------------------------------------- #
# 2. Functional ops.                                                           #
# --------------------------------------------------------------------------- #


def alpha_from_logits(alpha_logits: Any, *, max_alpha: float = 0.7, alpha_min: float = 1e-3) -> Any:
    """``alpha = alpha_min + max_alpha * sigmoid(alpha_logits)`` (see :func:`idrop.core.alpha_from_logits`)."""
    spec = InfoDropoutSpec(max_alpha=max_alpha, alpha_min=alpha_min)
    return _functional.alpha_from_logits(
        _tensor(alpha_logits), max_alpha=spec.max_alpha, alpha_min=spec.alpha_min, xp=xp
    )


def info_dropout(
    f: Any,
    alpha_logits: Any,
    *,
    prior: str = "log-uniform",
    max_alpha: float = 0.7,
    alpha_min: float = 1e-3,
    mean_one: bool = False,
    zero_units: str = "count",
    mu: Any = None,
    sigma: Any = None,
    training: bool = True,
    noise: Any = None,
    seed: Any = None,
) -> tuple[Any, Any]:
    r"""Information Dropout of an activation ``f`` given the alpha branch's logits.

    .. math:: z = f\,e^{\alpha\epsilon},\quad \alpha = \alpha_{\min} + \alpha_{\max}\sigma(a),
        \quad \epsilon\sim\mathcal N(0, 1)

    with the per-unit KL of eq. 3 (log-uniform prior) or eq. 4 (log-normal prior).

    Args:
        f: the activation ``f(x)`` (floating point, any shape).
        alpha_logits: the alpha branch's output, same shape as ``f``.
        prior: ``"log-uniform"`` or ``"log-normal"``.
        max_alpha, alpha_min, mean_one, zero_units: as in :class:`InfoDropout`.
        mu, sigma: the log-normal prior's parameters (default 0 and 1).
        training: apply noise (``True``) or return ``f`` (``False``).
        noise: the standard-normal ``eps`` to use instead of drawing it.
        seed: a ``keras.random.SeedGenerator`` (advances on each draw; use this in
            loops and under ``tf.function``) or an int (the same draw every call).

    Returns:
        ``(z, kl)``: ``z`` like ``f``; ``kl`` per unit, like ``f`` but float32 for
        half-precision inputs.
    """
    spec = InfoDropoutSpec(
        prior=prior, max_alpha=max_alpha, alpha_min=alpha_min, mean_one=mean_one, zero_units=zero_units
    )
    f, alpha_logits = _tensor(f), _tensor(alpha_logits)
    _check_float("f", f)
    _check_float("alpha_logits", alpha_logits)
    check_same_shape(f.shape, alpha_logits.shape)
    if _dtype(alpha_logits) != _dtype(f):  # torch promotes; TensorFlow does not
        alpha_logits = ops.cast(alpha_logits, _dtype(f))
    kl_dtype = _compute_dtype(f)
    if spec.prior == "log-normal":
        mu = _tensor(0.0 if mu is None else mu, kl_dtype)
        sigma = _tensor(1.0 if sigma is None else sigma, kl_dtype)
    eps = None
    if training:
        eps = _draw_normal(f, seed) if noise is None else _tensor(noise, kl_dtype)
    return _functional.info_dropout(
        f,
        alpha_logits,
        eps,
        spec=spec,
        mu=mu,
        sigma=sigma,
        training=training,
        kl_dtype=kl_dtype if kl_dtype != _dtype(f) else None,
        xp=xp,
    )


def gaussian_kl(mu: Any, scale: Any) -> Any:
    r"""Per-unit ``KL(N(mu, scale^2) || N(0, 1))``, the VAE's latent term (Sec. 5).

    Float32 at least for half-precision inputs. See :func:`idrop.core.kl_divergence`.
    """
    mu, scale = _tensor(mu), _tensor(scale)
    _check_float("mu", mu)
    dtype = _compute_dtype(mu)
    posterior = GaussianPosterior(ops.cast(mu, dtype), ops.cast(scale, dtype))
    return kl_divergence(posterior, StandardNormalPrior(), xp=xp)


def _baseline(law: str, f: Any, raw: Any, **params: Any) -> Any:
    """Apply a registered baseline law in float32 at least, returning ``f``'s dtype."""
    cd = _compute_dtype(f)
    out = _noise.NOISE_LAWS[law].apply(ops.cast(f, cd), _tensor(raw, cd), xp=xp, **params)
    return ops.cast(out, _dtype(f))


def binary_dropout(f: Any, rate: float = 0.5, *, training: bool = True, noise: Any = None, seed: Any = None) -> Any:
    """Binary dropout; ``noise`` is the standard-uniform draw (keep where ``noise >= rate``)."""
    rate = check_probability("rate", rate)
    f = _tensor(f)
    _check_float("f", f)
    if not training or rate == 0.0:
        return f
    if noise is None:
        noise = _draw_uniform(f, seed)
    return _baseline("binary", f, noise, rate=rate)


def gaussian_dropout(f: Any, rate: float = 0.5, *, training: bool = True, noise: Any = None, seed: Any = None) -> Any:
    """Gaussian dropout ``f * (1 + sqrt(rate/(1-rate)) * eps)``; ``noise`` is ``eps``."""
    rate = check_probability("rate", rate)
    f = _tensor(f)
    _check_float("f", f)
    if not training or rate == 0.0:
        return f
    eps = _draw_normal(f, seed) if noise is None else noise
    return _baseline("gaussian", f, eps, rate=rate)


def lognormal_dropout(
    f: Any, alpha: float = 0.7, *, mean_one: bool = False, training: bool = True, noise: Any = None, seed: Any = None
) -> Any:
    """Log-normal dropout with one fixed ``alpha``: ``f * exp(alpha * eps)``."""
    alpha = check_nonnegative("alpha", alpha)
    f = _tensor(f)
    _check_float("f", f)
    if not training:
        return f
    eps = _draw_normal(f, seed) if noise is None else noise
    return _baseline("lognormal", f, eps, alpha=alpha, mean_one=mean_one)


# --------------------------------------------------------------------------- #
# 3. Layers and losses.                                                        #
# --------------------------------------------------------------------------- #


def _check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise invalid(name, "a bool", value)
    return value


class _NoisyMap(keras.layers.Layer):
    """``noise(act(norm(layer(x))))``: what Information Dropout and its baselines share."""

    def __init__(
        self,
        layer: keras.Layer,
        *,
        activation: str = "relu",
        norm: keras.Layer | None = None,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("dtype", layer.dtype_policy)
        super().__init__(**kwargs)
        # The wrapped maps cast their own inputs. Our own autocast would also cast the
        # `noise=` keyword to float16 under mixed precision; the noise stays float32.
        self.autocast = False
        self.activation = InfoDropoutSpec(activation=activation).activation
        self.layer = layer
        self.norm = norm
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.kl = None

    def __call__(self, x: Any, *args: Any, **kwargs: Any) -> Any:
        # Checked here, not in call(): Keras rewrites the messages of errors raised
        # inside call(), and the message must be the same in every backend.
        if hasattr(x, "dtype"):
            _check_float("x", x)
        return super().__call__(x, *args, **kwargs)

    def build(self, input_shape: tuple) -> None:
        _build(self.norm, _build(self.layer, input_shape))

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return tuple(self.layer.compute_output_shape(input_shape))

    def activation_of(self, x: Any) -> Any:
        """``f(x) = act(norm(layer(x)))``, after checking that ``x`` is floating point."""
        x = _tensor(x)
        _check_float("x", x)
        h = _map_call(self.layer, x) if _direct(self.layer) else self.layer(x)
        if self.norm is not None:
            h = self.norm(h)
        return _layer_activation(self.activation, h)

    def get_config(self) -> dict[str, Any]:
        ser = keras.saving.serialize_keras_object
        return {
            **super().get_config(),
            "layer": ser(self.layer),
            "activation": self.activation,
            "norm": None if self.norm is None else ser(self.norm),
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> _NoisyMap:
        config = dict(config)
        for key in ("layer", "norm", "alpha_layer"):
            if config.get(key) is not None:
                config[key] = keras.saving.deserialize_keras_object(config[key])
        return super().from_config(config)


@keras.saving.register_keras_serializable(package="idrop")
class InfoDropout(_NoisyMap):
    r"""Information Dropout around a dense or convolutional layer (Achille & Soatto 2016).

    .. math:: z = f(x)\,e^{\alpha(x)\,\epsilon}, \quad f = \mathrm{act}(\mathrm{norm}(\mathrm{layer}(x))),
        \quad \alpha = \alpha_{\min} + \alpha_{\max}\,\sigma(\mathrm{alpha\_layer}(x))

    With ``training=True`` the log-normal noise is applied; otherwise the output is
    ``f(x)``. In training calls (and evaluation calls with ``eval_kl=True``) the per-sample
    KL (eq. 3 or 4, summed over units) is left on ``.kl`` (shape ``[batch]``; ``None`` after an
    evaluation call without ``eval_kl``, which skips the alpha branch) and its running mean in the metric
    ``"<name>_kl"``, which ``model.fit`` logs per epoch (``history["<name>_kl"]``).
    With ``beta`` and ``n_train`` the layer adds ``beta * mean(kl) / n_train`` to
    ``model.losses`` in training calls, so ``model.fit`` minimises the IB loss (eq. 5).
    ``.kl`` is the value of the last call: a symbolic tensor if that call was traced
    (inside ``model.fit`` or a ``tf.function``), so read it in the same function,
    or after an eager call; :func:`kl_loss` and :func:`ib_loss` read it too.

    Args:
        layer: ``Dense`` or ``Conv1D/2D/3D`` (any layer if ``alpha_layer`` is given).
        activation: ``"relu"`` or ``"softplus"``.
        prior: ``"log-uniform"`` or ``"log-normal"``; default from the activation.
        max_alpha: cap of the noise scale (default 0.7, official code).
        alpha_min: floor of the noise scale (default 1e-3).
        mean_one: mean-1 noise ``exp(alpha*eps - alpha^2/2)`` instead of median-1.
        zero_units: ``"count"`` or ``"mask"`` for units with ``f(x) == 0`` (log-uniform prior).
        norm: optional layer between ``layer`` and the activation (batch norm in the paper's CNNs).
        alpha_layer: the alpha branch; default a fresh ``layer`` of the same class
            and config (own weights, linear activation).
        beta, n_train: when both are given, add the KL term to ``self.losses``.
        eval_kl: also compute the alpha branch and the KL in evaluation calls (default: skip them).
        seed: int seed of the layer's ``keras.random.SeedGenerator``.
        **kwargs: ``keras.Layer`` arguments (``name``, ``dtype``; default ``layer``'s dtype policy).

    Call arguments:
        x: the input of ``layer``. training: apply the noise. noise: the standard-normal
        ``eps``, shaped like the output (float32 under mixed precision).

    Raises:
        ValueError, TypeError: for bad options, at construction; for non-float
        input or an ``alpha_layer`` of another output shape, at the call.
    """

    def __init__(
        self,
        layer: keras.Layer,
        *,
        activation: str = "relu",
        prior: str | None = None,
        max_alpha: float = 0.7,
        alpha_min: float = 1e-3,
        mean_one: bool = False,
        zero_units: str = "count",
        norm: keras.Layer | None = None,
        alpha_layer: keras.Layer | None = None,
        beta: float | None = None,
        n_train: int | None = None,
        eval_kl: bool = False,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        spec = InfoDropoutSpec(activation, prior, max_alpha, alpha_min, mean_one, zero_units)
        beta = None if beta is None else check_beta(beta)
        n_train = None if n_train is None and beta is None else check_n_train(n_train)
        alpha_layer = _fresh_copy(layer) if alpha_layer is None else alpha_layer
        super().__init__(layer, activation=spec.activation, norm=norm, seed=seed, **kwargs)
        self.spec, self.beta, self.n_train, self.alpha_layer = spec, beta, n_train, alpha_layer
        self.eval_kl = _check_bool("eval_kl", eval_kl)
        self.kl_metric = keras.metrics.Mean(name=f"{self.name}_kl")
        if spec.prior == "log-normal":
            # sigma = exp(log_sigma) stays positive under any optimiser step; float32 at
            # least under mixed precision (autocast=False), like the KL.
            self.mu = self.add_weight(shape=(), initializer="zeros", name="mu", autocast=False)
            self.log_sigma = self.add_weight(shape=(), initializer="zeros", name="log_sigma", autocast=False)

    @property
    def sigma(self) -> Any:
        """The log-normal prior's standard deviation (``None`` for the log-uniform prior)."""
        return ops.exp(self.log_sigma) if self.spec.prior == "log-normal" else None

    def build(self, input_shape: tuple) -> None:
        out_shape = _build(self.layer, input_shape)
        _build(self.norm, out_shape)
        check_same_shape(out_shape, _build(self.alpha_layer, input_shape))
        self._twin_maps = _twins(self.layer, self.alpha_layer)

    def _maps(self, x: Any) -> tuple[Any, Any]:
        """``(norm(layer(x)), alpha_layer(x))``: one op on the concatenated kernels when they allow it."""
        x = _tensor(x)
        _check_float("x", x)
        if getattr(self, "_twin_maps", False):
            h, alpha_logits = _twin_call(self.layer, self.alpha_layer, x)
        else:
            h, alpha_logits = self.layer(x), self.alpha_layer(x)
        if self.norm is not None:
            h = self.norm(h)
        return h, alpha_logits

    def call(self, x: Any, training: bool | None = None, noise: Any = None) -> Any:
        training = bool(training)
        if not training and not self.eval_kl:
            self.kl = None  # no alpha branch, no KL, no metric update
            return self.activation_of(x)
        h, alpha_logits = self._maps(x)
        check_same_shape(h.shape, alpha_logits.shape)
        lognormal = self.spec.prior == "log-normal"
        if training:
            kl_dtype = _compute_dtype(h)
            noise = _seed(self.seed_generator) if noise is None else _tensor(noise, kl_dtype)
            prior = (ops.cast(self.mu, kl_dtype), ops.cast(self.sigma, kl_dtype)) if lognormal else ()
            z, self.kl = _info_dropout_kernel(self.spec, kl_dtype, len(h.shape))(h, alpha_logits, noise, *prior)
        else:
            z, kl = info_dropout(
                _layer_activation(self.activation, h),
                alpha_logits,
                **self.spec.kl_options,
                training=False,
                mu=self.mu if lognormal else None,
                sigma=self.sigma if lognormal else None,
            )
            self.kl = _per_sample_kl(kl, xp=xp)
        self.kl_metric.update_state(self.kl)
        if training and self.beta is not None:
            term = self.beta * _kl_term([self.kl], n_train=self.n_train, xp=xp)
            self.add_loss(ops.cast(term, keras.config.floatx()))
        return z

    def get_config(self) -> dict[str, Any]:
        s = self.spec
        return {
            **super().get_config(),
            "prior": s.prior,
            "max_alpha": s.max_alpha,
            "alpha_min": s.alpha_min,
            "mean_one": s.mean_one,
            "zero_units": s.zero_units,
            "alpha_layer": keras.saving.serialize_keras_object(self.alpha_layer),
            "beta": self.beta,
            "n_train": self.n_train,
            "eval_kl": self.eval_kl,
        }


@keras.saving.register_keras_serializable(package="idrop")
class BinaryDropout(_NoisyMap):
    """Baseline: ``act(norm(layer(x)))`` then binary dropout with ``rate`` (``noise``: uniform draws)."""

    def __init__(
        self,
        layer: keras.Layer,
        *,
        activation: str = "relu",
        rate: float = 0.5,
        norm: keras.Layer | None = None,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(layer, activation=activation, norm=norm, seed=seed, **kwargs)
        self.rate = check_probability("rate", rate)

    def call(self, x: Any, training: bool | None = None, noise: Any = None) -> Any:
        return binary_dropout(
            self.activation_of(x), self.rate, training=bool(training), noise=noise, seed=self.seed_generator
        )

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "rate": self.rate}


@keras.saving.register_keras_serializable(package="idrop")
class GaussianDropout(BinaryDropout):
    """Baseline: Gaussian dropout with the variance ``rate/(1-rate)`` of binary dropout."""

    def call(self, x: Any, training: bool | None = None, noise: Any = None) -> Any:
        return gaussian_dropout(
            self.activation_of(x), self.rate, training=bool(training), noise=noise, seed=self.seed_generator
        )


@keras.saving.register_keras_serializable(package="idrop")
class LogNormalDropout(_NoisyMap):
    """Baseline: log-normal dropout with one fixed ``alpha`` and no alpha branch."""

    def __init__(
        self,
        layer: keras.Layer,
        *,
        activation: str = "relu",
        alpha: float = 0.7,
        mean_one: bool = False,
        norm: keras.Layer | None = None,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(layer, activation=activation, norm=norm, seed=seed, **kwargs)
        self.alpha = check_nonnegative("alpha", alpha)
        self.mean_one = InfoDropoutSpec(mean_one=mean_one).mean_one

    def call(self, x: Any, training: bool | None = None, noise: Any = None) -> Any:
        return lognormal_dropout(
            self.activation_of(x),
            self.alpha,
            mean_one=self.mean_one,
            training=bool(training),
            noise=noise,
            seed=self.seed_generator,
        )

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "alpha": self.alpha, "mean_one": self.mean_one}


def _kl_per_sample(model: keras.Layer, dtype: str | None = None) -> list[Any]:
    """Every InfoDropout sublayer's ``.kl``, in one float dtype (float32, or float64 if any is)."""
    kls = [
        m.kl
        for m in model._flatten_layers(include_self=True, recursive=True)
        if isinstance(m, InfoDropout) and m.kl is not None
    ]
    if dtype is None:
        dtype = "float64" if any(_dtype(k) == "float64" for k in kls) else "float32"
    return [ops.cast(k, dtype) for k in kls]


def kl_loss(model: keras.Layer, n_train: int) -> Any:
    r"""``sum over InfoDropout layers of mean(layer.kl) / n_train`` from the last call (eq. 5)."""
    kls = _kl_per_sample(model)
    if not kls:
        zero = ops.zeros((), dtype="float32")
        _kl_term([zero], n_train=n_train, xp=xp)  # validates n_train all the same
        return zero
    return _kl_term(kls, n_train=n_train, xp=xp)


def ib_loss(task_loss: Any, model: keras.Layer, beta: float, n_train: int) -> Any:
    r"""The Information Bottleneck loss ``task_loss + beta * kl_loss(model, n_train)`` (eq. 5).

    Computed in ``task_loss``'s dtype (float32 at least). Do not also give the
    layers ``beta``/``n_train`` when you use this, or the KL is counted twice.
    """
    task_loss = _tensor(task_loss)
    dtype = _compute_dtype(task_loss)
    kls = _kl_per_sample(model, dtype) or [ops.zeros((), dtype=dtype)]
    return _ib_loss(ops.cast(task_loss, dtype), kls, beta=beta, n_train=n_train, xp=xp)
