"""MNIST with Information Dropout (Fig. 3a of Achille & Soatto 2016) in JAX / Flax NNX.

784 -> 3 hidden ReLU layers with Information Dropout -> 10, trained on the IB loss
(cross-entropy + beta * KL / n_train) with optax Adam in an ``nnx.jit`` step.
``--method binary`` swaps in ``nnx.Dropout(0.5)``.

    python examples/jax/mnist.py --epochs 20
    python examples/jax/mnist.py --epochs 20 --method binary
"""

import argparse
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from idrop.backends.jax import InfoDropout, ib_loss
from idrop.data import mnist_splits


class MLP(nnx.Module):
    def __init__(self, method: str, width: int, max_alpha: float, rngs: nnx.Rngs) -> None:
        hidden, n_in = [], 784
        for _ in range(3):
            linear = nnx.Linear(n_in, width, rngs=rngs)
            if method == "information":
                hidden.append(InfoDropout(linear, activation="relu", max_alpha=max_alpha, rngs=rngs))
            else:
                hidden.append(nnx.Sequential(linear, nnx.relu, nnx.Dropout(0.5, rngs=rngs)))
            n_in = width
        self.hidden = nnx.List(hidden)
        self.out = nnx.Linear(n_in, 10, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        for layer in self.hidden:
            x = layer(x)
        return self.out(x)


@nnx.jit(static_argnames=("beta", "n_train"))
def train_step(model, opt, x, y, beta, n_train):
    def loss_fn(model):
        task = optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()
        return ib_loss(task, model, beta, n_train)  # the KL each InfoDropout left on .kl

    loss, grads = nnx.value_and_grad(loss_fn)(model)
    opt.update(model, grads)
    return loss


@nnx.jit
def predict(model, x):
    return model(x).argmax(-1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=os.environ.get("IDROP_DATA_DIR"))
    p.add_argument("--method", choices=("information", "binary"), default="information")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--limit", type=int, default=None, help="train on the first N images")
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--beta", type=float, default=1.0)
    p.add_argument("--max-alpha", type=float, default=0.7)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    x_train, y_train, x_test, y_test, _ = mnist_splits(args.data_dir)
    x_train, y_train = x_train[: args.limit], y_train[: args.limit]
    n_train = len(x_train)
    model = MLP(args.method, args.width, args.max_alpha, nnx.Rngs(params=args.seed, dropout=args.seed + 1))
    opt = nnx.Optimizer(model, optax.adam(1e-3), wrt=nnx.Param)
    rng = np.random.default_rng(args.seed)
    for epoch in range(args.epochs):
        model.train()  # noise on (nnx.Dropout and InfoDropout follow the same switch)
        for idx in np.array_split(rng.permutation(n_train), max(1, n_train // args.batch_size)):
            loss = train_step(model, opt, jnp.asarray(x_train[idx]), jnp.asarray(y_train[idx]), args.beta, n_train)
        print(f"epoch {epoch + 1}: train loss {float(loss):.4f}")

    model.eval()
    pred = np.concatenate([np.asarray(predict(model, jnp.asarray(xb))) for xb in np.array_split(x_test, 10)])
    print(f"{args.method} dropout: test error {100 * np.mean(pred != y_test):.2f}%")


if __name__ == "__main__":
    main()
