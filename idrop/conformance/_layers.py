"""Random small Linear and Conv2d weights, and the reference layer built from them."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from idrop.core import reference

from ._cases import arrays
from ._harness import LayerWeights

#: Conv geometries ``(batch, c_in, c_out, kernel, stride, padding, size)``.
_CONVS = [(1, 1, 1, 1, 1, 0, 3), (2, 2, 3, 3, 2, 1, 5), (1, 3, 2, 3, 1, 0, 4), (2, 1, 2, 3, 2, 0, 6)]


@st.composite
def layer_problems(draw: st.DrawFn, kind: str, low_rank: bool = False) -> tuple[LayerWeights, np.ndarray]:
    """Weights and an input for a small ``kind`` ("linear" or "conv2d") layer.

    ``low_rank``: the alpha branch is ``InfoDropout(alpha_rank=r)``'s ``up(down(x))``, ``r`` in 1..3
    (below, at and above the output count: the option allows any ``r``). Its conv geometries
    have no padding: Keras pads with a separate layer there, which has no low-rank twin.
    """
    # Fixed menus of layer geometries (see _cases.SHAPES for why): one unit, wider than
    # tall and the reverse, 1x1 and 3x3 kernels, stride 1 and 2, with and without padding.
    if kind == "linear":
        batch, n_in, n_out = draw(st.sampled_from([(1, 1, 1), (2, 3, 4), (3, 5, 2)]))
        wshape, x_shape, stride, padding = (n_out, n_in), (batch, n_in), 1, 0
    else:
        convs = [c for c in _CONVS if c[5] == 0] if low_rank else _CONVS
        batch, c_in, c_out, k, stride, padding, size = draw(st.sampled_from(convs))
        wshape, x_shape = (c_out, c_in, k, k), (batch, c_in, size, size)
    scale = 1.0 / np.sqrt(np.prod(wshape[1:]))
    weight = _snap(draw(arrays(wshape, -scale * 2, scale * 2)))
    bias = _snap(draw(arrays(wshape[:1], -0.5, 0.5)))
    down = None
    if low_rank:
        rank = draw(st.integers(1, 3))
        down_shape = (rank, *wshape[1:])
        down = _snap(draw(arrays(down_shape, -scale * 3, scale * 3)))
        up_shape = (wshape[0], rank) if kind == "linear" else (wshape[0], rank, 1, 1)
        alpha_weight = _snap(draw(arrays(up_shape, -2.0 / np.sqrt(rank), 2.0 / np.sqrt(rank))))
    else:
        alpha_weight = _snap(draw(arrays(wshape, -scale * 4, scale * 4)))
    alpha_bias = _snap(draw(arrays(wshape[:1], -1.0, 1.0)))
    weights = LayerWeights(kind, weight, bias, alpha_weight, alpha_bias, stride, padding, down)
    return weights, _snap(draw(arrays(x_shape, -2.0, 2.0)))


def _snap(a: np.ndarray) -> np.ndarray:
    """Set |values| < 1e-3 to 0: a float32 product of two tiny values underflows to 0
    (so a ReLU unit turns off) while the float64 reference keeps it positive."""
    return np.where(np.abs(a) < 1e-3, 0.0, a)


def pre_activations(w: LayerWeights, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The reference ``layer(x)`` and ``alpha_layer(x)`` (``up(down(x))`` for the cheap alpha branch)."""
    if w.kind == "linear":
        h = reference.linear(x, w.weight, w.bias)
        if w.alpha_down is None:
            return h, reference.linear(x, w.alpha_weight, w.alpha_bias)
        t = reference.linear(x, w.alpha_down, None)
        return h, reference.linear(t, w.alpha_weight, w.alpha_bias)
    conv = dict(stride=w.stride, padding=w.padding)
    h = reference.conv2d(x, w.weight, w.bias, **conv)
    if w.alpha_down is None:
        return h, reference.conv2d(x, w.alpha_weight, w.alpha_bias, **conv)
    t = reference.conv2d(x, w.alpha_down, None, **conv)
    return h, reference.conv2d(t, w.alpha_weight, w.alpha_bias, stride=1, padding=0)


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
