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

from idrop.data import binarize, mnist_splits, stratified_subset
from idrop.experiments.nets.jax import VAE  # the network of `idrop reproduce vae`


def elbo(model: VAE, x: jax.Array, key: jax.Array) -> jax.Array:
    """One-sample ELBO per image, in nats (``key`` draws the latent's noise; the bound needs it)."""
    logits, kl = model(x, key)
    return -optax.sigmoid_binary_cross_entropy(logits, x).sum(-1) - kl


@nnx.jit
def train_step(model, opt, x, key):
    loss, grads = nnx.value_and_grad(lambda m: -elbo(m, x, key).mean())(model)
    opt.update(model, grads)
    return loss


@nnx.jit
def test_elbo(model, x, key):
    return elbo(model, x, key)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=os.environ.get("IDROP_DATA_DIR"))
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--limit", type=int, default=None, help="train on N images, equally many of each digit")
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--latent", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    x_train, y_train, x_test, _, _ = mnist_splits(args.data_dir)
    x_train, _ = stratified_subset(x_train, y_train, args.limit)  # the offline file is sorted by label
    x_train, x_test = binarize(x_train), binarize(x_test)
    model = VAE("information", args.hidden, args.latent, 1.0, rngs=nnx.Rngs(params=args.seed, dropout=args.seed + 1))
    opt = nnx.Optimizer(model, optax.adam(1e-3), wrt=nnx.Param)
    rng = np.random.default_rng(args.seed)
    # The ELBO is a noisy estimate: the latent stays in training mode at test time too.
    for epoch in range(args.epochs):
        for i, idx in enumerate(np.array_split(rng.permutation(len(x_train)), max(1, len(x_train) // args.batch_size))):
            key = jax.random.key(args.seed * 100_003 + epoch * 10_007 + i)  # this step's noise
            loss = train_step(model, opt, jnp.asarray(x_train[idx]), key)
        print(f"epoch {epoch + 1}: train -ELBO {float(loss):.2f}")

    elbo = np.concatenate(
        [
            np.asarray(test_elbo(model, jnp.asarray(xb), jax.random.key(i)))
            for i, xb in enumerate(np.array_split(x_test, 10))
        ]
    )
    print(f"test ELBO {elbo.mean():.2f} nats")


if __name__ == "__main__":
    main()
