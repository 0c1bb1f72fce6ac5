"""JAX / Flax NNX networks of the paper: MLP (Fig. 3a), All-CNN-32 (Table 2a), the VAE (Sec. 5).

See :mod:`idrop.experiments.nets` for what each network is and where it comes from.
"""

from __future__ import annotations

import itertools
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from idrop.backends.jax import BinaryDropout, GaussianDropout, InfoDropout, LogNormalDropout, gaussian_kl

from . import ALL_CNN_WIDTHS

# ------------------------------------------------------------------------------------- MLP --


def hidden_layer(method: str, n_in: int, width: int, config: Any, rngs: nnx.Rngs) -> nnx.Module:
    """One hidden layer: Linear and the method's noise (``none``: the bare Linear; the MLP adds the ReLU)."""
    linear = nnx.Linear(n_in, width, rngs=rngs)
    if method == "none":
        return linear
    if method == "binary":
        return BinaryDropout(linear, activation="relu", rate=config.dropout_rate, rngs=rngs)
    if method == "gaussian":
        return GaussianDropout(linear, activation="relu", rate=config.dropout_rate, rngs=rngs)
    if method == "lognormal":
        return LogNormalDropout(linear, activation="relu", alpha=config.lognormal_alpha, rngs=rngs)
    if method == "information":
        return InfoDropout(
            linear,
            activation="relu",
            prior="log-uniform",
            max_alpha=config.max_alpha,
            alpha_rank=getattr(config, "alpha_rank", None),
            rngs=rngs,
        )
    raise ValueError(f"Unknown method {method!r}.")


class MLP(nnx.Module):
    """784 -> 3 x (width, ReLU, noise) -> 10: the network of the paper's Fig. 3a."""

    def __init__(self, method: str, width: int, config: Any, rngs: nnx.Rngs) -> None:
        self.plain = method == "none"
        sizes = [784, width, width, width]
        self.hidden = nnx.List([hidden_layer(method, a, b, config, rngs) for a, b in itertools.pairwise(sizes)])
        self.out = nnx.Linear(width, 10, rngs=rngs)

    def __call__(self, x: jax.Array, key: jax.Array | None = None) -> jax.Array:
        """Training mode with a ``key`` (one subkey per layer), evaluation mode without."""
        keys = [None] * 3 if key is None else list(jax.random.split(key, 3))
        for layer, k in zip(self.hidden, keys):
            x = jax.nn.relu(layer(x)) if self.plain else layer(x, deterministic=k is None, rngs=k)
        return self.out(x)


# ------------------------------------------------------------------------------ All-CNN-32 --


def _act(activation: str, x: jax.Array) -> jax.Array:
    return jax.nn.relu(x) if activation == "relu" else jax.nn.softplus(x)


