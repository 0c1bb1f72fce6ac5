"""MNIST with Information Dropout (Fig. 3a of Achille & Soatto 2016) in TensorFlow / Keras.

784 -> 3 hidden ReLU layers with Information Dropout -> 10. Each InfoDropout layer adds
its share of beta * KL / n_train to the model's losses, so plain ``model.fit`` trains the
IB loss with Adam. ``--method binary`` swaps in binary dropout.

This is the Keras 3 example, ``examples/keras/mnist.py``, run on Keras's TensorFlow backend: there
the layers of ``idrop.backends.keras`` ARE ``idrop.backends.tensorflow``'s (the same classes, the
TensorFlow kernel), so one script serves both; read that one.

    python examples/tensorflow/mnist.py --epochs 20
    python examples/tensorflow/mnist.py --epochs 20 --method binary
"""

import os
import runpy
from pathlib import Path

if __name__ == "__main__":
    os.environ["KERAS_BACKEND"] = "tensorflow"  # before Keras is imported: Keras fixes its backend then
    runpy.run_path(str(Path(__file__).resolve().parents[1] / "keras" / "mnist.py"), run_name="__main__")
