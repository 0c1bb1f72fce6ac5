"""A VAE with an Information Dropout latent (Sec. 5 of Achille & Soatto 2016) in TensorFlow / Keras.

The encoder's last layer is ``z = softplus(W h) * exp(alpha(h) * eps)`` with a log-normal
prior; with beta = 1 the IB loss is the negative ELBO of a Bernoulli decoder.

    python examples/tensorflow/vae.py --epochs 20
"""

import argparse
import os

import keras
import numpy as np
import tensorflow as tf

from idrop.data import binarize, mnist_splits, stratified_subset
from idrop.experiments.nets.tensorflow import VAE  # the network of `idrop reproduce vae`


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

    keras.utils.set_random_seed(args.seed)
    x_train, y_train, x_test, _, _ = mnist_splits(args.data_dir)
    x_train, _ = stratified_subset(x_train, y_train, args.limit)  # the offline file is sorted by label
    x_train, x_test = binarize(x_train), binarize(x_test)

    model = VAE("information", args.hidden, args.latent, max_alpha=1.0, seed=args.seed)
    model(tf.constant(x_train[:1]))  # build
    opt = keras.optimizers.Adam(1e-3)

    def elbo(x: tf.Tensor) -> tf.Tensor:
        """One-sample ELBO per image, in nats (with the latent's noise on: it is a noisy estimate)."""
        logits, kl = model(x)  # the latent is always sampled
        log_lik = -tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(labels=x, logits=logits), axis=1)
        return log_lik - kl

    @tf.function
    def train_step(x: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = -tf.reduce_mean(elbo(x))
        opt.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        return loss

    rng = np.random.default_rng(args.seed)
    for epoch in range(args.epochs):
        for idx in np.array_split(rng.permutation(len(x_train)), max(1, len(x_train) // args.batch_size)):
            loss = train_step(tf.constant(x_train[idx]))
        print(f"epoch {epoch + 1}: train -ELBO {float(loss):.2f}")

    test_elbo = np.concatenate([elbo(tf.constant(xb)).numpy() for xb in np.array_split(x_test, 10)]).mean()
    print(f"test ELBO {test_elbo:.2f} nats")


if __name__ == "__main__":
    main()
