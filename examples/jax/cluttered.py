"""Where the information goes on Cluttered MNIST (Fig. 2 of Achille & Soatto 2016) in JAX / Flax NNX.

A small All-CNN with Information Dropout after each strided convolution. After training,
the per-unit KL of the last noisy layer (the information it lets through) is mapped back
to the canvas: most of it should fall in the digit's box, far more than the box's area share.

    python examples/jax/cluttered.py --epochs 10
"""

import argparse
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from idrop.backends.jax import InfoDropout, ib_loss, info_dropout
from idrop.data import cluttered_mnist, mnist_splits


class AllCNN(nnx.Module):
    def __init__(self, max_alpha: float, rngs: nnx.Rngs) -> None:
        def block(n_in: int, n_out: int) -> InfoDropout:
            conv = nnx.Conv(n_in, n_out, (3, 3), strides=2, padding=((1, 1), (1, 1)), rngs=rngs)
            return InfoDropout(conv, activation="relu", max_alpha=max_alpha, rngs=rngs)

        self.blocks = nnx.List([block(1, 32), block(32, 64), block(64, 96)])
        self.head = nnx.Conv(96, 10, (1, 1), rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:  # x: NHWC
        for block in self.blocks:
            x = block(x)
        return self.head(x).mean(axis=(1, 2))


@nnx.jit(static_argnames=("beta", "n_train"))
def train_step(model, opt, x, y, beta, n_train):
    def loss_fn(model):
        task = optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()
        return ib_loss(task, model, beta, n_train)

    loss, grads = nnx.value_and_grad(loss_fn)(model)
    opt.update(model, grads)
    return loss


@nnx.jit(static_argnames=("max_alpha",))
def error_and_kl_map(model, x, y, max_alpha):
    """Test error, and the KL per position of the last InfoDropout layer (summed over channels)."""
    error = jnp.mean(model(x).argmax(-1) != y)
    h = model.blocks[1](model.blocks[0](x))  # the input of the last InfoDropout layer
    last = model.blocks[2]
    _, kl = info_dropout(None, nnx.relu(last.layer(h)), last.alpha_layer(h), max_alpha=max_alpha, deterministic=True)
    return error, kl.sum(-1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=os.environ.get("IDROP_DATA_DIR"))
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--limit", type=int, default=None, help="train on the first N images")
    p.add_argument("--canvas", type=int, default=96)
    p.add_argument("--beta", type=float, default=1.0)
    p.add_argument("--max-alpha", type=float, default=0.7)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    x_train, y_train, x_test, y_test, _ = mnist_splits(args.data_dir)
    train = cluttered_mnist(x_train[: args.limit], y_train[: args.limit], canvas=args.canvas, seed=args.seed)
    test = cluttered_mnist(x_test[:1000], y_test[:1000], canvas=args.canvas, seed=args.seed + 1)
    x, y, n_train = train.images[..., None], train.labels, len(train.labels)

    model = AllCNN(args.max_alpha, nnx.Rngs(params=args.seed, dropout=args.seed + 1))
    opt = nnx.Optimizer(model, optax.adam(1e-3), wrt=nnx.Param)
    rng = np.random.default_rng(args.seed)
    for epoch in range(args.epochs):
        model.train()
        for idx in np.array_split(rng.permutation(n_train), max(1, n_train // args.batch_size)):
            loss = train_step(model, opt, jnp.asarray(x[idx]), jnp.asarray(y[idx]), args.beta, n_train)
        print(f"epoch {epoch + 1}: train loss {float(loss):.4f}")

    model.eval()
    error, kl = error_and_kl_map(model, jnp.asarray(test.images[..., None]), jnp.asarray(test.labels), args.max_alpha)
    kl = np.asarray(kl)
    scale = -(-args.canvas // kl.shape[1])  # upsample the map to the canvas, then crop
    kl_map = np.repeat(np.repeat(kl, scale, axis=1), scale, axis=2)[:, : args.canvas, : args.canvas]
    mask = np.zeros_like(kl_map)
    for i, (y0, x0, y1, x1) in enumerate(test.boxes):
        mask[i, y0:y1, x0:x1] = 1
    print(f"test error {100 * float(error):.2f}%")
    print(
        f"KL in digit box: {100 * (kl_map * mask).sum() / kl_map.sum():.1f}% of the total "
        f"(box area: {100 * mask.mean():.1f}% of the canvas)"
    )


if __name__ == "__main__":
    main()
