"""A VAE with an Information Dropout latent (Sec. 5 of Achille & Soatto 2016) in JAX / Flax NNX.

The encoder's last layer is ``z = softplus(W h) * exp(alpha(h) * eps)`` with a log-normal
prior; with beta = 1 the IB loss is the negative ELBO of a Bernoulli decoder.

    python examples/jax/vae.py --epochs 20
"""

import argparse
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from idrop.backends.jax import InfoDropout
from idrop.data import binarize, mnist_splits


class VAE(nnx.Module):
    def __init__(self, hidden: int, latent: int, rngs: nnx.Rngs) -> None:
        self.encoder = nnx.Linear(784, hidden, rngs=rngs)
        self.latent = InfoDropout(
            nnx.Linear(hidden, latent, rngs=rngs), activation="softplus", prior="log-normal", max_alpha=1.0, rngs=rngs
        )
        self.decoder = nnx.Sequential(
            nnx.Linear(latent, hidden, rngs=rngs), nnx.tanh, nnx.Linear(hidden, 784, rngs=rngs)
        )

    def elbo(self, x: jax.Array) -> jax.Array:
        """One-sample ELBO per image, in nats (needs the latent's noise and its KL)."""
        logits = self.decoder(self.latent(jnp.tanh(self.encoder(x))))
        log_lik = -optax.sigmoid_binary_cross_entropy(logits, x).sum(-1)
        return log_lik - self.latent.kl.get_value()


@nnx.jit
def train_step(model, opt, x):
    loss, grads = nnx.value_and_grad(lambda m: -m.elbo(x).mean())(model)
    opt.update(model, grads)
    return loss


@nnx.jit
def test_elbo(model, x):
    return model.elbo(x)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=os.environ.get("IDROP_DATA_DIR"))
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--limit", type=int, default=None, help="train on the first N images")
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--latent", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    x_train, _, x_test, _, _ = mnist_splits(args.data_dir)
    x_train, x_test = binarize(x_train[: args.limit]), binarize(x_test)
    model = VAE(args.hidden, args.latent, nnx.Rngs(params=args.seed, dropout=args.seed + 1))
    opt = nnx.Optimizer(model, optax.adam(1e-3), wrt=nnx.Param)
    rng = np.random.default_rng(args.seed)
    # The ELBO is a noisy estimate: the latent stays in training mode at test time too.
    for epoch in range(args.epochs):
        for idx in np.array_split(rng.permutation(len(x_train)), max(1, len(x_train) // args.batch_size)):
            loss = train_step(model, opt, jnp.asarray(x_train[idx]))
        print(f"epoch {epoch + 1}: train -ELBO {float(loss):.2f}")

    elbo = np.concatenate([np.asarray(test_elbo(model, jnp.asarray(xb))) for xb in np.array_split(x_test, 10)])
    print(f"test ELBO {elbo.mean():.2f} nats")


if __name__ == "__main__":
    main()
