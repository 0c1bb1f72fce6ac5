"""Conformance harness for :mod:`idrop.backends.tensorflow` (Keras 3, channels-last).

The reference layout is torch's (NCHW; linear weights ``[out, in]``; conv weights
``[out, in, kh, kw]``). Keras is NHWC with ``Dense`` kernels ``[in, out]`` and
``Conv2D`` kernels ``[kh, kw, in, out]``, so inputs, noise, outputs, weights and
weight gradients are transposed here. The reference pads symmetrically (torch's
``padding=p``); Keras' ``"same"`` padding is asymmetric at stride 2, so a padded
convolution is ``Sequential([ZeroPadding2D(p), Conv2D(padding="valid")])``, which
also exercises the "any layer with an explicit ``alpha_layer``" path.
"""

from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import ml_dtypes
import numpy as np
import tensorflow as tf

from idrop.backends import tensorflow as backend
from idrop.conformance._harness import LayerWeights, Output

_HALF = ("float16", "bfloat16")


def _t(a: Any, dtype: str = "float64") -> tf.Tensor:
    # Cast in NumPy: TensorFlow's CPU cast flushes subnormals to zero.
    np_dtype = ml_dtypes.bfloat16 if dtype == "bfloat16" else np.dtype(dtype)
    return tf.constant(np.asarray(a, dtype=np.float64).astype(np_dtype))


def _np(t: Any) -> np.ndarray:
    return np.asarray(t).astype(np.float64)


def _name(t: Any) -> str:
    return keras.backend.standardize_dtype(t.dtype)


def _noise_dtype(dtype: str) -> str:
    return "float32" if dtype in _HALF else dtype


