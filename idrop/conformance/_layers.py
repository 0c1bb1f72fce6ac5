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
    batch = draw(st.integers(1, 3))
    if kind == "linear":
        n_in, n_out = draw(st.integers(1, 5)), draw(st.integers(1, 5))
        wshape, x_shape, stride, padding = (n_out, n_in), (batch, n_in), 1, 0
    else:
        c_in, c_out, k = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.sampled_from([1, 3]))
        stride, padding = draw(st.sampled_from([1, 2])), draw(st.sampled_from([0, 1]))
        size = draw(st.integers(max(k, 3), 6))
        wshape, x_shape = (c_out, c_in, k, k), (batch, c_in, size, size)
    scale = 1.0 / np.sqrt(np.prod(wshape[1:]))
    weights = LayerWeights(
        kind,
        draw(arrays(wshape, -scale * 2, scale * 2)),
        draw(arrays(wshape[:1], -0.5, 0.5)),
        draw(arrays(wshape, -scale * 4, scale * 4)),
        draw(arrays(wshape[:1], -1.0, 1.0)),
        stride,
        padding,
    )
    return weights, draw(arrays(x_shape, -2.0, 2.0))


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


def with_weights(w: LayerWeights, **arrays_: np.ndarray) -> LayerWeights:
    """A copy of ``w`` with some arrays replaced (for finite differences)."""
    import dataclasses

    return dataclasses.replace(w, **arrays_)
