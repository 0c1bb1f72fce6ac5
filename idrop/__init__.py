"""idrop: Information Dropout (Achille & Soatto 2016, arXiv:1611.01353).

``import idrop`` loads only the NumPy spec. The framework adapters are leaf
modules imported on purpose::

    from idrop.backends.torch import InfoDropout
    from idrop.backends.tensorflow import InfoDropout
    from idrop.backends.jax import InfoDropout
"""

from . import core as core
from ._version import __version__ as __version__

__all__ = ["__version__", "core"]
