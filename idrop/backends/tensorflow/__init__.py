"""TensorFlow / Keras 3 adapter: ``info_dropout`` (functional) and ``InfoDropout`` (a ``keras.Layer``).

It needs Keras 3 on its TensorFlow backend (``KERAS_BACKEND=tensorflow``, Keras's default).
The modules: ``_namespace`` (the ``xp`` shim the core runs on, dtype helpers, seeds and
noise draws), ``_functional`` (the functional ops), ``_kernel`` (the fused custom-gradient
training kernel), ``_maps`` (calling the wrapped map and the alpha map), ``_layers`` (the
layers) and ``_losses`` (``kl_loss``, ``ib_loss``).

Example:
    >>> import numpy as np
    >>> import keras
    >>> from idrop.backends.tensorflow import InfoDropout
    >>> layer = InfoDropout(keras.layers.Dense(256), activation="relu", seed=0)
    >>> z = layer(np.random.rand(32, 784).astype("float32"), training=True)
    >>> tuple(z.shape), tuple(layer.kl.shape)
    ((32, 256), (32,))
"""

from __future__ import annotations

from idrop.backends import missing_framework

# Nothing here touches os.environ: which Keras backend runs, and how much TensorFlow logs,
# are the user's choices, made before Keras is imported.
try:
    import keras
    import tensorflow as tf  # noqa: F401 - the framework must be importable; the helpers use it
except ImportError as err:  # pragma: no cover - exercised in a subprocess test
    raise missing_framework("tensorflow", "TensorFlow") from err

if keras.backend.backend() != "tensorflow":  # tested in a subprocess (tests/backends/test_tensorflow_import.py)
    raise ImportError(
        "idrop.backends.tensorflow requires Keras 3 on its TensorFlow backend, but Keras runs on "
        f"{keras.backend.backend()!r} (from the KERAS_BACKEND environment variable or ~/.keras/keras.json). "
        "Set KERAS_BACKEND=tensorflow before Python imports keras, e.g. `KERAS_BACKEND=tensorflow python train.py`. "
        "For JAX use idrop.backends.jax, for PyTorch idrop.backends.torch."
    )

from ._export import export as export
from ._export import noise_shapes as noise_shapes
from ._functional import alpha_from_logits as alpha_from_logits
from ._functional import binary_dropout as binary_dropout
from ._functional import gaussian_dropout as gaussian_dropout
from ._functional import gaussian_kl as gaussian_kl
from ._functional import info_dropout as info_dropout
from ._functional import lognormal_dropout as lognormal_dropout
from ._layers import BinaryDropout as BinaryDropout
from ._layers import GaussianDropout as GaussianDropout
from ._layers import InfoDropout as InfoDropout
from ._layers import LogNormalDropout as LogNormalDropout
from ._losses import ib_loss as ib_loss
from ._losses import kl_loss as kl_loss
from ._surgery import strip_info_dropout as strip_info_dropout
from ._surgery import to_info_dropout as to_info_dropout

__all__ = [
    "BinaryDropout",
    "GaussianDropout",
    "InfoDropout",
    "LogNormalDropout",
    "alpha_from_logits",
    "binary_dropout",
    "export",
    "gaussian_dropout",
    "gaussian_kl",
    "ib_loss",
    "info_dropout",
    "kl_loss",
    "lognormal_dropout",
    "noise_shapes",
    "strip_info_dropout",
    "to_info_dropout",
]
