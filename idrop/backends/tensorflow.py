"""TensorFlow / Keras 3 adapter: ``info_dropout`` (functional) and ``InfoDropout`` (a ``keras.Layer``).

Sections, in order: (1) the framework import and the ``xp`` shim (over
``keras.ops``) the core runs on; (2) the functional ops, which draw noise with
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
    import tensorflow as tf
    from keras import ops
except ImportError as err:  # pragma: no cover - exercised in a subprocess test
    raise missing_framework("tensorflow", "TensorFlow") from err

if keras.backend.backend() != "tensorflow":  # pragma: no cover - needs another KERAS_BACKEND
    raise ImportError(
        "idrop.backends.tensorflow requires Keras 3 on its TensorFlow backend; "
        f"set KERAS_BACKEND=tensorflow before importing keras (found {keras.backend.backend()!r}). "
        "For JAX use idrop.backends.jax, for PyTorch idrop.backends.torch."
    )

from keras.src.random.seed_generator import draw_seed as _keras_draw_seed

from idrop.backends._tensorflow_kernel import info_dropout_kernel as _info_dropout_kernel
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
    check_float_dtype,
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

# --------------------------------------------------------------------------- #
# 1. The array namespace the core is written against (see idrop/core/_xp.py). #
# --------------------------------------------------------------------------- #


def _tie_split(fn: Any) -> Any:
    """Broadcast both operands, then call ``fn`` (whose gradient assumes equal shapes)."""

    def wrapper(x1: Any, x2: Any) -> Any:
        x1, x2 = tf.convert_to_tensor(x1), tf.convert_to_tensor(x2)
        if x1.shape != x2.shape:
            shape = tf.broadcast_dynamic_shape(tf.shape(x1), tf.shape(x2))
            x1, x2 = tf.broadcast_to(x1, shape), tf.broadcast_to(x2, shape)
        return fn(x1, x2)

    return wrapper


@_tie_split
@tf.custom_gradient
def _maximum(x1: Any, x2: Any) -> Any:
    """``maximum`` whose gradient splits ties evenly, as torch and JAX do.

    TensorFlow gives a tie wholly to ``x1``, so ``relu'(0)`` would be 1 here and
    1/2 in the other backends and in the reference's finite differences.
    """

    def grad(g: Any) -> tuple[Any, Any]:
        w = tf.where(x1 > x2, tf.ones_like(g), tf.where(x1 < x2, tf.zeros_like(g), 0.5 * tf.ones_like(g)))
        return g * w, g * (1 - w)

    return tf.maximum(x1, x2), grad


@_tie_split
@tf.custom_gradient
def _logaddexp(x1: Any, x2: Any) -> Any:
    """``logaddexp`` with the exact gradient ``sigmoid(x1 - x2)``.

    ``keras.ops.logaddexp`` is ``max(x1, x2) + softplus(-|x1 - x2|)`` under
    TensorFlow, whose gradient at ``x1 == x2`` is 1 instead of 1/2 (the max and
    abs kinks), which doubled ``d sigmoid / da`` at ``a = 0``.
    """

    def grad(g: Any) -> tuple[Any, Any]:
        return g * tf.sigmoid(x1 - x2), g * tf.sigmoid(x2 - x1)

    return ops.logaddexp(x1, x2), grad


@tf.custom_gradient
def _relu(h: Any) -> Any:
    """``max(h, 0)`` with the tie gradient 1/2 at 0 of :func:`_maximum`, in one op (the layers' activation)."""

    def grad(g: Any) -> Any:
        return g * (0.5 * (tf.sign(h) + 1.0))

    return tf.maximum(h, 0.0), grad


@tf.custom_gradient
def _softplus(h: Any) -> Any:
    """``logaddexp(h, 0)`` (the same formula as ``keras.ops.logaddexp``) with the gradient ``sigmoid(h)``."""

    def grad(g: Any) -> Any:
        return g * tf.sigmoid(h)

    return tf.maximum(h, 0.0) + tf.math.log1p(tf.exp(-tf.abs(h))), grad


try:  # private, but the only way to ask whether any GradientTape could record an op
    from tensorflow.python.eager.record import could_possibly_record as _could_record
except ImportError:  # pragma: no cover - a TensorFlow release moved it: always take the custom-gradient ops
    _could_record = None


def _untaped() -> bool:
    """Eager execution with no active tape: no gradient can be asked of what runs now."""
    return _could_record is not None and tf.executing_eagerly() and not _could_record()


def _relu_untaped(h: Any) -> Any:
    return tf.nn.relu(h)  # the same values as _relu; its custom_gradient wrapper costs ~0.2 ms per eager call


def _softplus_untaped(h: Any) -> Any:
    return tf.maximum(h, 0.0) + tf.math.log1p(tf.exp(-tf.abs(h)))


_LAYER_ACTIVATIONS = {"relu": _relu, "softplus": _softplus}
_UNTAPED_ACTIVATIONS = {"relu": _relu_untaped, "softplus": _softplus_untaped}


def _layer_activation(name: str, h: Any) -> Any:
    """The layers' activation: with the tie-splitting gradients, or plain ops when no tape can record."""
    return (_UNTAPED_ACTIVATIONS if _untaped() else _LAYER_ACTIVATIONS)[name](h)


class _KerasNamespace:
    """The handful of array-API names the core uses, spelled with ``keras.ops``."""

    exp = staticmethod(ops.exp)
    expm1 = staticmethod(ops.expm1)
    log = staticmethod(ops.log)
    log1p = staticmethod(ops.log1p)
    logaddexp = staticmethod(_logaddexp)
    maximum = staticmethod(_maximum)
    sqrt = staticmethod(ops.sqrt)
    square = staticmethod(ops.square)
    where = staticmethod(ops.where)
    zeros_like = staticmethod(ops.zeros_like)
    ones_like = staticmethod(ops.ones_like)
    asarray = staticmethod(ops.convert_to_tensor)

    @staticmethod
    def astype(x: Any, dtype: Any) -> Any:
        return ops.cast(x, dtype)

    @staticmethod
    def sum(x: Any, axis: Any = None) -> Any:
        return ops.sum(x, axis=axis)

    @staticmethod
    def mean(x: Any, axis: Any = None) -> Any:
        return ops.mean(x, axis=axis)


xp = _KerasNamespace()

_HALF = ("float16", "bfloat16")


def _dtype(t: Any) -> str:
    return keras.backend.standardize_dtype(t.dtype)


def _compute_dtype(t: Any) -> str:
    """float32 for half-precision tensors (KL and noise), else the tensor's dtype."""
    return "float32" if _dtype(t) in _HALF else _dtype(t)


def _check_float(name: str, t: Any) -> None:
    check_float_dtype(name, _dtype(t), keras.backend.is_float_dtype(_dtype(t)))


def _tensor(t: Any, dtype: str | None = None) -> Any:
    """``t`` as a tensor; cast to ``dtype`` if given (Python floats convert straight to it)."""
    if hasattr(t, "dtype") and hasattr(t, "shape"):
        return t if dtype is None else ops.cast(t, dtype)
    # Not ops.cast(0.3, "float64"): that rounds through float32 first.
    return ops.convert_to_tensor(t, dtype=dtype)


def _seed(seed: Any) -> Any:
    """The ``int32[2]`` seed of a stateless op from a ``SeedGenerator`` (advanced), an int or ``None``.

    The same words as ``keras.random`` uses (its ``draw_seed`` and the int32 fold of its
    TensorFlow backend), with the replica id folded in under ``tf.distribute``.
    """
    if isinstance(seed, keras.random.SeedGenerator):
        words = seed.next()
    else:
        words = _keras_draw_seed(seed)
    if words.dtype != tf.int32:
        words = tf.cast(tf.math.floormod(words, tf.int32.max - 1), tf.int32)
    return _fold_replica(words)


#: Odd 31-bit constant that spreads replica ids over the seed space (golden-ratio hashing).
_REPLICA_STRIDE = 0x1E3779B1


def _fold_replica(words: Any) -> Any:
    """Fold the replica id into the seed's first word, so replicas draw different noise.

    Under ``tf.distribute`` a ``SeedGenerator``'s state is one mirrored variable: without
    this every replica would read the same seed and draw the SAME noise (the classic
    data-parallel bug). Replica 0, and any code outside a strategy, keeps its seed.
    """
    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync == 1:
        return words
    rid = tf.cast(ctx.replica_id_in_sync_group, tf.int64)
    first = tf.math.floormod(tf.cast(words[0], tf.int64) + rid * _REPLICA_STRIDE, tf.int32.max - 1)
    first = tf.where(rid == 0, words[0], tf.cast(first, tf.int32))
    return tf.stack([first, words[1]])


def _draw_normal(like: Any, seed: Any) -> Any:
    """Standard normals shaped like ``like``, in float32 at least (never half).

    ``tf.random.stateless_normal(alg="philox")``: the default of ``keras.random.normal``
    (``auto_select``) is ~40x slower under XLA on the CPU.
    """
    return tf.random.stateless_normal(tf.shape(like), seed=_seed(seed), dtype=_compute_dtype(like), alg="philox")


def _draw_uniform(like: Any, seed: Any) -> Any:
    """Standard uniforms on ``[0, 1)`` shaped like ``like``, in float32 at least (Philox, as above)."""
    return tf.random.stateless_uniform(tf.shape(like), seed=_seed(seed), dtype=_compute_dtype(like), alg="philox")


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

_MAPS = (keras.layers.Dense, keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)


def _fresh_copy(layer: keras.Layer) -> keras.Layer:
    """A new, unbuilt map of ``layer``'s kind and shape (own weights, linear activation)."""
    if isinstance(layer, _MAPS):
        config = {**layer.get_config(), "name": f"{layer.name}_alpha", "activation": "linear"}
        return type(layer).from_config(config)
    raise ValueError(
        "Invalid value received for argument `alpha_layer`. Expected a layer when "
        "`layer` is not Dense/Conv1D/2D/3D. "
        f"Received: alpha_layer=None, layer={type(layer).__name__}"
    )


#: Twin maps computed in one op on their concatenated kernels: faster for convolutions (eager about
#: even, ~1.4x under XLA on the CPU), slower for Dense (the copy of the kernels costs more than it saves).
_STACK = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)


