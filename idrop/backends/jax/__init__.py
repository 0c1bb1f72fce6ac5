"""JAX adapter: pure functions (``info_dropout(key, ...)``) and Flax NNX modules (``InfoDropout``).

The pure functions take an explicit ``key`` (as in Equinox) unless ``deterministic`` or
``noise=`` is given, and are safe under ``jit``/``grad``/``vmap``/``checkpoint``. The NNX
modules follow ``flax.nnx.Dropout`` (a ``deterministic`` attribute, a ``"dropout"`` RNG stream);
each training call records its per-sample KL, which :func:`kl_loss` / :func:`ib_loss` collect
inside the loss function (see ``_losses.py`` for the bookkeeping, ``_layers.py`` for the
transforms). Half-precision inputs get their KL, alpha and noise in float32.

Modules: ``_namespace`` (the ``xp`` shim, dtype and input rules, noise draws, RNG plumbing),
``_functional`` (pure functions), ``_kernel`` (the ``jax.custom_jvp`` training kernel),
``_maps`` (the wrapped and alpha maps), ``_layers`` (NNX modules), ``_losses`` (KL bookkeeping).

Example:
    >>> from flax import nnx
    >>> import jax.numpy as jnp
    >>> from idrop.backends.jax import InfoDropout
    >>> layer = InfoDropout(nnx.Linear(784, 256, rngs=nnx.Rngs(0)), rngs=nnx.Rngs(0, dropout=1))
    >>> z = layer(jnp.ones((32, 784)))
    >>> z.shape, layer.kl[...].shape
    ((32, 256), (32,))
"""

from __future__ import annotations

from idrop.backends import missing_framework

try:
    import jax  # noqa: F401
    from flax import nnx  # noqa: F401
except ImportError as err:  # pragma: no cover - exercised in a subprocess test
    raise missing_framework("jax", "JAX and Flax") from err

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
from ._losses import KLTerm as KLTerm
from ._losses import ib_loss as ib_loss
from ._losses import kl_loss as kl_loss
from ._schedules import beta_schedule as beta_schedule
from ._surgery import strip_info_dropout as strip_info_dropout
from ._surgery import to_info_dropout as to_info_dropout
from ._uncertainty import mc_predict as mc_predict
from ._uncertainty import sampling as sampling

__all__ = [
    "AlphaStats",
    "BinaryDropout",
    "GaussianDropout",
    "IdropWarning",
    "InfoDropout",
    "KLTerm",
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
