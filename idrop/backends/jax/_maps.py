"""The wrapped map and the alpha map: a fresh copy of ``nnx.Linear``/``nnx.Conv``, their dtype, batching.

Reads these attributes of ``flax.nnx.Linear`` and ``flax.nnx.Conv`` (flax 0.12): ``in_features``,
``out_features``, ``use_bias``, ``dtype``, ``param_dtype``, ``precision``, ``promote_dtype``,
``preferred_element_type``, ``dot_general`` (Linear), and ``kernel_size``, ``strides``, ``padding``,
``input_dilation``, ``kernel_dilation``, ``feature_group_count``, ``mask``,
``conv_general_dilated`` (Conv).
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from flax import nnx

from idrop.core.spec import check_same_shape, invalid, no_low_rank_map


def fresh_copy(layer: nnx.Module, rngs: Any) -> nnx.Module:
    """A new map of ``layer``'s kind and shape with its own, freshly initialised weights."""
    if not isinstance(layer, (nnx.Linear, nnx.Conv)):
        raise ValueError(
            "Invalid value received for argument `alpha_layer`. Expected a module when "
            "`layer` is not nnx.Linear/nnx.Conv. "
            f"Received: alpha_layer=None, layer={type(layer).__name__}"
        )
    if not isinstance(rngs, nnx.Rngs):
        raise invalid("rngs", "an nnx.Rngs to initialise the default alpha_layer", rngs)
    common = {
        "use_bias": layer.use_bias,
        "dtype": layer.dtype,
        "param_dtype": layer.param_dtype,
        "precision": layer.precision,
        "promote_dtype": layer.promote_dtype,
        "preferred_element_type": layer.preferred_element_type,
        "rngs": rngs,
    }
    if isinstance(layer, nnx.Linear):
        return nnx.Linear(layer.in_features, layer.out_features, dot_general=layer.dot_general, **common)
    return nnx.Conv(
        layer.in_features,
        layer.out_features,
        layer.kernel_size,
        layer.strides,
        padding=layer.padding,
        input_dilation=layer.input_dilation,
        kernel_dilation=layer.kernel_dilation,
        feature_group_count=layer.feature_group_count,
        mask=layer.mask,
        conv_general_dilated=layer.conv_general_dilated,
        **common,
    )


class LowRankAlpha(nnx.Module):
    """The cheap alpha branch ``up(down(x))``: ``down`` a map of ``layer``'s kind with ``rank`` outputs
    and no bias, ``up`` an ``nnx.Linear``/1x1 ``nnx.Conv`` from ``rank`` to ``layer``'s outputs with a bias.

    ``down`` needs no bias: ``up(down(x) + c) = up(down(x)) + c @ up.kernel``, which ``up``'s bias
    already spans. Costs ``rank * (in + out)`` weights instead of ``in * out``.
    """

    def __init__(self, down: nnx.Module, up: nnx.Module) -> None:
        self.down = down
        self.up = up

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.up(self.down(x))


def low_rank_copy(layer: nnx.Module, rank: int, rngs: Any) -> LowRankAlpha:
    """The :class:`LowRankAlpha` of ``layer`` (``nnx.Linear`` or ``nnx.Conv``), initialised from ``rngs``.

    The conv ``down`` has ``layer``'s kernel, strides, padding and dilations and one feature group;
    ``up`` is a 1x1 conv (stride 1, no padding).
    """
    if not isinstance(layer, (nnx.Linear, nnx.Conv)):
        raise no_low_rank_map(rank, type(layer).__name__, "nnx.Linear/nnx.Conv")
    if not isinstance(rngs, nnx.Rngs):
        raise invalid("rngs", "an nnx.Rngs to initialise the default alpha_layer", rngs)
    common = {
        "dtype": layer.dtype,
        "param_dtype": layer.param_dtype,
        "precision": layer.precision,
        "promote_dtype": layer.promote_dtype,
        "preferred_element_type": layer.preferred_element_type,
        "rngs": rngs,
    }
    if isinstance(layer, nnx.Linear):
        down = nnx.Linear(layer.in_features, rank, use_bias=False, dot_general=layer.dot_general, **common)
        up = nnx.Linear(rank, layer.out_features, dot_general=layer.dot_general, **common)
        return LowRankAlpha(down, up)
    down = nnx.Conv(
        layer.in_features,
        rank,
        layer.kernel_size,
        layer.strides,
        padding=layer.padding,
        input_dilation=layer.input_dilation,
        kernel_dilation=layer.kernel_dilation,
        use_bias=False,
        conv_general_dilated=layer.conv_general_dilated,
        **common,
    )
    ones = (1,) * len(layer.kernel_size)
    up = nnx.Conv(rank, layer.out_features, ones, conv_general_dilated=layer.conv_general_dilated, **common)
    return LowRankAlpha(down, up)


def compute_dtype(layer: nnx.Module) -> Any:
    """The dtype ``layer`` computes in: its ``dtype``, else its ``param_dtype``; None when it has neither.

    A Flax layer built with ``dtype=bfloat16`` and float32 parameters computes in bfloat16, so it
    takes bfloat16 input (docs/design-notes.md section 2: input in another float dtype is refused).
    """
    dtype = getattr(layer, "dtype", None)
    return dtype if dtype is not None else getattr(layer, "param_dtype", None)


def is_batched(layer: nnx.Module, x: jax.Array) -> bool:
    """Whether ``x`` has a batch axis: ``nnx.Linear`` also takes one feature vector, ``nnx.Conv`` one image.

    Any other map is taken to be called on a batch (its leading axis).
    """
    if isinstance(layer, nnx.Linear):
        return np.ndim(x) > 1
    if isinstance(layer, nnx.Conv):
        return np.ndim(x) > len(layer.kernel_size) + 1
    return True


def apply(layer: nnx.Module, norm: nnx.Module | None, x: jax.Array) -> jax.Array:
    """``norm(layer(x))`` (``layer(x)`` without a norm): the pre-activation ``h``."""
    h = layer(x)
    return h if norm is None else norm(h)


def apply_both(
    layer: nnx.Module, norm: nnx.Module | None, alpha_layer: nnx.Module, x: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """``(h, alpha_logits)``, after checking that the two maps give the same shape."""
    h, alpha_logits = apply(layer, norm, x), alpha_layer(x)
    check_same_shape(h.shape, alpha_logits.shape)
    return h, alpha_logits