def _direct(layer: keras.Layer | None) -> bool:
    """Whether :func:`_map_call` may compute ``layer`` without its ``__call__`` (a plain Dense/ConvND)."""
    return (
        type(layer) in _MAPS
        and layer.built
        and not getattr(layer, "quantization_mode", None)
        and not layer.activity_regularizer
        and (isinstance(layer, keras.layers.Dense) or layer.data_format == "channels_last")
    )


def _weights(layer: keras.Layer, dtype: str) -> tuple[Any, Any]:
    return ops.cast(layer.kernel, dtype), (ops.cast(layer.bias, dtype) if layer.use_bias else None)


def _linear_map(layer: keras.Layer, x: Any, kernel: Any, bias: Any) -> Any:
    """``layer.call`` without the activation, on the given (compute-dtype) kernel and bias."""
    y = ops.matmul(x, kernel) if isinstance(layer, keras.layers.Dense) else layer.convolution_op(x, kernel)
    return y if bias is None else ops.add(y, bias)


def _activate(layer: keras.Layer, h: Any) -> Any:
    return h if layer.activation in (None, keras.activations.linear) else layer.activation(h)


def _map_call(layer: keras.Layer, x: Any) -> Any:
    """``layer(x)`` for a :func:`_direct` layer, as its ``call`` computes it, without the ``__call__``
    machinery (~0.7 ms of Python per call in eager mode, as much as a 128x784x1024 matmul's half)."""
    dtype = layer.compute_dtype
    return _activate(layer, _linear_map(layer, ops.cast(x, dtype), *_weights(layer, dtype)))


