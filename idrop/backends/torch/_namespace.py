"""The torch side of the core: the ``xp`` shim, dtype and input checks, and the noise draws.

The core (:mod:`idrop.core`) is written over a small array namespace; :data:`xp` spells it
for torch, with the protocol's two optional names ``sigmoid`` and ``relu`` bound to torch's
fused operators (same values; ``torch.relu``'s derivative at 0 is 0, the contract's rule,
and it passes NaN through where ``where(h > 0, h, 0)`` would turn it into 0). The noise is
drawn with torch's RNG; a training kernel that does not keep ``eps`` saves the generator's
state and draws it again in backward (:func:`generator_state`, :func:`redraw`).
"""

from __future__ import annotations

from typing import Any

import torch

from idrop.core.spec import check_float_dtype, check_input_dtype, check_input_rank, check_input_type


class TorchNamespace:
    """The handful of array-API names the core uses, spelled for torch."""

    exp = staticmethod(torch.exp)
    expm1 = staticmethod(torch.expm1)
    log = staticmethod(torch.log)
    log1p = staticmethod(torch.log1p)
    logaddexp = staticmethod(torch.logaddexp)
    sigmoid = staticmethod(torch.sigmoid)  # optional protocol name: one fused pass
    relu = staticmethod(torch.relu)  # optional protocol name: derivative 0 at 0, NaN stays NaN
    maximum = staticmethod(torch.maximum)
    sqrt = staticmethod(torch.sqrt)
    square = staticmethod(torch.square)
    where = staticmethod(torch.where)
    zeros_like = staticmethod(torch.zeros_like)
    ones_like = staticmethod(torch.ones_like)
    asarray = staticmethod(torch.as_tensor)

    @staticmethod
    def astype(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        return x.to(dtype)

    @staticmethod
    def sum(x: torch.Tensor, axis: Any = None) -> torch.Tensor:
        # torch reads dim=() as "every dim"; the array API reads it as "no dim" (a per-sample KL
        # of a map whose output is [batch] is that output itself).
        if axis == ():
            return x
        return torch.sum(x) if axis is None else torch.sum(x, dim=axis)

    @staticmethod
    def mean(x: torch.Tensor, axis: Any = None) -> torch.Tensor:
        return torch.mean(x) if axis is None else torch.mean(x, dim=axis)


class _KernelNamespace(TorchNamespace):
    """Inside the kernel, constant zeros/ones are broadcast scalars: same values, no allocation."""

    @staticmethod
    def zeros_like(x: torch.Tensor) -> torch.Tensor:
        return torch.zeros((), dtype=x.dtype, device=x.device).expand(x.shape)

    @staticmethod
    def ones_like(x: torch.Tensor) -> torch.Tensor:
        return torch.ones((), dtype=x.dtype, device=x.device).expand(x.shape)


xp = TorchNamespace()
kernel_xp = _KernelNamespace()

_HALF = (torch.float16, torch.bfloat16)


def dtype_name(dtype: torch.dtype) -> str:
    """``"float32"`` for ``torch.float32``: the name the core's messages use."""
    return str(dtype).removeprefix("torch.")


def compute_dtype(t: torch.Tensor) -> torch.dtype:
    """float32 for half-precision tensors (KL and noise), else the tensor's dtype."""
    return torch.float32 if t.dtype in _HALF else t.dtype


def kl_dtype(f: torch.Tensor) -> torch.dtype | None:
    """The ``kl_dtype`` argument of the core: float32 for half-precision ``f``, else ``None``."""
    return None if compute_dtype(f) == f.dtype else compute_dtype(f)


def check_float(name: str, t: Any) -> None:
    """Raise the core's ``TypeError`` unless ``t`` is a floating-point tensor."""
    check_input_type(name, t, isinstance(t, torch.Tensor))
    check_float_dtype(name, dtype_name(t.dtype), t.is_floating_point())


def check_layer_input(x: Any, layer: torch.nn.Module) -> None:
    """The input rules of docs/design-notes.md section 2 for a layer's ``x``.

    A tensor (not a list), float, at least 1-D, in the dtype of ``layer``'s weights; under
    ``torch.autocast`` the wrapped map casts its input itself, as every torch layer does there.
    """
    check_float("x", x)
    check_input_rank("x", tuple(x.shape))
    weight = next(layer.parameters(), None)
    if weight is not None and weight.is_floating_point() and not torch.is_autocast_enabled(x.device.type):
        check_input_dtype("x", dtype_name(x.dtype), dtype_name(weight.dtype))


def draw_normal(like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Standard normals shaped like ``like`` (row-major, as ``torch.randn(like.shape)``), never half.

    ``randn_like`` keeps symbolic shapes under ``torch.compile(dynamic=True)``; the
    generator is passed only when there is one.
    """
    kw = {} if generator is None else {"generator": generator}
    return torch.randn_like(like, dtype=compute_dtype(like), memory_format=torch.contiguous_format, **kw)


def generator_state(device: torch.device, generator: torch.Generator | None) -> torch.Tensor | None:
    """The state of the generator the next draw on ``device`` uses, or ``None`` if it cannot be redone."""
    if torch.compiler.is_compiling():
        return None  # under compile eps is kept: the graph holds no generator state
    if generator is not None:
        return generator.get_state()
    if device.type == "cpu":
        return torch.default_generator.get_state()
    if device.type == "cuda" and not torch.cuda.is_current_stream_capturing():
        return torch.cuda.default_generators[device.index if device.index is not None else 0].get_state()
    return None


def redraw(state: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """The draw of :func:`draw_normal` that followed ``state``, on a private generator."""
    generator = torch.Generator(device=like.device)
    generator.set_state(state)
    return draw_normal(like, generator)
