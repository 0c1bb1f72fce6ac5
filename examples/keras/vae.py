"""A VAE with an Information Dropout latent (Sec. 5 of Achille & Soatto 2016) in Keras 3 on any Keras backend.

The encoder's last layer is ``z = softplus(W h) * exp(alpha(h) * eps)`` with a log-normal prior;
with beta = 1 the IB loss is the negative ELBO of a Bernoulli decoder. The model adds it with
``add_loss`` in training calls, so ``model.fit(x)`` trains it on every Keras backend:

    KERAS_BACKEND=jax python examples/keras/vae.py --epochs 20
"""

import argparse
import os

import keras
import numpy as np
from keras import ops

from idrop.data import binarize, mnist_splits, stratified_subset
from idrop.experiments.nets.keras import VAE, negative_elbo  # the network of `idrop reproduce vae --backend keras`


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
    model(x_train[:1])  # build
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=None)  # the loss is the model's own add_loss
    model.fit(x_train, batch_size=args.batch_size, epochs=args.epochs, verbose=2)

    def elbo(x: np.ndarray) -> np.ndarray:
        """One-sample ELBO per image, in nats (with the latent's noise on: it is a noisy estimate)."""
        logits, kl = model(x)  # the latent is always sampled
        return -ops.convert_to_numpy(negative_elbo(x, logits, kl))

    test_elbo = np.concatenate([elbo(xb) for xb in np.array_split(x_test, 10)]).mean()
    print(f"test ELBO {test_elbo:.2f} nats on keras[{keras.backend.backend()}]")


if __name__ == "__main__":
    main()
