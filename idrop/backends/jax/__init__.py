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
from ._surgery import strip_info_dropout as strip_info_dropout
from ._surgery import to_info_dropout as to_info_dropout

__all__ = [
    "BinaryDropout",
    "GaussianDropout",
    "InfoDropout",
    "KLTerm",
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
