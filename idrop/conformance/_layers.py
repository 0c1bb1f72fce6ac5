"""Random small Linear and Conv2d weights, and the reference layer built from them."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from idrop.core import reference

from ._cases import arrays
from ._harness import LayerWeights


@st.composite
def layer_problems(draw: st.DrawFn, kind: str) -> tuple[LayerWeights, np.ndarray]:
    """Weights and an input for a small ``kind`` ("linear" or "conv2d") layer."""
    # Fixed menus of layer geometries (see _cases.SHAPES for why): one unit, wider than
    # tall and the reverse, 1x1 and 3x3 kernels, stride 1 and 2, with and without padding.
    if kind == "linear":
        batch, n_in, n_out = draw(st.sampled_from([(1, 1, 1), (2, 3, 4), (3, 5, 2)]))
        wshape, x_shape, stride, padding = (n_out, n_in), (batch, n_in), 1, 0
    else:
        batch, c_in, c_out, k, stride, padding, size = draw(
            st.sampled_from(
                [(1, 1, 1, 1, 1, 0, 3), (2, 2, 3, 3, 2, 1, 5), (1, 3, 2, 3, 1, 0, 4), (2, 1, 2, 3, 2, 0, 6)]
            )
        )
        wshape, x_shape = (c_out, c_in, k, k), (batch, c_in, size, size)
    scale = 1.0 / np.sqrt(np.prod(wshape[1:]))
    weights = LayerWeights(
        kind,
        _snap(draw(arrays(wshape, -scale * 2, scale * 2))),
        _snap(draw(arrays(wshape[:1], -0.5, 0.5))),
        _snap(draw(arrays(wshape, -scale * 4, scale * 4))),
        _snap(draw(arrays(wshape[:1], -1.0, 1.0))),
        stride,
        padding,
    )
    return weights, _snap(draw(arrays(x_shape, -2.0, 2.0)))


def _snap(a: np.ndarray) -> np.ndarray:
    """Set |values| < 1e-3 to 0: a float32 product of two tiny values underflows to 0
    (so a ReLU unit turns off) while the float64 reference keeps it positive."""
    return np.where(np.abs(a) < 1e-3, 0.0, a)


def pre_activations(w: LayerWeights, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The reference ``layer(x)`` and ``alpha_layer(x)``."""
    if w.kind == "linear":
        return reference.linear(x, w.weight, w.bias), reference.linear(x, w.alpha_weight, w.alpha_bias)
    conv = dict(stride=w.stride, padding=w.padding)
    return reference.conv2d(x, w.weight, w.bias, **conv), reference.conv2d(x, w.alpha_weight, w.alpha_bias, **conv)


def reference_layer(w: LayerWeights, x: np.ndarray, *, noise, training, mu, sigma, activation, **options):
    """Reference ``(z, kl per sample)`` of ``InfoDropout(<map>)`` with these weights."""
    h, a = pre_activations(w, x)
    kw = {"mu": mu, "sigma": sigma}
    z, kl = reference.info_dropout(
        reference.act(activation, h), a, noise=noise, training=training, activation=activation, **options, **kw
    )
    return z, reference.per_sample_kl(kl)


def map_vjp(w: LayerWeights, x: np.ndarray, g: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, ...]:
    """``(d weight, d bias, d x)`` of the reference map with ``weight`` (and ``w``'s geometry), given
    the cotangent ``g`` of its output: the closed-form backward of a linear map or a convolution."""
    if w.kind == "linear":
        return g.T @ x, g.sum(axis=0), g @ weight
    p, s = w.padding, w.stride
    padded = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    kh, kw = weight.shape[2:]
    ho, wo = g.shape[2:]
    windows = np.lib.stride_tricks.sliding_window_view(padded, (kh, kw), axis=(2, 3))[:, :, ::s, ::s][:, :, :ho, :wo]
    d_padded = np.zeros_like(padded)
    for i in range(kh):
        for j in range(kw):
            d_padded[:, :, i : i + s * ho : s, j : j + s * wo : s] += np.einsum("nohw,oc->nchw", g, weight[:, :, i, j])
    dx = d_padded[:, :, p : p + x.shape[2], p : p + x.shape[3]]
    return np.einsum("nchwij,nohw->ocij", windows, g), g.sum(axis=(0, 2, 3)), dx
