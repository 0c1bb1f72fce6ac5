"""The torch side of the core: the ``xp`` shim, noise draws, and the fused training kernel.

:class:`InfoDropoutFunction` is the element-wise chain of a training step
(activation, alpha, noise, KL) as one ``torch.autograd.Function``: its forward
is :func:`idrop.core.functional.info_dropout` and its backward is
:func:`idrop.core.vjp.info_dropout_vjp`, so the formulas stay in the core.
Autograd keeps only ``f`` (or, for a ReLU on a view, the pre-activation ``h``)
and the alpha logits; the activation's derivative comes from ``f`` (ReLU:
``f > 0``; softplus: ``-expm1(-f)``). The normal draws are not
kept: the generator's state is saved before the draw and ``eps`` is drawn again
in backward, as ``torch.utils.checkpoint`` does with ``preserve_rng_state``
(CPU and CUDA; injected noise, other devices and ``torch.compile`` keep ``eps``).

The default law (log-uniform prior, median-one noise, ReLU or no activation, full
precision) runs a lean eager path, :func:`_lean_forward` and
:func:`_lean_backward`: the same formulas in place, so each step allocates four
temporaries instead of about fifteen. On a CPU every fresh buffer costs page
faults (a new 512 KiB tensor is ~5x slower to fill than a reused one), so this is
most of the eager overhead. ``test_kernel_matches_plain_autograd`` in
``tests/backends/test_torch.py`` checks it against plain autograd through the core.

Limits: no double backward (``once_differentiable``), no forward-mode AD, and
no gradient with respect to injected ``noise``. At ``h == 0`` exactly the ReLU
derivative is 0 (autograd's ``maximum(h, 0)`` gives 1/2 there).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
from torch.autograd.function import once_differentiable

from idrop.core import functional as _functional
from idrop.core._xp import activation as _activation
from idrop.core.loss import per_sample_kl
from idrop.core.spec import InfoDropoutSpec
from idrop.core.vjp import info_dropout_vjp


class TorchNamespace:
    """The handful of array-API names the core uses, spelled for torch."""

    exp = staticmethod(torch.exp)
    expm1 = staticmethod(torch.expm1)
    log = staticmethod(torch.log)
    log1p = staticmethod(torch.log1p)
    logaddexp = staticmethod(torch.logaddexp)
    sigmoid = staticmethod(torch.sigmoid)  # optional protocol name: one fused pass
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


def compute_dtype(t: torch.Tensor) -> torch.dtype:
    """float32 for half-precision tensors (KL and noise), else the tensor's dtype."""
    return torch.float32 if t.dtype in _HALF else t.dtype


