"""PyTorch adapter: ``info_dropout`` (like ``F.dropout``) and ``InfoDropout`` (like ``nn.Dropout``).

The modules are in ``_layers.py``, the functional ops (which draw noise with torch's RNG,
optionally a ``generator=``, unless ``noise=`` is given) in ``_functional.py``, the fused
training kernel in ``_kernel.py``, the ``xp`` shim the core runs on in ``_namespace.py``, the
two maps' call in ``_maps.py`` and the KL bookkeeping with the losses in ``_losses.py``.

Example:
    >>> import torch
    >>> from idrop.backends.torch import InfoDropout, ib_loss
    >>> layer = InfoDropout(torch.nn.Linear(784, 256), activation="relu")
    >>> z = layer(torch.rand(32, 784))
    >>> z.shape, layer.kl.shape
    (torch.Size([32, 256]), torch.Size([32]))
"""

from __future__ import annotations

from idrop.backends import missing_framework

try:
    import torch  # noqa: F401
except ImportError as err:  # pragma: no cover - exercised in a subprocess test
    raise missing_framework("torch", "PyTorch") from err

from idrop.core.diagnostics import AlphaStats as AlphaStats
from idrop.core.diagnostics import IdropWarning as IdropWarning
from idrop.core.uncertainty import MCPrediction as MCPrediction

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
