"""Calling the wrapped map and the alpha map: a fresh copy of a layer, one stacked convolution.

With the default ``alpha_layer`` of a convolution both maps are one convolution on the two
weights stacked (one im2col instead of two on the CPU); ``state_dict`` keys stay ``layer.*``
and ``alpha_layer.*``. Two ``Linear`` maps stay two: the copy of the concatenated weights
costs more than the second matmul saves.

Private torch API (checked against torch 2.13):

- ``torch.nn.Conv1d/2d/3d._conv_forward(input, weight, bias)`` (``torch/nn/modules/conv.py``):
  the module's convolution with its own stride, padding, ``padding_mode``, dilation and groups,
  on weights the caller passes; the stacked call uses it.
- ``Module._forward_hooks``, ``_forward_pre_hooks``, ``_backward_hooks``, ``_backward_pre_hooks``
  and ``torch.nn.modules.module._global_forward_hooks``, ``_global_forward_pre_hooks``,
  ``_global_backward_hooks``, ``_global_backward_pre_hooks`` (``torch/nn/modules/module.py``):
  a stacked call bypasses ``Module.__call__``, so any hook (weight norm, profilers, lazy
  initialisation) turns stacking off.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.modules import module as _module
from torch.nn.modules.lazy import LazyModuleMixin

#: The convolutions and the rank of their unbatched input (channels and spatial axes).
_CONV_RANK = {nn.Conv1d: 2, nn.Conv2d: 3, nn.Conv3d: 4}
_CONV = tuple(_CONV_RANK)


def fresh_copy(layer: nn.Module) -> nn.Module:
    """A new map of ``layer``'s kind and shape with its own, freshly initialised weights."""
    if isinstance(layer, LazyModuleMixin) and layer.has_uninitialized_params():
        return copy.deepcopy(layer)  # its weights are made, fresh, at its first call
    if isinstance(layer, nn.Linear):
        p = layer.weight
        return nn.Linear(
            layer.in_features, layer.out_features, bias=layer.bias is not None, device=p.device, dtype=p.dtype
        )
    if isinstance(layer, _CONV):
        p = layer.weight
        return type(layer)(
            layer.in_channels,
            layer.out_channels,
            layer.kernel_size,
            stride=layer.stride,
            padding=layer.padding,
            dilation=layer.dilation,
            groups=layer.groups,
            bias=layer.bias is not None,
            padding_mode=layer.padding_mode,
            device=p.device,
            dtype=p.dtype,
        )
    if hasattr(layer, "reset_parameters"):
        clone = copy.deepcopy(layer)
        clone.reset_parameters()
        return clone
    raise ValueError(
        "Invalid value received for argument `alpha_layer`. Expected a module when "
        f"`layer` is not Linear/Conv1d/2d/3d and has no reset_parameters(). "
        f"Received: alpha_layer=None, layer={type(layer).__name__}"
    )


def may_stack(layer: nn.Module, alpha_layer: nn.Module | None) -> bool:
    """Whether the default alpha map of ``layer`` may ever run stacked with it (checked again per call)."""
    return alpha_layer is None and isinstance(layer, _CONV) and layer.groups == 1


def unbatched(layer: nn.Module, x: torch.Tensor) -> bool:
    """Whether ``x`` has no batch axis for ``layer``: a 1-D input to ``Linear``, ``C, *spatial`` to a conv.

    Other maps (and a ``Sequential`` not starting with one of these) are taken as batched.
    """
    while isinstance(layer, nn.Sequential) and len(layer) > 0:
        layer = layer[0]
    if isinstance(layer, nn.Linear):
        return x.dim() == 1
    for conv, rank in _CONV_RANK.items():
        if isinstance(layer, conv):
            return x.dim() == rank
    return False


def _hooked(m: nn.Module) -> bool:
    return bool(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks or m._backward_pre_hooks)


def _global_hooks() -> bool:
    return bool(
        _module._global_forward_hooks
        or _module._global_forward_pre_hooks
        or _module._global_backward_hooks
        or _module._global_backward_pre_hooks
    )


def stacks(layer: nn.Module, alpha: nn.Module) -> bool:
    """Whether the two convolutions may run as one: still alike, and no hook to bypass."""
    return (
        type(alpha) is type(layer)
        and not (_hooked(layer) or _hooked(alpha) or _global_hooks())
        and alpha.weight.shape == layer.weight.shape
        and alpha.weight.dtype == layer.weight.dtype
        and alpha.weight.device == layer.weight.device
        and (alpha.bias is None) == (layer.bias is None)
        and (alpha.stride, alpha.padding, alpha.dilation, alpha.groups, alpha.padding_mode)
        == (layer.stride, layer.padding, layer.dilation, layer.groups, layer.padding_mode)
    )


def both_maps(
    layer: nn.Module, alpha: nn.Module, x: torch.Tensor, *, stack: bool, batched: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(layer(x), alpha(x))``, as one stacked convolution when ``stack`` and :func:`stacks` allow."""
    if stack and stacks(layer, alpha):
        weight = torch.cat([layer.weight, alpha.weight])
        bias = None if layer.bias is None else torch.cat([layer.bias, alpha.bias])
        both = layer._conv_forward(x, weight, bias)
        return both.split(layer.out_channels, dim=1 if batched else 0)
    return layer(x), alpha(x)