def draw_normal(like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Standard normals shaped like ``like`` (row-major, as ``torch.randn(like.shape)``), never half.

    ``randn_like`` keeps symbolic shapes under ``torch.compile(dynamic=True)``; the
    generator is passed only when there is one.
    """
    kw = {} if generator is None else {"generator": generator}
    return torch.randn_like(like, dtype=compute_dtype(like), memory_format=torch.contiguous_format, **kw)


def _generator_state(device: torch.device, generator: torch.Generator | None) -> torch.Tensor | None:
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


def _redraw(state: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """The draw of :func:`draw_normal` that followed ``state``, on a private generator."""
    generator = torch.Generator(device=like.device)
    generator.set_state(state)
    return draw_normal(like, generator)


class _Options(NamedTuple):
    spec: InfoDropoutSpec
    activation: str | None  # applied inside the kernel to its first input (None: it is f already)
    reduce: bool  # per-sample KL sums (over every axis but the first) instead of per-unit KL


def _forward(
    h: torch.Tensor,
    alpha_logits: torch.Tensor,
    mu: torch.Tensor | None,
    sigma: torch.Tensor | None,
    eps: torch.Tensor,
    opts: _Options,
    namespace: Any,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(f, z, kl)`` of one training call, by the core."""
    f = h if opts.activation is None else _activation(opts.activation, h, xp=namespace)
    kl_dtype = compute_dtype(f)
    z, kl = _functional.info_dropout(
        f,
        alpha_logits,
        eps,
        spec=opts.spec,
        mu=0.0 if mu is None else mu,
        sigma=1.0 if sigma is None else sigma,
        training=True,
        kl_dtype=kl_dtype if kl_dtype != f.dtype else None,
        xp=namespace,
    )
    if opts.reduce:
        kl = per_sample_kl(kl, xp=xp)  # over the dims, not a flatten: any memory order (channels-last)
    return f, z, kl


def _lean(opts: _Options, h: torch.Tensor, alpha_logits: torch.Tensor) -> bool:
    """Whether the in-place path applies: the default law in full precision, outside ``torch.compile``
    (which fuses the chain itself)."""
    spec = opts.spec
    return (
        not torch.compiler.is_compiling()
        and spec.prior == "log-uniform"
        and spec.zero_units == "count"
        and not spec.mean_one
        and opts.activation in ("relu", None)
        and h.dtype in (torch.float32, torch.float64)
        and alpha_logits.dtype == h.dtype
    )


def _lean_forward(
    h: torch.Tensor, alpha_logits: torch.Tensor, eps: torch.Tensor, opts: _Options
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(f, z, kl)`` as :func:`_forward`, computed in place in ``eps`` and ``alpha`` (which it consumes).

    The same operations in the same order as the core (``alpha_min + max_alpha * sigmoid(a)``,
    ``f * exp(alpha * eps)``, ``log(max_alpha + alpha_min) - log(alpha)``), so the values agree bit for bit.
    """
    spec = opts.spec
    f = torch.relu(h) if opts.activation == "relu" else h
    alpha = torch.sigmoid(alpha_logits).mul_(spec.max_alpha).add_(spec.alpha_min)
    z = eps.mul_(alpha).exp_().mul_(f)  # in eps's buffer: one allocation fewer (f * noise, same product)
    kl = alpha.log_().neg_().add_(math.log(spec.max_alpha + spec.alpha_min))
    if opts.reduce:
        kl = per_sample_kl(kl, xp=xp)  # over the dims, not a flatten: any memory order (channels-last)
    return f, z, kl


def _lean_backward(
    f: torch.Tensor,
    alpha_logits: torch.Tensor,
    eps: torch.Tensor,
    z_cot: torch.Tensor | None,
    kl_cot: torch.Tensor | None,
    opts: _Options,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    r"""``(grad f(x) input, grad a)`` of the lean path: :func:`idrop.core.vjp.info_dropout_vjp`, in place.

    With :math:`n = e^{\alpha\epsilon}`: :math:`g_f = \bar z\, n`,
    :math:`g_\alpha = g_f f \epsilon - \overline{\mathrm{KL}}/\alpha`,
    :math:`g_a = \alpha_{\max}\, s(1-s)\, g_\alpha`. ``eps`` is consumed.
    """
    spec = opts.spec
    if z_cot is None and kl_cot is None:
        return None, None
    s = torch.sigmoid(alpha_logits)
    alpha = s * spec.max_alpha
    alpha.add_(spec.alpha_min)
    g_f = None
    if z_cot is not None:
        g_f = torch.mul(alpha, eps).exp_().mul_(z_cot)
        g_alpha = eps.mul_(g_f).mul_(f)
        if kl_cot is not None:
            g_alpha.addcdiv_(kl_cot, alpha, value=-1.0)
        if opts.activation == "relu":  # autograd's relu backward, written into g_f
            torch.ops.aten.threshold_backward.grad_input(g_f, f, 0, grad_input=g_f)
    else:
        g_alpha = alpha.reciprocal_().mul_(kl_cot).neg_()
    g_alpha.mul_(spec.max_alpha)
    torch.ops.aten.sigmoid_backward.grad_input(g_alpha, s, grad_input=g_alpha)
    return g_f, g_alpha


class InfoDropoutFunction(torch.autograd.Function):
    """``(h, alpha_logits, mu, sigma, noise, generator, opts) -> (z, kl)`` of a training step."""

    @staticmethod
    def forward(ctx: Any, h, alpha_logits, mu, sigma, noise, generator, opts):
        ctx.set_materialize_grads(False)
        if noise is not None:
            state, eps = None, noise.to(device=h.device, dtype=compute_dtype(h))
        else:
            state = _generator_state(h.device, generator)
            eps = draw_normal(h, generator)
        ctx.lean = _lean(opts, h, alpha_logits)
        if ctx.lean:  # it consumes eps's buffer: a copy when eps is kept for backward
            f, z, kl = _lean_forward(h, alpha_logits, eps if state is not None else eps.clone(), opts)
        else:
            f, z, kl = _forward(h, alpha_logits, mu, sigma, eps, opts, kernel_xp)
        # Keep f, except a ReLU input that is a view (the stacked maps' output, whose storage the
        # alpha logits keep anyway): then h, and f = relu(h) is redone in backward.
        ctx.redo_relu = opts.activation == "relu" and h._base is not None
        ctx.opts, ctx.state = opts, state
        kept = h if ctx.redo_relu else f
        ctx.save_for_backward(kept, alpha_logits, mu, sigma, eps if state is None else None)
        return z, kl

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, z_cot: torch.Tensor | None, kl_cot: torch.Tensor | None):
        kept, alpha_logits, mu, sigma, eps = ctx.saved_tensors
        opts = ctx.opts
        f = _activation("relu", kept, xp=kernel_xp) if ctx.redo_relu else kept
        redrawn = eps is None
        if redrawn:
            eps = _redraw(ctx.state, f)
        if kl_cot is not None and opts.reduce:
            kl_cot = kl_cot.reshape(kl_cot.shape + (1,) * (f.dim() - 1))
        if ctx.lean:  # it consumes eps's buffer: a copy of a kept eps (backward may run again)
            g_h, g_a = _lean_backward(f, alpha_logits, eps if redrawn else eps.clone(), z_cot, kl_cot, opts)
            return g_h, g_a, None, None, None, None, None
        dtype = compute_dtype(f)
        a = alpha_logits.to(dtype)
        f32 = f.to(dtype)
        if z_cot is not None:
            z_cot = z_cot.to(dtype)
        g = info_dropout_vjp(
            f32,
            a,
            eps,
            z_cot,
            kl_cot,
            spec=opts.spec,
            mu=0.0 if mu is None else mu,
            sigma=1.0 if sigma is None else sigma,
            training=True,
            xp=kernel_xp,
        )
        g_h = g.f
        if opts.activation == "relu":
            g_h = torch.ops.aten.threshold_backward(g_h, f32, 0)  # autograd's relu backward
        elif opts.activation == "softplus":
            g_h = g_h * -torch.expm1(-f32)
        g_mu = None if mu is None or not ctx.needs_input_grad[2] else g.mu.sum_to_size(mu.shape)
        g_sigma = None if sigma is None or not ctx.needs_input_grad[3] else g.sigma.sum_to_size(sigma.shape)
        return g_h.to(kept.dtype), g.alpha_logits.to(alpha_logits.dtype), g_mu, g_sigma, None, None, None


def train_step(
    h: torch.Tensor,
    alpha_logits: torch.Tensor,
    *,
    spec: InfoDropoutSpec,
    activation: str | None,
    reduce: bool,
    mu: torch.Tensor | None,
    sigma: torch.Tensor | None,
    noise: torch.Tensor | None,
    generator: torch.Generator | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(z, kl)`` of ``act(h)`` in training mode; through :class:`InfoDropoutFunction` when a gradient is needed."""
    tensors = (h, alpha_logits, mu, sigma)
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors):
        opts = _Options(spec, activation, reduce)
        return InfoDropoutFunction.apply(h, alpha_logits, mu, sigma, noise, generator, opts)
    eps = draw_normal(h, generator) if noise is None else noise.to(device=h.device, dtype=compute_dtype(h))
    _, z, kl = _forward(h, alpha_logits, mu, sigma, eps, _Options(spec, activation, reduce), kernel_xp)
    return z, kl
