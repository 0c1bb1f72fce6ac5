"""Keras 3 adapter on any Keras backend: ``info_dropout`` (functional) and ``InfoDropout`` (a ``keras.Layer``).

It runs on whichever backend Keras runs (``KERAS_BACKEND=tensorflow``, ``jax`` or ``torch``),
written on ``keras.ops``/``keras.random`` over the core's formulas; on the TensorFlow backend the
layers ARE :mod:`idrop.backends.tensorflow`'s (same classes, TensorFlow's fused kernel), so a
``.keras`` file moves between backends unchanged. The modules: ``_namespace`` (the ``xp`` shim,
dtype helpers, noise draws), ``_functional`` (the functional ops), ``_kernel`` (the fused training
kernel of each Keras backend), ``_maps`` (the wrapped map and the alpha map), ``_layers`` (the
layers) and ``_losses`` (``kl_loss``, ``ib_loss``).

Example:
    >>> import numpy as np
    >>> import keras
    >>> from idrop.backends.keras import InfoDropout
    >>> layer = InfoDropout(keras.layers.Dense(256), activation="relu", seed=0)
    >>> z = layer(np.random.rand(32, 784).astype("float32"), training=True)
    >>> tuple(z.shape), tuple(layer.kl.shape)
    ((32, 256), (32,))
"""

from __future__ import annotations

from idrop.backends import missing_framework

# Nothing here touches os.environ: which Keras backend runs is the user's choice, made before
# Keras is imported.
try:
    import keras
except ImportError as err:  # pragma: no cover - exercised in a subprocess test
    raise missing_framework("keras", "Keras 3") from err

if keras.backend.backend() not in ("tensorflow", "jax", "torch"):
    raise ImportError(
        "idrop.backends.keras runs on the tensorflow, jax and torch Keras backends, but Keras runs on "
        f"{keras.backend.backend()!r}. Set KERAS_BACKEND before Python imports keras."
    )
if keras.backend.backend() == "tensorflow":
    # First, so that the TensorFlow adapter (which exports this package's classes) finishes
    # importing before this package's modules read its kernels and helpers.
    import idrop.backends.tensorflow  # noqa: F401

from idrop.core.diagnostics import AlphaStats as AlphaStats
from idrop.core.diagnostics import IdropWarning as IdropWarning
from idrop.core.uncertainty import MCPrediction as MCPrediction

from ._diagnostics import DiagnosticsCallback as DiagnosticsCallback
from ._diagnostics import alpha_map as alpha_map
from ._diagnostics import alpha_stats as alpha_stats
from ._diagnostics import diagnostics as diagnostics
from ._diagnostics import kl_map as kl_map
from ._diagnostics import kl_maps as kl_maps
from ._diagnostics import plot_kl_maps as plot_kl_maps
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
from ._schedules import BetaScheduler as BetaScheduler
from ._schedules import beta_schedule as beta_schedule
from ._surgery import strip_info_dropout as strip_info_dropout
from ._surgery import to_info_dropout as to_info_dropout
from ._uncertainty import mc_predict as mc_predict
from ._uncertainty import sampling as sampling

__all__ = [
    "AlphaStats",
    "BetaScheduler",
    "BinaryDropout",
    "DiagnosticsCallback",
    "IdropWarning",
    "MCPrediction",
    "GaussianDropout",
    "InfoDropout",
    "LogNormalDropout",
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
    "noise_shapes",
    "plot_kl_maps",
    "sampling",
    "strip_info_dropout",
    "to_info_dropout",
]
