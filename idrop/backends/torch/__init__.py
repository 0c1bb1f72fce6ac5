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
