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

from idrop.core.spec import no_low_rank_map

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


class LowRankAlpha(nn.Module):
    """The cheap alpha branch ``up(down(x))``: ``down`` a map of ``layer``'s kind with ``rank`` outputs
    and no bias, ``up`` a ``Linear``/1x1 conv from ``rank`` to ``layer``'s outputs with a bias.

    ``down`` needs no bias of its own: ``up(down(x) + c) = up(down(x)) + up.weight @ c``, which
    ``up``'s bias already spans. Costs ``rank * (in + out)`` weights instead of ``in * out``.
    """

    def __init__(self, down: nn.Module, up: nn.Module) -> None:
        super().__init__()
        self.down = down
        self.up = up

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.down(x))


_LAZY_CONV = {nn.Conv1d: nn.LazyConv1d, nn.Conv2d: nn.LazyConv2d, nn.Conv3d: nn.LazyConv3d}


def low_rank_copy(layer: nn.Module, rank: int) -> LowRankAlpha:
    """The :class:`LowRankAlpha` of ``layer`` (``Linear`` or ``Conv1d/2d/3d``, lazy ones too), fresh weights.

    The conv ``down`` has ``layer``'s kernel, stride, padding, dilation and padding mode (so it
    runs stacked with ``layer``) and one group; ``up`` is a 1x1 conv.
    """
    # Two checks, not one on (nn.Linear, *_CONV): mypy narrows an unpacked tuple of classes to `object`.
    if not (isinstance(layer, nn.Linear) or isinstance(layer, _CONV)):
        raise no_low_rank_map(rank, type(layer).__name__, "Linear/Conv1d/2d/3d")
    p = layer.weight
    kw = {} if isinstance(p, nn.parameter.UninitializedParameter) else {"device": p.device, "dtype": p.dtype}
    lazy = isinstance(layer, LazyModuleMixin) and layer.has_uninitialized_params()
    if isinstance(layer, nn.Linear):
        down = nn.LazyLinear(rank, bias=False, **kw) if lazy else nn.Linear(layer.in_features, rank, bias=False, **kw)
        return LowRankAlpha(down, nn.Linear(rank, layer.out_features, **kw))
    conv = next(c for c in _CONV if isinstance(layer, c))
    geometry = {
        "stride": layer.stride,
        "padding": layer.padding,
        "dilation": layer.dilation,
        "padding_mode": layer.padding_mode,
        "bias": False,
        **kw,
    }
    if lazy:
        down = _LAZY_CONV[conv](rank, layer.kernel_size, **geometry)
    else:
        down = conv(layer.in_channels, rank, layer.kernel_size, **geometry)
    return LowRankAlpha(down, conv(rank, layer.out_channels, 1, **kw))


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


def stacks(layer: nn.Module, alpha: nn.Module, *, low_rank: bool = False) -> bool:
    """Whether the two convolutions may run as one: still alike, and no hook to bypass.

    ``low_rank``: ``alpha`` is a :class:`LowRankAlpha`'s ``down`` (other output count, no bias).
    """
    return (
        type(alpha) is type(layer)
        and not (_hooked(layer) or _hooked(alpha) or _global_hooks())
        and isinstance(alpha.weight, nn.Parameter)
        and not isinstance(alpha.weight, nn.parameter.UninitializedParameter)
        and alpha.weight.shape[1:] == layer.weight.shape[1:]
        and (low_rank or alpha.weight.shape == layer.weight.shape)
        and alpha.weight.dtype == layer.weight.dtype
        and alpha.weight.device == layer.weight.device
        and ((alpha.bias is None) if low_rank else (alpha.bias is None) == (layer.bias is None))
        and (alpha.stride, alpha.padding, alpha.dilation, alpha.groups, alpha.padding_mode)
        == (layer.stride, layer.padding, layer.dilation, layer.groups, layer.padding_mode)
    )


def recomputes(layer: nn.Module, alpha: nn.Module) -> bool:
    """Whether the alpha logits of a training step are recomputed in backward (``_remat.py``).

    The cheap branch, unhooked (a hook on it must see its call), when a gradient is taken
    outside ``torch.func`` transforms (which take the kernel by plain autograd).
    """
    return (
        isinstance(alpha, LowRankAlpha)
        and not _hooked(alpha)
        and torch.is_grad_enabled()
        and not torch._C._are_functorch_transforms_active()
    )


def both_maps(
    layer: nn.Module, alpha: nn.Module, x: torch.Tensor, *, stack: bool, batched: bool, skip_up: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(layer(x), alpha(x))``, as one stacked convolution when ``stack`` and :func:`stacks` allow.

    For a :class:`LowRankAlpha` the stacked convolution computes ``layer(x)`` and ``down(x)``
    (``out + rank`` channels), then ``up`` maps the ``rank`` channels to the alpha logits;
    ``skip_up``: ``(layer(x), down(x))``, for the caller to apply ``up``.
    """
    if stack and isinstance(alpha, LowRankAlpha) and not _hooked(alpha) and stacks(layer, alpha.down, low_rank=True):
        down = alpha.down
        weight = torch.cat([layer.weight, down.weight])
        bias = None if layer.bias is None else torch.cat([layer.bias, layer.bias.new_zeros(down.out_channels)])
        h, t = layer._conv_forward(x, weight, bias).split([layer.out_channels, down.out_channels], 1 if batched else 0)
        return h, (t if skip_up else alpha.up(t))
    if skip_up and isinstance(alpha, LowRankAlpha):
        return layer(x), alpha.down(x)
    if stack and stacks(layer, alpha):
        weight = torch.cat([layer.weight, alpha.weight])
        bias = None if layer.bias is None else torch.cat([layer.bias, alpha.bias])
        both = layer._conv_forward(x, weight, bias)
        return both.split(layer.out_channels, dim=1 if batched else 0)
    return layer(x), alpha(x)
