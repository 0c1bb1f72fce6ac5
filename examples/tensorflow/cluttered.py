"""Where the information goes on Cluttered MNIST (Fig. 2 of Achille & Soatto 2016) in TensorFlow / Keras.

Trains the experiment's All-CNN (``idrop.experiments.cluttered.tensorflow.ClutteredCNN``: ReLU,
log-uniform prior, an alpha conv with a bias, Nesterov momentum as the official code) on a
small Cluttered MNIST, then asks whether the KL of the first Information Dropout layer falls
on the digit *more than the digit's ink does*: the ratio (KL share in the digit's box) /
(ink share in the box) is 1 when the KL just follows the ink.

    python examples/tensorflow/cluttered.py --epochs 8
"""

import argparse
import dataclasses
import os

import keras
import numpy as np
import tensorflow as tf

from idrop.backends.tensorflow import kl_loss
from idrop.data import cluttered_mnist, mnist_splits
from idrop.experiments.cluttered import QUICK
from idrop.experiments.cluttered._measure import localisation
from idrop.experiments.cluttered.tensorflow import build_model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=os.environ.get("IDROP_DATA_DIR"))
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--limit", type=int, default=None, help="train on N images (default: the quick setting's)")
    p.add_argument("--canvas", type=int, default=QUICK.canvas)
    p.add_argument("--beta", type=float, default=0.5)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    cfg = {**dataclasses.asdict(QUICK), "canvas": args.canvas, "device": None}
    x_train, y_train, x_test, y_test, _ = mnist_splits(args.data_dir)
    kw = {"canvas": args.canvas, "n_distractors": cfg["distractors"]}
    train = cluttered_mnist(x_train, y_train, args.limit or cfg["n_train"], seed=args.seed, **kw)
    test = cluttered_mnist(x_test[:1000], y_test[:1000], seed=args.seed + 1, **kw)
    x, y, n_train = train.images[..., None], train.labels, len(train.labels)

    model = build_model(cfg, args.seed)
    opt = keras.optimizers.SGD(0.01, momentum=0.9, nesterov=True)

    @tf.function
    def train_step(xb, yb):
        with tf.GradientTape() as tape:
            logits = model(xb, training=True)
            task = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(yb, logits))
            loss = task + args.beta * kl_loss(model, n_train)
        opt.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
        return loss

    rng = np.random.default_rng(args.seed)
    for epoch in range(args.epochs):
        for idx in np.array_split(rng.permutation(n_train), max(1, n_train // cfg["batch_size"])):
            loss = train_step(tf.constant(x[idx]), tf.constant(y[idx]))
        print(f"epoch {epoch + 1}: train loss {float(loss):.4f}")

    # Noiseless predictions (batch norm with its running averages) and the first layer's maps.
    logits, kls, energies = model.logits_and_maps(tf.constant(test.images[..., None]))
    error = float(np.mean(np.argmax(logits.numpy(), 1) != test.labels))
    out = localisation(kls[0].numpy(), energies[0].numpy(), test.images, test.boxes, args.canvas)
    print(f"test error {100 * error:.2f}%")
    print(
        f"KL in digit box: {100 * out['kl_share']:.1f}% of the total; ink in box: {100 * out['ink_share']:.1f}%; "
        f"KL/ink = {out['kl_over_ink']:.2f}, KL/activation energy = {out['kl_over_energy']:.2f} (1 = follows the ink)"
    )


if __name__ == "__main__":
    main()