def _conv(
    c_in: int, c_out: int, k: int, stride: int, rngs: nnx.Rngs, *, bias: bool = False, dtype: Any = None
) -> nnx.Conv:
    """'Same' padding ``k // 2`` on both sides, as torch's, so stride-2 grids match the torch net's."""
    return nnx.Conv(c_in, c_out, (k, k), strides=stride, padding=k // 2, use_bias=bias, dtype=dtype, rngs=rngs)


def shift_only_batch_norm(c: int, rngs: nnx.Rngs, dtype: Any = None) -> nnx.BatchNorm:
    """Official batch norm (cifar.py:79 with ``tf.contrib.layers.batch_norm``'s defaults): no scale, eps 1e-3."""
    return nnx.BatchNorm(c, use_scale=False, epsilon=1e-3, momentum=0.9, dtype=dtype, rngs=rngs)


class ConvBNAct(nnx.Module):
    """The official ``conv``: conv without bias, batch norm (shift only), activation (cifar.py:64-80)."""

    def __init__(self, c_in: int, c_out: int, k: int, activation: str, *, rngs: nnx.Rngs, dtype: Any = None) -> None:
        self.conv = _conv(c_in, c_out, k, 1, rngs, dtype=dtype)
        self.norm = shift_only_batch_norm(c_out, rngs, dtype)
        self.activation = activation

    def __call__(self, x: jax.Array) -> jax.Array:
        return _act(self.activation, self.norm(self.conv(x)))


def noisy_conv(
    method: str,
    c_in: int,
    c_out: int,
    *,
    activation: str,
    max_alpha: float,
    rngs: nnx.Rngs,
    dtype: Any = None,
    alpha_rank: int | None = None,
) -> nnx.Module:
    """The stride-2 conv with its noise; the alpha conv has a bias, as the official one (cifar.py:90-91)."""
    conv, bn = _conv(c_in, c_out, 3, 2, rngs, dtype=dtype), shift_only_batch_norm(c_out, rngs, dtype)
    if method == "information":
        if alpha_rank is not None:  # InfoDropout's cheap alpha branch instead of the official alpha conv
            branch: dict[str, Any] = {"alpha_rank": alpha_rank}
        else:
            branch = {"alpha_layer": _conv(c_in, c_out, 3, 2, rngs, bias=True, dtype=dtype)}
        return InfoDropout(conv, activation=activation, max_alpha=max_alpha, norm=bn, rngs=rngs, **branch)
    if method == "binary":
        return BinaryDropout(conv, activation=activation, rate=0.5, norm=bn, rngs=rngs)
    if method == "none":
        return _Plain(conv, bn, activation)
    raise ValueError(f"Unknown method {method!r}; expected 'information', 'binary' or 'none'.")


class _Plain(nnx.Module):
    def __init__(self, conv: nnx.Conv, norm: nnx.BatchNorm, activation: str) -> None:
        self.conv, self.norm, self.activation = conv, norm, activation

    def __call__(self, x: jax.Array) -> jax.Array:
        return _act(self.activation, self.norm(self.conv(x)))


def is_noisy(m: Any) -> bool:
    """Whether ``m`` draws noise (takes ``rngs=`` at the call)."""
    return isinstance(m, (InfoDropout, BinaryDropout, nnx.Dropout))


class AllCNN32(nnx.Module):
    """All-CNN-32 as the official ``cifar.py:122-152`` builds it; inputs NHWC, outputs logits.

    Same arguments as :class:`idrop.experiments.nets.torch.AllCNN32`; ``dtype`` is the compute
    dtype (e.g. ``jnp.bfloat16``), parameters stay float32.
    """

    def __init__(
        self,
        method: str,
        *,
        widths: tuple[int, int] = ALL_CNN_WIDTHS,
        activation: str = "relu",
        max_alpha: float = 0.7,
        input_dropout: float = 0.2,
        dtype: Any = None,
        alpha_rank: int | None = None,
        rngs: nnx.Rngs,
    ) -> None:
        a, b = widths
        self.input_dropout = nnx.Dropout(input_dropout, rngs=rngs)
        layers: list[nnx.Module] = []
        c = 3
        for w in (a, b):
            layers += [
                ConvBNAct(c, w, 3, activation, rngs=rngs, dtype=dtype),
                ConvBNAct(w, w, 3, activation, rngs=rngs, dtype=dtype),
            ]
            layers.append(
                noisy_conv(
                    method,
                    w,
                    w,
                    activation=activation,
                    max_alpha=max_alpha,
                    rngs=rngs,
                    dtype=dtype,
                    alpha_rank=alpha_rank,
                )
            )
            c = w
        layers += [
            ConvBNAct(b, b, 3, activation, rngs=rngs, dtype=dtype),
            ConvBNAct(b, b, 1, activation, rngs=rngs, dtype=dtype),
            ConvBNAct(b, 10, 1, activation, rngs=rngs, dtype=dtype),
        ]
        self.features = nnx.List(layers)
        self.logits = nnx.Linear(10, 10, dtype=dtype, rngs=rngs)  # official ``linear(network, 10)`` (cifar.py:152)

    def __call__(self, x: jax.Array, key: jax.Array | None = None) -> jax.Array:
        """Logits; ``key`` draws the noise (one subkey per noisy layer), else each layer's own ``rngs``."""
        noisy = [self.input_dropout, *(m for m in self.features if is_noisy(m))]
        keys = dict(zip(map(id, noisy), jax.random.split(key, len(noisy)))) if key is not None else {}
        x = self.input_dropout(x, rngs=keys.get(id(self.input_dropout)))
        for layer in self.features:
            x = layer(x, rngs=keys.get(id(layer))) if is_noisy(layer) else layer(x)
        return self.logits(x.mean(axis=(1, 2)))


# ------------------------------------------------------------------------------------- VAE --


class VAE(nnx.Module):
    """Kingma & Welling's MLP VAE: 784 -> hidden (tanh) -> latent -> hidden (tanh) -> 784 Bernoulli logits.

    ``latent="gaussian"``: ``z = mu + s * eps`` with prior N(0, 1). ``latent="information"``:
    ``z = softplus(W h) * exp(alpha(h) * eps)``, an :class:`InfoDropout` layer with the
    log-normal prior of learnable ``mu``, ``sigma`` (paper Sec. 5); its KL on ``log z`` equals
    ``KL(q(z|x) || p(z))``, so ``-loss`` is a true lower bound in both cases.
    """

    def __init__(self, latent: str, hidden: int, n_latent: int, max_alpha: float, *, rngs: nnx.Rngs) -> None:
        self.latent = latent
        self.encoder = nnx.Linear(784, hidden, rngs=rngs)
        if latent == "gaussian":
            self.head = nnx.Linear(hidden, 2 * n_latent, rngs=rngs)
        elif latent == "information":
            self.head = InfoDropout(
                nnx.Linear(hidden, n_latent, rngs=rngs),
                activation="softplus",
                prior="log-normal",
                max_alpha=max_alpha,
                rngs=rngs,
            )
        else:
            raise ValueError(f"Unknown latent {latent!r}; expected 'gaussian' or 'information'.")
        self.decoder_hidden = nnx.Linear(n_latent, hidden, rngs=rngs)
        self.decoder_out = nnx.Linear(hidden, 784, rngs=rngs)

    def __call__(self, x: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Bernoulli logits of a reconstruction from one latent sample, and the per-sample KL."""
        h = jnp.tanh(self.encoder(x))
        if self.latent == "gaussian":
            mu, log_s = jnp.split(self.head(h), 2, axis=1)
            s = jnp.exp(log_s)
            z = mu + s * jax.random.normal(key, mu.shape, mu.dtype)
            kl = gaussian_kl(mu, s).sum(1)
        else:
            z = self.head(h, deterministic=False, rngs=key)  # always sampled: a bound needs the noise
            kl = self.head.kl[...]
        return self.decoder_out(jnp.tanh(self.decoder_hidden(z))), kl
