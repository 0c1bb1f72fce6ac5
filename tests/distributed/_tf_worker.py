"""The checks of tests/distributed/test_tf_mirrored.py, in a process whose CPU is split in 2.

Usage: python _tf_worker.py OUT DATA_DIR
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from idrop.distributed import tensorflow as dtf

dtf.split_cpu(2)  # before TensorFlow starts

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from idrop import cli  # noqa: E402
from idrop.backends.tensorflow import InfoDropout  # noqa: E402

sys.path.insert(0, str(Path(__file__).parents[1]))  # tests/: _mnist_data
from _mnist_data import mnist_args  # noqa: E402

B, N_TRAIN, BETA = 8, 50, 3.0


class Net(keras.Model):
    """5 -> InfoDropout(6) -> 3, with the noise as a second input so fit splits it with the batch."""

    def __init__(self) -> None:
        super().__init__()
        self.drop = InfoDropout(keras.layers.Dense(6), activation="relu", beta=BETA, n_train=N_TRAIN, seed=1)
        self.out = keras.layers.Dense(3)

    def call(self, inputs: tuple, training: bool | None = None) -> tf.Tensor:
        x, eps = inputs
        return self.out(self.drop(x, training=training, noise=eps))


def fit_once(strategy: tf.distribute.Strategy, x: np.ndarray, y: np.ndarray, eps: np.ndarray) -> tuple:
    with strategy.scope():
        keras.utils.set_random_seed(0)
        net = Net()
        net.compile(optimizer=keras.optimizers.SGD(0.1), loss=keras.losses.SparseCategoricalCrossentropy(True))
        net((x[:1], eps[:1]))
    net.drop.kl_metric.reset_state()
    hist = net.fit((x, eps), y, batch_size=B, epochs=1, shuffle=False, verbose=0).history
    return float(hist["loss"][0]), float(net.drop.kl_metric.result()), [np.asarray(v) for v in net.trainable_weights]


def main(out: Path, data_dir: Path) -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(B, 5)).astype(np.float32), rng.integers(0, 3, B)
    eps = rng.normal(size=(B, 6)).astype(np.float32)
    two = dtf.strategy(2, "cpu")
    l1, k1, p1 = fit_once(dtf.strategy(1), x, y, eps)
    l2, k2, p2 = fit_once(two, x, y, eps)
    checks = {
        "replicas": two.num_replicas_in_sync,
        "loss": [l1, l2],
        "kl": [k1, k2],
        "param_diff": max(float(np.abs(a - b).max()) for a, b in zip(p1, p2)),
    }

    # The same input on both replicas: the layer folds the replica id into its seed.
    with two.scope():
        layer = InfoDropout(keras.layers.Dense(4), activation="relu", seed=2)
        layer(np.ones((1, 3), np.float32))

    def halves() -> list[np.ndarray]:
        probe = tf.function(lambda: two.run(lambda: layer(tf.ones((2, 3)), training=True)))  # fresh trace
        return [np.asarray(v) for v in two.experimental_local_results(probe())]

    drawn = halves()
    checks["noise_differs"] = bool(not np.array_equal(drawn[0], drawn[1]))
    (out / "checks.json").write_text(json.dumps(checks))
    for n in ("1", "2"):
        status = cli.main(mnist_args("tensorflow", data_dir, out / f"d{n}", "--devices", n))
        if status:
            raise SystemExit(status)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