def _twins(layer: keras.Layer, alpha_layer: keras.Layer) -> bool:
    """Whether ``alpha_layer`` is a linear twin of ``layer`` (same class and geometry, own weights)."""
    if type(layer) is not type(alpha_layer) or not (_direct(layer) and _direct(alpha_layer)):
        return False
    if alpha_layer.activation not in (None, keras.activations.linear) or layer.use_bias != alpha_layer.use_bias:
        return False
    if layer.dtype_policy.name != alpha_layer.dtype_policy.name:
        return False
    if tuple(layer.kernel.shape) != tuple(alpha_layer.kernel.shape):
        return False
    if isinstance(layer, keras.layers.Dense):
        return True
    geometry = ("strides", "padding", "dilation_rate", "data_format", "groups")
    return all(getattr(layer, k) == getattr(alpha_layer, k) for k in geometry)


def _twin_call(layer: keras.Layer, alpha_layer: keras.Layer, x: Any) -> tuple[Any, Any]:
    """``(layer(x), alpha_layer(x))`` of :func:`_twins`; one op on the concatenated kernels for :data:`_STACK`."""
    dtype = layer.compute_dtype
    x = ops.cast(x, dtype)
    (k, b), (ka, ba) = _weights(layer, dtype), _weights(alpha_layer, dtype)
    if isinstance(layer, _STACK) and layer.groups == 1:
        y = _linear_map(layer, x, tf.concat([k, ka], axis=-1), None if b is None else tf.concat([b, ba], axis=0))
        h, alpha_logits = tf.split(y, 2, axis=-1)
    else:
        h, alpha_logits = _linear_map(layer, x, k, b), _linear_map(alpha_layer, x, ka, ba)
    return _activate(layer, h), alpha_logits


def _check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise invalid(name, "a bool", value)
    return value


def _build(layer: keras.Layer | None, shape: tuple) -> tuple:
    """Build ``layer`` for inputs of ``shape`` (if it is not yet) and return its output shape."""
    if layer is None:
        return shape
    if not layer.built:
        layer.build(shape)
    return tuple(layer.compute_output_shape(shape))


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
