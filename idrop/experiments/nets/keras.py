"""Keras 3 networks on any Keras backend (``KERAS_BACKEND``): the MLP (Fig. 3a) and the VAE (Sec. 5).

Written on ``keras.ops`` with :mod:`idrop.backends.keras`, so they train on the TensorFlow, JAX and
torch Keras backends. On the TensorFlow backend :mod:`idrop.backends.keras`'s layers ARE
:mod:`idrop.backends.tensorflow`'s, so :mod:`idrop.experiments.nets.tensorflow` serves these same
builders (one definition of each network for both adapters).
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from idrop.backends.keras import BinaryDropout, GaussianDropout, InfoDropout, LogNormalDropout, gaussian_kl


def hidden_layer(method: str, width: int, config: Any, seed: int) -> keras.Layer:
    """One hidden layer: Dense, ReLU and the method's noise (``config``: dropout_rate, lognormal_alpha, ...)."""
    dense = keras.layers.Dense(width)
    if method == "none":
        return keras.layers.Dense(width, activation="relu")
    if method == "binary":
        return BinaryDropout(dense, activation="relu", rate=config.dropout_rate, seed=seed)
    if method == "gaussian":
        return GaussianDropout(dense, activation="relu", rate=config.dropout_rate, seed=seed)
    if method == "lognormal":
        return LogNormalDropout(dense, activation="relu", alpha=config.lognormal_alpha, seed=seed)
    if method == "information":  # beta and n_train: the layer adds its own KL term (eq. 5) with add_loss
        return InfoDropout(
            dense,
            activation="relu",
            prior="log-uniform",
            max_alpha=config.max_alpha,
            alpha_rank=getattr(config, "alpha_rank", None),
            seed=seed,
            beta=config.beta,
            n_train=config.n_train,
        )
    raise ValueError(f"Unknown method {method!r}.")


def build_mlp(method: str, width: int, config: Any, seed: int) -> keras.Model:
    """784 -> 3 x (width, ReLU, noise) -> 10: the network of the paper's Fig. 3a."""
    keras.utils.set_random_seed(seed)
    layers = [hidden_layer(method, width, config, seed + i) for i in range(3)]
    return keras.Sequential([keras.Input((784,)), *layers, keras.layers.Dense(10)])


class VAE(keras.Model):
    """Kingma & Welling's MLP VAE: 784 -> hidden (tanh) -> latent -> hidden (tanh) -> 784 Bernoulli logits.

    ``latent="gaussian"``: ``z = mu + s * eps`` with prior N(0, 1). ``latent="information"``:
    ``z = softplus(W h) * exp(alpha(h) * eps)``, an :class:`InfoDropout` layer with the
    log-normal prior of learnable ``mu``, ``sigma`` (paper Sec. 5), whose KL on ``log z`` equals
    ``KL(q(z|x) || p(z))``, so ``-loss`` is a true lower bound in both cases.

    ``call`` returns the Bernoulli logits of one latent sample and the per-sample KL; in training
    calls it also adds the mean negative ELBO with ``add_loss``, so ``train_on_batch(x)`` (no
    compiled loss) trains it on any Keras backend, while a custom loop calls ``model(x)`` and
    takes :func:`negative_elbo` itself.
    """

    def __init__(self, latent: str, hidden: int, n_latent: int, max_alpha: float, seed: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.latent = latent
        self.encoder = keras.layers.Dense(hidden, activation="tanh")
        if latent == "gaussian":
            self.head = keras.layers.Dense(2 * n_latent)
            self.noise = keras.random.SeedGenerator(seed)
        elif latent == "information":
            self.head = InfoDropout(
                keras.layers.Dense(n_latent), activation="softplus", prior="log-normal", max_alpha=max_alpha, seed=seed
            )
        else:
            raise ValueError(f"Unknown latent {latent!r}; expected 'gaussian' or 'information'.")
        self.decoder_hidden = keras.layers.Dense(hidden, activation="tanh")
        self.decoder_out = keras.layers.Dense(784)

    def call(self, x: Any, training: bool | None = None) -> tuple[Any, Any]:
        h = self.encoder(x)
        if self.latent == "gaussian":
            mu, log_s = ops.split(self.head(h), 2, axis=1)
            s = ops.exp(log_s)
            z = mu + s * keras.random.normal(ops.shape(mu), seed=self.noise)
            kl = ops.sum(gaussian_kl(mu, s), axis=1)
        else:
            z = self.head(h, training=True)  # always sampled: training and the test bound need the latent
            kl = self.head.kl
        logits = self.decoder_out(self.decoder_hidden(z))
        if training:
            self.add_loss(ops.mean(negative_elbo(x, logits, kl)))
        return logits, kl


def negative_elbo(x: Any, logits: Any, kl: Any) -> Any:
    """Per-sample ``-ELBO`` (nats): Bernoulli negative log-likelihood of ``x`` plus the KL."""
    nll = ops.sum(ops.binary_crossentropy(x, logits, from_logits=True), axis=1)
    return nll + kl
