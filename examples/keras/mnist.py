"""MNIST with Information Dropout (Fig. 3a of Achille & Soatto 2016) in Keras 3 on any Keras backend.

784 -> 3 hidden ReLU layers with Information Dropout -> 10, from ``idrop.backends.keras``. Each
InfoDropout layer adds its share of beta * KL / n_train to the model's losses, so plain
``model.fit`` trains the IB loss with Adam. The same script runs on every Keras backend:

    KERAS_BACKEND=jax python examples/keras/mnist.py --epochs 20
    KERAS_BACKEND=torch python examples/keras/mnist.py --epochs 20 --method binary

``examples/tensorflow/mnist.py`` runs this script on the TensorFlow backend.
"""

import argparse
import os
from types import SimpleNamespace

import keras

from idrop.data import mnist_splits, stratified_subset
from idrop.experiments.nets.keras import build_mlp  # the network of `idrop reproduce mnist` (keras, tensorflow)


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

    keras.utils.set_random_seed(args.seed)
    x_train, y_train, x_test, y_test, _ = mnist_splits(args.data_dir)
    x_train, y_train = stratified_subset(x_train, y_train, args.limit)  # the offline file is sorted by label

    config = SimpleNamespace(beta=args.beta, n_train=len(x_train), max_alpha=args.max_alpha, dropout_rate=0.5)
    model = build_mlp(args.method, args.width, config, args.seed)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    # history: loss, accuracy and (on the tensorflow and torch backends) each layer's "<name>_kl"
    model.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.epochs, verbose=2)
    accuracy = model.evaluate(x_test, y_test, batch_size=1000, verbose=0, return_dict=True)["accuracy"]
    print(f"{args.method} dropout on keras[{keras.backend.backend()}]: test error {100 * (1 - accuracy):.2f}%")


if __name__ == "__main__":
    main()
