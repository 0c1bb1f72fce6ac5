"""The reference layout (torch's) to and from a channels-last framework's, written once.

Keras and Flax agree: activations NHWC, linear kernels ``[in, out]``, conv kernels
``[kh, kw, in, out]``. The harness says whether it is channels-last; these do the rest.
"""

from __future__ import annotations

import numpy as np


def activation_to(channels_last: bool, a: np.ndarray) -> np.ndarray:
    """NCHW -> NHWC for a channels-last framework (2-D activations need nothing)."""
    a = np.asarray(a)
    return np.moveaxis(a, 1, -1) if channels_last and a.ndim == 4 else a


def activation_from(channels_last: bool, a: np.ndarray) -> np.ndarray:
    """NHWC -> NCHW, the inverse of :func:`activation_to`."""
    a = np.asarray(a)
    return np.moveaxis(a, -1, 1) if channels_last and a.ndim == 4 else a


def kernel_to(channels_last: bool, w: np.ndarray) -> np.ndarray:
    """``[out, in]`` -> ``[in, out]``; ``[out, in, kh, kw]`` -> ``[kh, kw, in, out]``."""
    w = np.asarray(w)
    if not channels_last:
        return w
    return w.T if w.ndim == 2 else np.transpose(w, (2, 3, 1, 0))


def kernel_from(channels_last: bool, k: np.ndarray) -> np.ndarray:
    """The inverse of :func:`kernel_to`."""
    k = np.asarray(k)
    if not channels_last:
        return k
    return k.T if k.ndim == 2 else np.transpose(k, (3, 2, 0, 1))
