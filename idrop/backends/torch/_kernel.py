"""The fused training kernel: Information Dropout's element-wise chain as one ``torch.autograd.Function``.

:class:`InfoDropoutFunction` is a training step's chain (activation, alpha, noise, KL): its
forward is :func:`idrop.core.functional.info_dropout` and its backward is
:func:`idrop.core.vjp.info_dropout_vjp` with :func:`idrop.core.vjp.activation_vjp`, so the
formulas stay in the core. Autograd keeps only ``f`` (or, for a ReLU on a view, the
pre-activation ``h``) and the alpha logits; the activation's derivative comes from ``f``
(ReLU: ``[f > 0] = [h > 0]``; softplus: ``sigmoid(h) = -expm1(-f)``). The normal draws are
not kept: the generator's state is saved before the draw and ``eps`` is drawn again in
backward, as ``torch.utils.checkpoint`` does with ``preserve_rng_state`` (CPU and CUDA;
injected noise, other devices and ``torch.compile`` keep ``eps``).

The default law (log-uniform prior, median-one noise, ReLU or no activation, full precision)
runs a lean eager path, :func:`_lean_forward` and :func:`_lean_backward`: the same formulas in
place, so each step allocates four temporaries instead of about fifteen (on a CPU every fresh
buffer costs page faults). ``test_lean_forward_is_the_core_bit_for_bit`` and
``test_kernel_matches_plain_autograd`` in ``tests/backends/test_torch_kernel.py`` pin it to the core.

Higher order: ``f`` is an output of the function (the caller drops it), so a backward run with
``create_graph=True`` differentiates through it; such a backward takes the core's formulas in
differentiable torch operations, never the in-place ones (gradient penalties, Hessian-vector
products). Under ``torch.func`` transforms, forward-mode AD or injected ``noise`` that requires
a gradient, :func:`info_dropout_kernel` runs the core by plain autograd instead.

Private torch API (checked against torch 2.13): ``Tensor._base`` (the base of a view, ``None``
otherwise); the out-variants ``torch.ops.aten.threshold_backward.grad_input`` and
``torch.ops.aten.sigmoid_backward.grad_input`` (``aten/src/ATen/native/native_functions.yaml``,
the kernels of ``torch.relu``'s and ``torch.sigmoid``'s own backward); and
``torch._C._are_functorch_transforms_active`` (see :func:`_fusable`).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
import torch.autograd.forward_ad as fwAD

from idrop.core import functional as _functional
from idrop.core._xp import activation as _activation
from idrop.core.loss import per_sample_kl
from idrop.core.spec import InfoDropoutSpec
from idrop.core.vjp import activation_vjp, info_dropout_vjp

from ._namespace import compute_dtype, draw_normal, generator_state, kernel_xp, redraw, xp


class _Options(NamedTuple):
    spec: InfoDropoutSpec
    activation: str | None  # applied inside the kernel to its first input (None: it is f already)
    reduce: bool  # per-sample KL sums (over every axis but the first) instead of per-unit KL
    batched: bool  # the first axis is the batch; else the per-sample KL is 0-d (unbatched input)


def _reduce(kl: torch.Tensor, opts: _Options) -> torch.Tensor:
    # over the dims, not a flatten: any memory order (channels-last)
    return per_sample_kl(kl, batched=opts.batched, xp=xp) if opts.reduce else kl


def _forward(
    h: Any, alpha_logits: Any, mu: Any, sigma: Any, eps: Any, opts: _Options, namespace: Any
) -> tuple[Any, Any, Any]:
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
    return f, z, _reduce(kl, opts)


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
    kl = alpha.log_().neg_().add_(math.log(spec.max_alpha + spec.alpha_min))  # c + (-x) is c - x exactly
    return f, z, _reduce(kl, opts)


def _relu_backward_(g: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """:func:`idrop.core.vjp.activation_vjp` of ReLU (``where(f > 0, g, 0)``), written into ``g``.

    ``aten::threshold_backward`` is the operator behind ``torch.relu``'s own backward (torch 2.13).
    """
    return torch.ops.aten.threshold_backward.grad_input(g, f, 0, grad_input=g)


def _lean_backward(
    f: Any, alpha_logits: Any, eps: Any, z_cot: Any, kl_cot: Any, f_cot: Any, opts: _Options
) -> tuple[Any, Any]:
    r"""``(grad of the kernel's input, grad a)`` of the lean path: the core's vjp, in place.

    With :math:`n = e^{\alpha\epsilon}`: :math:`g_f = \bar z\, n + \bar f`,
    :math:`g_\alpha = \bar z\, n f \epsilon - \overline{\mathrm{KL}}/\alpha`,
    :math:`g_a = \alpha_{\max}\, s(1-s)\, g_\alpha`. ``eps`` is consumed.
    """
    spec = opts.spec
    g_f = g_alpha = None
    if z_cot is not None or kl_cot is not None:
        s = torch.sigmoid(alpha_logits)
        alpha = s * spec.max_alpha
        alpha.add_(spec.alpha_min)
        if z_cot is not None:
            g_f = torch.mul(alpha, eps).exp_().mul_(z_cot)
            g_alpha = eps.mul_(g_f).mul_(f)
            if kl_cot is not None:
                g_alpha.addcdiv_(kl_cot, alpha, value=-1.0)
        else:
            g_alpha = alpha.reciprocal_().mul_(kl_cot).neg_()
        g_alpha.mul_(spec.max_alpha)
        torch.ops.aten.sigmoid_backward.grad_input(g_alpha, s, grad_input=g_alpha)
    if f_cot is not None:  # only in a backward of a backward, where f was used
        g_f = f_cot.clone() if g_f is None else g_f.add_(f_cot)
    if g_f is not None and opts.activation == "relu":
        _relu_backward_(g_f, f)
    return g_f, g_alpha


def _activation_backward(name: str | None, f: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Cotangent of ``h`` from that of ``f = act(h)``, by ``f`` (the kernel keeps ``f``, not ``h``)."""
    if name == "relu":
        return activation_vjp("relu", f, g, xp=kernel_xp)  # relu(h) > 0 exactly where h > 0
    if name == "softplus":
        return g * -torch.expm1(-f)  # sigmoid(h) = 1 - exp(-softplus(h)); also differentiable in f
    return g


def _backward(
    f: Any,
    alpha_logits: Any,
    mu: Any,
    sigma: Any,
    eps: Any,
    z_cot: Any,
    kl_cot: Any,
    f_cot: Any,
    opts: _Options,
    needs: tuple,
) -> tuple[Any, Any, Any, Any]:
    """``(g_h, g_a, g_mu, g_sigma)`` by the core's vjp, in differentiable torch operations."""
    dtype = compute_dtype(f)
    f32 = f.to(dtype)
    g = info_dropout_vjp(
        f32,
        alpha_logits.to(dtype),
        eps,
        None if z_cot is None else z_cot.to(dtype),
        kl_cot,
        spec=opts.spec,
        mu=0.0 if mu is None else mu,
        sigma=1.0 if sigma is None else sigma,
        training=True,
        xp=kernel_xp,
    )
    g_f = g.f if f_cot is None else g.f + f_cot.to(dtype)
    g_h = _activation_backward(opts.activation, f32, g_f).to(f.dtype)
    # g.mu / g.sigma are None unless the KL is in the loss (kl_cot given) and the prior is log-normal.
    g_mu = g.mu.sum_to_size(mu.shape) if g.mu is not None and needs[2] else None
    g_sigma = g.sigma.sum_to_size(sigma.shape) if g.sigma is not None and needs[3] else None
    return g_h, g.alpha_logits.to(alpha_logits.dtype), g_mu, g_sigma


class InfoDropoutFunction(torch.autograd.Function):
    """``(h, alpha_logits, mu, sigma, noise, generator, opts, seen) -> (z, kl[, f])`` of a training step.

    ``seen`` (or ``None``) is an object whose ``seen`` attribute backward sets: the KL bookkeeping
    drops the records of calls whose graph a backward has consumed (``_losses.py``).
    """

    @staticmethod
    def forward(
        ctx: Any,
        h: torch.Tensor,
        alpha_logits: torch.Tensor,
        mu: Any,
        sigma: Any,
        noise: torch.Tensor | None,
        generator: torch.Generator | None,
        opts: _Options,
        seen: Any,
    ) -> tuple[torch.Tensor, ...]:
        ctx.set_materialize_grads(False)
        ctx.seen = seen
        if noise is not None:
            state, eps = None, noise.to(device=h.device, dtype=compute_dtype(h))
        else:
            state = generator_state(h.device, generator)
            eps = draw_normal(h, generator)
        ctx.lean = _lean(opts, h, alpha_logits)
        if ctx.lean:  # it consumes eps's buffer: a copy when eps is kept for backward
            f, z, kl = _lean_forward(h, alpha_logits, eps if state is not None else eps.clone(), opts)
        else:
            f, z, kl = _forward(h, alpha_logits, mu, sigma, eps, opts, kernel_xp)
        # Keep f, except a ReLU input that is a view (the stacked maps' output, whose storage the
        # alpha logits keep anyway): then h, and f = relu(h) is redone in backward. A kept f is
        # also an output, so that a backward with create_graph=True can differentiate through it.
        ctx.redo_relu = opts.activation == "relu" and h._base is not None
        ctx.opts, ctx.state = opts, state
        kept = h if opts.activation is None or ctx.redo_relu else f
        ctx.save_for_backward(kept, alpha_logits, mu, sigma, eps if state is None else None)
        return (z, kl) if kept is h else (z, kl, f)

    @staticmethod
    def backward(ctx: Any, z_cot: Any, kl_cot: Any, f_cot: Any = None) -> tuple[Any, ...]:
        if ctx.seen is not None:
            ctx.seen.seen = True
        if z_cot is None and kl_cot is None and f_cot is None:
            return (None,) * 8
        kept, alpha_logits, mu, sigma, eps = ctx.saved_tensors
        opts = ctx.opts
        f = torch.relu(kept) if ctx.redo_relu else kept
        redrawn = eps is None
        if redrawn:
            eps = redraw(ctx.state, f)
        if kl_cot is not None and opts.reduce and opts.batched:
            kl_cot = kl_cot.reshape(kl_cot.shape + (1,) * (f.dim() - 1))
        if ctx.lean and not torch.is_grad_enabled():  # in place: not for a graph of the backward
            # it consumes eps's buffer: a copy of a kept eps (backward may run again)
            g_h, g_a = _lean_backward(f, alpha_logits, eps if redrawn else eps.clone(), z_cot, kl_cot, f_cot, opts)
            return g_h, g_a, None, None, None, None, None, None
        grads = _backward(f, alpha_logits, mu, sigma, eps, z_cot, kl_cot, f_cot, opts, ctx.needs_input_grad)
        return (*grads, None, None, None, None)


def _fusable(tensors: tuple) -> bool:
    """Whether :class:`InfoDropoutFunction` may run: plain reverse mode, no gradient for the noise.

    ``torch._C._are_functorch_transforms_active`` (torch 2.13, the check ``torch.autograd.Function``
    makes itself) is true under ``torch.func`` transforms, which need ``setup_context``-style
    functions; forward-mode AD would need a ``jvp``. Both take the core by plain autograd.
    """
    if torch._C._are_functorch_transforms_active():
        return False
    return all(t is None or fwAD.unpack_dual(t).tangent is None for t in tensors)


def info_dropout_kernel(
    h: torch.Tensor,
    alpha_logits: torch.Tensor,
    *,
    spec: InfoDropoutSpec,
    activation: str | None,
    reduce: bool,
    batched: bool = True,
    mu: torch.Tensor | None,
    sigma: torch.Tensor | None,
    noise: torch.Tensor | None,
    generator: torch.Generator | None,
    seen: Any = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(z, kl)`` of ``act(h)`` in training mode; through :class:`InfoDropoutFunction` when a gradient is needed.

    ``seen``: an object whose ``seen`` attribute the fused backward sets (ignored under ``torch.compile``,
    where a Python side effect in backward would run at trace time only).
    """
    opts = _Options(spec, activation, reduce, batched)
    tensors = (h, alpha_logits, mu, sigma)
    needs_grad = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)
    if needs_grad and (noise is None or not noise.requires_grad) and _fusable((*tensors, noise)):
        seen = None if torch.compiler.is_compiling() else seen
        out = InfoDropoutFunction.apply(h, alpha_logits, mu, sigma, noise, generator, opts, seen)
        return out[0], out[1]
    eps = draw_normal(h, generator) if noise is None else noise.to(device=h.device, dtype=compute_dtype(h))
    _, z, kl = _forward(h, alpha_logits, mu, sigma, eps, opts, kernel_xp)
    return z, kl