def _split(options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    options = dict(options)
    return options.pop("activation", "relu"), options


def _to_keras(a: np.ndarray) -> np.ndarray:
    """NCHW -> NHWC (no-op for 2-D activations)."""
    a = np.asarray(a, dtype=np.float64)
    return np.moveaxis(a, 1, -1) if a.ndim == 4 else a


def _from_keras(a: np.ndarray) -> np.ndarray:
    """NHWC -> NCHW (no-op for 2-D activations)."""
    return np.moveaxis(a, -1, 1) if a.ndim == 4 else a


def _kernel_to_keras(w: np.ndarray) -> np.ndarray:
    return np.asarray(w).T if w.ndim == 2 else np.transpose(w, (2, 3, 1, 0))


def _kernel_from_keras(k: np.ndarray) -> np.ndarray:
    return k.T if k.ndim == 2 else np.transpose(k, (3, 2, 0, 1))


def _map(layer: keras.Layer) -> keras.Layer:
    """The Dense/Conv2D inside ``layer`` (itself, or the last layer of a Sequential)."""
    return layer.layers[-1] if isinstance(layer, keras.Sequential) else layer


_BASELINES = {
    "binary": backend.binary_dropout,
    "gaussian": backend.gaussian_dropout,
    "lognormal": backend.lognormal_dropout,
}


class TensorFlowHarness:
    name = "tensorflow"
    framework = f"tensorflow {tf.__version__}, keras {keras.__version__}"
    dtypes = ("float64", "float32", "float16", "bfloat16")
    grad_dtypes = ("float64",)

    def info_dropout(self, f, alpha_logits, *, dtype, noise, training, mu, sigma, **options):
        _, options = _split(options)
        z, kl = backend.info_dropout(
            _t(f, dtype),
            _t(alpha_logits, dtype),
            training=training,
            noise=None if noise is None else _t(noise, _noise_dtype(dtype)),
            mu=mu,
            sigma=sigma,
            **options,
        )
        return Output(_np(z), _np(kl), _name(z), _name(kl))

    def alpha(self, alpha_logits, *, dtype, max_alpha, alpha_min):
        return _np(backend.alpha_from_logits(_t(alpha_logits, dtype), max_alpha=max_alpha, alpha_min=alpha_min))

    def info_dropout_grads(self, f, alpha_logits, *, noise, mu, sigma, z_cotangent, kl_cotangent, **options):
        _, options = _split(options)
        inputs = {"f": _t(f), "alpha_logits": _t(alpha_logits)}
        if options.get("prior") == "log-normal":
            inputs["mu"] = _t(mu)
            inputs["sigma"] = _t(sigma)
        with tf.GradientTape() as tape:
            tape.watch(list(inputs.values()))
            z, kl = backend.info_dropout(
                inputs["f"],
                inputs["alpha_logits"],
                noise=_t(noise),
                mu=inputs.get("mu"),
                sigma=inputs.get("sigma"),
                **options,
            )
            loss = tf.reduce_sum(z * _t(z_cotangent)) + tf.reduce_sum(kl * _t(kl_cotangent))
        grads = tape.gradient(loss, inputs)
        return {k: _np(v) for k, v in grads.items()}

    def apply_noise(self, law, f, raw, *, dtype, **params):
        return _np(_BASELINES[law](_t(f, dtype), noise=_t(raw, _noise_dtype(dtype)), **params))

    def gaussian_kl(self, mu, scale, *, dtype):
        kl = backend.gaussian_kl(_t(mu, dtype), _t(scale, dtype))
        return Output(np.asarray(mu, dtype=np.float64), _np(kl), dtype, _name(kl))

    def sample(self, law, shape, *, seed, **params):
        gen = keras.random.SeedGenerator(seed)
        ones = tf.ones(shape, dtype=tf.float64)
        if law == "information":
            logits = tf.fill(shape, tf.constant(float(params.pop("alpha_logits")), tf.float64))
            return _np(backend.info_dropout(ones, logits, seed=gen, **params)[0])
        return _np(_BASELINES[law](ones, seed=gen, **params))

    # -- layers ----------------------------------------------------------------
    def _build(
        self,
        w: LayerWeights,
        x_shape: tuple,
        dtype: str,
        mu: float,
        sigma: float,
        options: dict[str, Any],
        eval_kl: bool = False,
    ) -> backend.InfoDropout:
        activation, options = _split(options)
        if w.kind == "linear":
            layer, alpha = keras.layers.Dense(w.weight.shape[0], dtype=dtype), None
        else:
            o, _, k, _ = w.weight.shape

            def conv() -> keras.Layer:
                c = keras.layers.Conv2D(o, k, strides=w.stride, padding="valid", dtype=dtype)
                pad = keras.layers.ZeroPadding2D(w.padding, dtype=dtype)
                return c if w.padding == 0 else keras.Sequential([pad, c])

            layer, alpha = conv(), (None if w.padding == 0 else conv())
        module = backend.InfoDropout(
            layer, activation=activation, alpha_layer=alpha, dtype=dtype, eval_kl=eval_kl, **options
        )
        module.build(x_shape)
        pairs = ((module.layer, w.weight, w.bias), (module.alpha_layer, w.alpha_weight, w.alpha_bias))
        for target, kernel, bias in pairs:
            _map(target).kernel.assign(_t(_kernel_to_keras(kernel), dtype))
            _map(target).bias.assign(_t(bias, dtype))
        if module.spec.prior == "log-normal":
            module.mu.assign(_t(mu, module.mu.dtype))
            module.log_sigma.assign(_t(np.log(sigma), module.log_sigma.dtype))
        return module

    def layer(self, weights, x, *, dtype, noise, training, mu, sigma, **options):
        xk = _to_keras(x)
        # eval_kl: evaluation calls report the KL too, as the contract's layers do.
        module = self._build(weights, xk.shape, dtype, mu, sigma, options, eval_kl=not training)
        noise_t = None if noise is None else _t(_to_keras(noise), _noise_dtype(dtype))
        z = module(_t(xk, dtype), training=training, noise=noise_t)
        return Output(_from_keras(_np(z)), _np(module.kl), _name(z), _name(module.kl))

    def layer_grads(self, weights, x, *, noise, mu, sigma, z_cotangent, **options):
        xk = _to_keras(x)
        module = self._build(weights, xk.shape, "float64", mu, sigma, options)
        xt = _t(xk)
        sources = {
            "x": xt,
            "weight": _map(module.layer).kernel,
            "bias": _map(module.layer).bias,
            "alpha_weight": _map(module.alpha_layer).kernel,
            "alpha_bias": _map(module.alpha_layer).bias,
        }
        lognormal = module.spec.prior == "log-normal"
        if lognormal:
            sources["mu"], sources["log_sigma"] = module.mu, module.log_sigma
        with tf.GradientTape() as tape:
            tape.watch(xt)
            z = module(xt, training=True, noise=_t(_to_keras(noise)))
            loss = tf.reduce_sum(z * _t(_to_keras(z_cotangent))) + tf.reduce_sum(module.kl)
        g = {k: _np(v) for k, v in tape.gradient(loss, sources).items()}
        grads = {
            "x": _from_keras(g["x"]),
            "weight": _kernel_from_keras(g["weight"]),
            "bias": g["bias"],
            "alpha_weight": _kernel_from_keras(g["alpha_weight"]),
            "alpha_bias": g["alpha_bias"],
        }
        if lognormal:
            grads["mu"] = g["mu"]
            # d/dsigma = d/dlog_sigma / sigma: report the gradient the contract names.
            grads["sigma"] = g["log_sigma"] / sigma
        return grads

    # -- errors ----------------------------------------------------------------
    def construct_error(self, **kwargs):
        try:
            backend.InfoDropout(keras.layers.Dense(3), **kwargs)
        except Exception as err:
            return err
        return None

    def call_error(self, case):
        try:
            if case == "integer_input":
                backend.InfoDropout(keras.layers.Dense(3))(tf.ones((2, 4), dtype=tf.int32))
            elif case == "alpha_layer_shape":
                backend.InfoDropout(keras.layers.Dense(3), alpha_layer=keras.layers.Dense(5))(tf.ones((2, 4)))
            elif case == "n_train":
                model = backend.InfoDropout(keras.layers.Dense(3))
                model(tf.ones((2, 4)))
                backend.kl_loss(model, n_train=0)
            elif case == "beta":
                model = backend.InfoDropout(keras.layers.Dense(3))
                model(tf.ones((2, 4)))
                backend.ib_loss(tf.zeros(()), model, beta=-1.0, n_train=10)
            else:
                raise KeyError(case)
        except KeyError:
            raise
        except Exception as err:
            return err
        return None


HARNESS = TensorFlowHarness()
