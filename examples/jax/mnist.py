"""MNIST with Information Dropout (Fig. 3a of Achille & Soatto 2016) in JAX / Flax NNX.

784 -> 3 hidden ReLU layers with Information Dropout -> 10, trained on the IB loss
(cross-entropy + beta * KL / n_train) with optax Adam in an ``nnx.jit`` step.
``--method binary`` swaps in ``nnx.Dropout(0.5)``.

    python examples/jax/mnist.py --epochs 20
    python examples/jax/mnist.py --epochs 20 --method binary
"""

import argparse
import os
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from idrop.backends.jax import ib_loss
from idrop.data import mnist_splits, stratified_subset
from idrop.experiments.nets.jax import MLP  # the network of `idrop reproduce mnist`


@nnx.jit(static_argnames=("beta", "n_train"))
def train_step(model, opt, x, y, key, beta, n_train):
    def loss_fn(model):
        task = optax.softmax_cross_entropy_with_integer_labels(model(x, key), y).mean()  # a key: noise on
        return ib_loss(task, model, beta, n_train)  # the KL each InfoDropout left on .kl

    loss, grads = nnx.value_and_grad(loss_fn)(model)
    opt.update(model, grads)
    return loss


@nnx.jit
def predict(model, x):
    return model(x).argmax(-1)  # no key: evaluation mode, noise off


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=os.environ.get("IDROP_DATA_DIR"))
    p.add_argument("--method", choices=("information", "binary"), default="information")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--limit", type=int, default=None, help="train on N images, equally many of each digit")
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--beta", type=float, default=1.0)
    p.add_argument("--max-alpha", type=float, default=0.7)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    x_train, y_train, x_test, y_test, _ = mnist_splits(args.data_dir)
    x_train, y_train = stratified_subset(x_train, y_train, args.limit)  # the offline file is sorted by label
    n_train = len(x_train)
    config = SimpleNamespace(max_alpha=args.max_alpha, dropout_rate=0.5)
    model = MLP(args.method, args.width, config, nnx.Rngs(params=args.seed, dropout=args.seed + 1))
    opt = nnx.Optimizer(model, optax.adam(1e-3), wrt=nnx.Param)
    rng = np.random.default_rng(args.seed)
    for epoch in range(args.epochs):
        for i, idx in enumerate(np.array_split(rng.permutation(n_train), max(1, n_train // args.batch_size))):
            key = jax.random.key(args.seed * 100_003 + epoch * 10_007 + i)  # this step's noise
            x, y = jnp.asarray(x_train[idx]), jnp.asarray(y_train[idx])
            loss = train_step(model, opt, x, y, key, args.beta, n_train)
        print(f"epoch {epoch + 1}: train loss {float(loss):.4f}")

    pred = np.concatenate([np.asarray(predict(model, jnp.asarray(xb))) for xb in np.array_split(x_test, 10)])
    print(f"{args.method} dropout: test error {100 * np.mean(pred != y_test):.2f}%")


if __name__ == "__main__":
    main()
