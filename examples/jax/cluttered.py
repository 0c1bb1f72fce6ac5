"""Where the information goes on Cluttered MNIST (Fig. 2 of Achille & Soatto 2016) in JAX / Flax NNX.

Trains the experiment's All-CNN (``idrop.experiments.cluttered.jax.ClutteredCNN``: ReLU,
log-uniform prior, an alpha conv with a bias, Nesterov momentum as the official code) on a
small Cluttered MNIST, then asks whether the KL of the first Information Dropout layer falls
on the digit *more than the digit's ink does*: the ratio (KL share in the digit's box) /
(ink share in the box) is 1 when the KL just follows the ink.

    python examples/jax/cluttered.py --epochs 8
"""

import argparse
import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from idrop.backends.jax import kl_loss
from idrop.data import cluttered_mnist, mnist_splits
from idrop.experiments.cluttered import QUICK
from idrop.experiments.cluttered._measure import localisation
from idrop.experiments.cluttered.jax import build_model


@nnx.jit(static_argnames=("beta", "n_train"))
def train_step(model, opt, x, y, key, beta, n_train):
    def loss_fn(model):
        task = optax.softmax_cross_entropy_with_integer_labels(model(x, key), y).mean()
        return task + beta * kl_loss(model, n_train)

    loss, grads = nnx.value_and_grad(loss_fn)(model)
    opt.update(model, grads)
    return loss


@nnx.jit
def predict_and_maps(model, x):
    """Noiseless predictions and, per Information Dropout layer, the KL and activation energy maps."""
    maps = []
    return model(x, maps=maps).argmax(-1), maps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=os.environ.get("IDROP_DATA_DIR"))
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--limit", type=int, default=None, help="train on N images (default: the quick setting's)")
    p.add_argument("--canvas", type=int, default=QUICK.canvas)
    p.add_argument("--beta", type=float, default=0.5)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    cfg = {**dataclasses.asdict(QUICK), "canvas": args.canvas}
    x_train, y_train, x_test, y_test, _ = mnist_splits(args.data_dir)
    kw = {"canvas": args.canvas, "n_distractors": cfg["distractors"]}
    train = cluttered_mnist(x_train, y_train, args.limit or cfg["n_train"], seed=args.seed, **kw)
    test = cluttered_mnist(x_test[:1000], y_test[:1000], seed=args.seed + 1, **kw)
    x, y, n_train = train.images[..., None], train.labels, len(train.labels)

    model = build_model(cfg, args.seed)
    opt = nnx.Optimizer(model, optax.sgd(0.01, momentum=0.9, nesterov=True), wrt=nnx.Param)
    rng, key = np.random.default_rng(args.seed), jax.random.key(args.seed)
    for epoch in range(args.epochs):
        model.train()
        for idx in np.array_split(rng.permutation(n_train), max(1, n_train // cfg["batch_size"])):
            key, sub = jax.random.split(key)
            loss = train_step(model, opt, jnp.asarray(x[idx]), jnp.asarray(y[idx]), sub, args.beta, n_train)
        print(f"epoch {epoch + 1}: train loss {float(loss):.4f}")

    model.eval()  # batch norm uses its running averages, the noise is off
    preds, maps = predict_and_maps(model, jnp.asarray(test.images[..., None]))
    kl, energy = (np.asarray(a) for a in maps[0])  # the first Information Dropout layer
    out = localisation(kl, energy, test.images, test.boxes, args.canvas)
    print(f"test error {100 * float(np.mean(np.asarray(preds) != test.labels)):.2f}%")
    print(
        f"KL in digit box: {100 * out['kl_share']:.1f}% of the total; ink in box: {100 * out['ink_share']:.1f}%; "
        f"KL/ink = {out['kl_over_ink']:.2f}, KL/activation energy = {out['kl_over_energy']:.2f} (1 = follows the ink)"
    )


if __name__ == "__main__":
    main()
