"""Where the information goes on Cluttered MNIST (Fig. 2 of Achille & Soatto 2016) in TensorFlow / Keras.

A small All-CNN with Information Dropout after each strided convolution. After training,
the per-unit KL of the last noisy layer (the information it lets through) is mapped back
to the canvas: most of it should fall in the digit's box, far more than the box's area share.

    python examples/tensorflow/cluttered.py --epochs 10
"""

import argparse
import os

import keras
import numpy as np

from idrop.backends.tensorflow import InfoDropout, info_dropout
from idrop.data import cluttered_mnist, mnist_splits


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

    keras.utils.set_random_seed(args.seed)
    x_train, y_train, x_test, y_test, _ = mnist_splits(args.data_dir)
    train = cluttered_mnist(x_train[: args.limit], y_train[: args.limit], canvas=args.canvas, seed=args.seed)
    test = cluttered_mnist(x_test[:1000], y_test[:1000], canvas=args.canvas, seed=args.seed + 1)

    blocks = [
        InfoDropout(
            keras.layers.Conv2D(n, 3, strides=2, padding="same"),
            activation="relu",
            beta=args.beta,
            n_train=len(train.images),
            max_alpha=args.max_alpha,
            seed=args.seed + i,
        )
        for i, n in enumerate((32, 64, 96))
    ]
    model = keras.Sequential(
        [
            keras.Input((args.canvas, args.canvas, 1)),
            *blocks,
            keras.layers.Conv2D(10, 1),
            keras.layers.GlobalAveragePooling2D(),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(train.images[..., None], train.labels, batch_size=args.batch_size, epochs=args.epochs, verbose=2)
    accuracy = model.evaluate(test.images[..., None], test.labels, batch_size=100, verbose=0, return_dict=True)[
        "accuracy"
    ]

    last = blocks[-1]
    h = blocks[1](blocks[0](test.images[..., None]))  # the input of the last InfoDropout layer
    _, kl = info_dropout(keras.ops.relu(last.layer(h)), last.alpha_layer(h), max_alpha=args.max_alpha, seed=0)
    kl = keras.ops.convert_to_numpy(kl).sum(-1)
    step = -(-args.canvas // kl.shape[1])
    kl_map = kl.repeat(step, 1).repeat(step, 2)[:, : args.canvas, : args.canvas]  # back to canvas resolution
    mask = np.zeros_like(kl_map)
    for i, (y0, x0, y1, x1) in enumerate(test.boxes):
        mask[i, y0:y1, x0:x1] = 1
    print(f"test error {100 * (1 - accuracy):.2f}%")
    print(
        f"KL in digit box: {100 * (kl_map * mask).sum() / kl_map.sum():.1f}% of the total "
        f"(box area: {100 * mask.mean():.1f}% of the canvas)"
    )


if __name__ == "__main__":
    main()
