"""TensorFlow / Keras 3 adapter: ``info_dropout`` (functional) and ``InfoDropout`` (a ``keras.Layer``).

It needs Keras 3 on its TensorFlow backend (``KERAS_BACKEND=tensorflow``, Keras's default). Its
layers and functional ops are :mod:`idrop.backends.keras`'s (the same classes), which on this
backend run this adapter's TensorFlow parts: ``_namespace`` (the ``xp`` shim the core runs on,
dtype helpers, seeds and Philox draws), ``_kernel`` (the fused ``tf.custom_gradient`` training
kernel) and ``_losses`` (KL bookkeeping of traced graphs, ``kl_loss``, ``ib_loss``);
``_functional``, ``_maps`` and ``_layers`` re-export the Keras adapter's modules.

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
        "For Keras on JAX or PyTorch use idrop.backends.keras (the same layers on every Keras backend); "
        "for Flax NNX use idrop.backends.jax, for plain PyTorch idrop.backends.torch."
    )

from idrop.backends.keras._diagnostics import DiagnosticsCallback as DiagnosticsCallback
from idrop.backends.keras._diagnostics import alpha_map as alpha_map
from idrop.backends.keras._diagnostics import alpha_stats as alpha_stats
from idrop.backends.keras._diagnostics import diagnostics as diagnostics
from idrop.backends.keras._diagnostics import kl_map as kl_map
from idrop.backends.keras._diagnostics import kl_maps as kl_maps
from idrop.backends.keras._diagnostics import plot_kl_maps as plot_kl_maps
from idrop.backends.keras._export import export as export
from idrop.backends.keras._export import noise_shapes as noise_shapes
from idrop.backends.keras._schedules import BetaScheduler as BetaScheduler
from idrop.backends.keras._schedules import beta_schedule as beta_schedule
from idrop.backends.keras._surgery import strip_info_dropout as strip_info_dropout
from idrop.backends.keras._surgery import to_info_dropout as to_info_dropout
from idrop.backends.keras._uncertainty import mc_predict as mc_predict
from idrop.backends.keras._uncertainty import sampling as sampling
from idrop.core.diagnostics import AlphaStats as AlphaStats
from idrop.core.diagnostics import IdropWarning as IdropWarning
from idrop.core.uncertainty import MCPrediction as MCPrediction

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

__all__ = [
    "AlphaStats",
    "BetaScheduler",
    "BinaryDropout",
    "DiagnosticsCallback",
    "GaussianDropout",
    "IdropWarning",
    "InfoDropout",
    "LogNormalDropout",
    "MCPrediction",
    "alpha_from_logits",
    "alpha_map",
    "alpha_stats",
    "beta_schedule",
    "binary_dropout",
    "diagnostics",
    "export",
    "gaussian_dropout",
    "gaussian_kl",
    "ib_loss",
    "info_dropout",
    "kl_loss",
    "kl_map",
    "kl_maps",
    "lognormal_dropout",
    "mc_predict",
    "plot_kl_maps",
    "sampling",
    "noise_shapes",
    "strip_info_dropout",
    "to_info_dropout",
]
