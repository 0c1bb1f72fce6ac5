"""The fused training kernel (idrop/backends/torch/_kernel.py): values and gradients against plain
autograd through the core, the in-place lean path, double backward, kinks and transforms."""

import math

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from idrop.backends.torch import InfoDropout, ib_loss  # noqa: E402
from idrop.backends.torch._maps import stacks  # noqa: E402


def _grads(module, x, **kw):
    module.zero_grad(set_to_none=True)
    x = x.detach().requires_grad_(True)
    z = module(x, **kw)
    ((z * torch.linspace(-1, 1, z.numel(), dtype=z.dtype).reshape(z.shape)).sum() + module.kl.sum()).backward()
    return z.detach(), module.kl.detach(), [x.grad] + [p.grad for p in module.parameters()]


def _unfused_grads(module, x, eps):
    """The same step by plain autograd through the core (the adapter before the kernel)."""
    from idrop.backends.torch._namespace import xp
    from idrop.core import functional
    from idrop.core._xp import activation

    module.zero_grad(set_to_none=True)
    x = x.detach().requires_grad_(True)
    h = module.layer(x)
    f = activation(module.spec.activation, h, xp=xp)
    lognormal = module.spec.prior == "log-normal"
    z, kl = functional.info_dropout(
        f,
        module.alpha_layer(x),
        eps,
        spec=module.spec,
        xp=xp,
        **({"mu": module.mu, "sigma": module.sigma} if lognormal else {}),
    )
    kl = kl.flatten(1).sum(1)
    ((z * torch.linspace(-1, 1, z.numel(), dtype=z.dtype).reshape(z.shape)).sum() + kl.sum()).backward()
    return z.detach(), kl.detach(), [x.grad] + [p.grad for p in module.parameters()]


@pytest.mark.parametrize(
    ("layer", "x_shape"),
    [(nn.Linear(7, 5), (4, 7)), (nn.Conv2d(3, 6, 3, stride=2, padding=1), (2, 3, 8, 8))],
)
@pytest.mark.parametrize(
    "options",
    [
        {"activation": "relu"},
        {"activation": "softplus"},
        {"activation": "relu", "mean_one": True, "zero_units": "mask"},
        {"activation": "relu", "prior": "log-normal", "mean_one": True},
    ],
)
@pytest.mark.parametrize("drawn", [False, True], ids=["injected-noise", "drawn-noise"])
def test_kernel_matches_plain_autograd(layer, x_shape, options, drawn):
    """Both kernel paths (the core's formulas; for the default law, the in-place lean path), with
    injected and with drawn (and redrawn) noise, give plain autograd's values and gradients."""
    torch.manual_seed(0)
    module = InfoDropout(layer, **options).double()
    if module.spec.prior == "log-normal":
        with torch.no_grad():
            module.mu.fill_(0.3)
            module.log_sigma.fill_(-0.2)
    x = torch.randn(x_shape, dtype=torch.float64)
    eps = torch.randn(module.layer(x).shape, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    if drawn:
        z, kl, grads = _grads(module, x, generator=torch.Generator().manual_seed(7))
    else:
        z, kl, grads = _grads(module, x, noise=eps)
    z0, kl0, grads0 = _unfused_grads(module, x, eps)
    torch.testing.assert_close(z, z0, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(kl, kl0, rtol=1e-12, atol=1e-12)
    for g, g0 in zip(grads, grads0, strict=True):
        torch.testing.assert_close(g, g0, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("use_generator", [False, True])
@pytest.mark.parametrize("layer", [nn.Linear(7, 5), nn.Conv2d(3, 6, 3, padding=1)])
def test_redrawn_noise_gives_the_gradients_of_the_drawn_noise(layer, use_generator):
    """eps is not kept for backward but drawn again from the saved generator state: bit for bit the same."""
    module = InfoDropout(layer, activation="relu")
    x = torch.randn((4, 7) if isinstance(layer, nn.Linear) else (2, 3, 6, 6))
    seed = 1234

    def gen():
        if use_generator:
            return {"generator": torch.Generator().manual_seed(seed)}
        torch.manual_seed(seed)
        return {}

    z, _kl, grads = _grads(module, x, **gen())
    eps = torch.randn(z.shape, **({"generator": torch.Generator().manual_seed(seed)} if use_generator else {}))
    if not use_generator:
        torch.manual_seed(seed)
        eps = torch.randn(z.shape)
    z1, _kl1, grads1 = _grads(module, x, noise=eps)
    torch.testing.assert_close(z, z1, rtol=0, atol=0)
    for g, g1 in zip(grads, grads1, strict=True):
        torch.testing.assert_close(g, g1, rtol=0, atol=0)
    # The draw advanced the default generator exactly once (backward used a private one).
    torch.manual_seed(seed)
    _grads(module, x)
    after = torch.rand(3)
    torch.manual_seed(seed)
    torch.randn(z.shape)
    torch.testing.assert_close(after, torch.rand(3), rtol=0, atol=0)


@pytest.mark.parametrize("inject", [False, True])
def test_lean_kernel_leaves_noise_intact_and_backward_repeatable(inject):
    """The in-place path works on its own buffers: injected noise is not modified, and a second
    backward (retain_graph) gives the same gradients."""
    module = InfoDropout(nn.Linear(7, 5), activation="relu")
    x = torch.randn(4, 7)
    noise = torch.randn(4, 5) if inject else None
    before = None if noise is None else noise.clone()
    z = module(x, noise=noise, generator=None if inject else torch.Generator().manual_seed(3))
    loss = z.sum() + module.kl.sum()
    first = torch.autograd.grad(loss, list(module.parameters()), retain_graph=True)
    second = torch.autograd.grad(loss, list(module.parameters()))
    for g1, g2 in zip(first, second, strict=True):
        torch.testing.assert_close(g1, g2, rtol=0, atol=0)
    if inject:
        torch.testing.assert_close(noise, before, rtol=0, atol=0)


def _saved_bytes(fn):
    storages = {}

    def pack(t):
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(storages.values())


def test_training_keeps_only_input_pre_activation_and_logits():
    module = InfoDropout(nn.Linear(64, 32, bias=False))
    x = torch.randn(16, 64)
    saved = _saved_bytes(lambda: ib_loss(module(x).mean(), module, 1.0, 100))
    assert saved == 4 * (16 * 64 + 2 * 16 * 32)  # x, h and the alpha logits; not eps, alpha, f, ...


def test_stacked_convolution_matches_two_convolutions_and_keeps_state_dict():
    torch.manual_seed(0)
    module = InfoDropout(nn.Conv2d(3, 4, 3, padding=1), norm=nn.BatchNorm2d(4))
    assert module._stack and stacks(module.layer, module.alpha_layer)
    assert set(module.state_dict()) >= {"layer.weight", "layer.bias", "alpha_layer.weight", "alpha_layer.bias"}
    x, eps = torch.randn(2, 3, 5, 5), torch.randn(2, 4, 5, 5)
    z, kl, grads = _grads(module, x, noise=eps)
    module._stack = False
    z1, kl1, grads1 = _grads(module, x, noise=eps)
    torch.testing.assert_close(z, z1)
    torch.testing.assert_close(kl, kl1)
    for g, g1 in zip(grads, grads1, strict=True):
        torch.testing.assert_close(g, g1)
    assert not InfoDropout(nn.Conv2d(4, 4, 3, groups=2))._stack
    assert not InfoDropout(nn.Linear(4, 4))._stack


def test_torch_compile_kernel_matches_eager_gradients():
    torch._dynamo.reset()
    module = InfoDropout(nn.Conv2d(3, 4, 3, padding=1))
    x, eps = torch.randn(2, 3, 5, 5), torch.randn(2, 4, 5, 5)
    z, _kl, grads = _grads(module, x, noise=eps)
    compiled = torch.compile(module)
    module.zero_grad(set_to_none=True)
    xc = x.clone().requires_grad_(True)
    zc = compiled(xc, noise=eps)
    ((zc * torch.linspace(-1, 1, zc.numel()).reshape(zc.shape)).sum() + module.kl.sum()).backward()
    torch.testing.assert_close(zc.detach(), z)
    for g, gc in zip(grads, [xc.grad] + [p.grad for p in module.parameters()], strict=True):
        torch.testing.assert_close(gc, g, rtol=1e-5, atol=1e-6)


# -- every option, every part of the loss (a log-normal layer crashed without the KL in the loss) --


def _plain(module, x, eps):
    """``(z, per-sample kl)`` of ``module``'s call by plain autograd through the core."""
    from idrop.backends.torch._namespace import xp
    from idrop.core import functional
    from idrop.core._xp import activation

    f = activation(module.spec.activation, module.layer(x), xp=xp)
    lognormal = module.spec.prior == "log-normal"
    z, kl = functional.info_dropout(
        f,
        module.alpha_layer(x),
        eps,
        spec=module.spec,
        training=module.training,
        xp=xp,
        **({"mu": module.mu, "sigma": module.sigma} if lognormal else {}),
    )
    return z, kl.sum(-1)


_LOSSES = {
    "z": lambda z, kl, m: (z * torch.linspace(-1, 1, z.numel(), dtype=z.dtype).reshape(z.shape)).sum(),
    "kl": lambda z, kl, m: kl.sum(),
    "both": lambda z, kl, m: _LOSSES["z"](z, kl, m) + kl.sum(),
    "sigma": lambda z, kl, m: 2.0 * m.sigma,  # uses neither output: the kernel's backward never runs
}


def _sweep():
    from idrop.core.spec import InfoDropoutSpec

    for activation in ("relu", "softplus"):
        for prior in ("log-uniform", "log-normal"):
            for mean_one in (False, True):
                for zero_units in ("count", "mask"):
                    options = dict(activation=activation, prior=prior, mean_one=mean_one, zero_units=zero_units)
                    for eval_kl in (False, True):
                        for training in (True, False):
                            for loss in _LOSSES:
                                if loss in ("kl", "both") and not (training or eval_kl):
                                    continue  # no KL to put in the loss
                                if loss == "sigma" and InfoDropoutSpec(**options).prior != "log-normal":
                                    continue  # no sigma
                                ids = [activation, prior, f"mean_one={mean_one}", zero_units, f"eval_kl={eval_kl}"]
                                ids += ["train" if training else "eval", loss]
                                yield pytest.param(options, eval_kl, training, loss, id="-".join(ids))


@pytest.mark.parametrize(("options", "eval_kl", "training", "loss"), list(_sweep()))
def test_every_option_and_every_loss_gives_plain_autograd_gradients(options, eval_kl, training, loss):
    torch.manual_seed(0)
    module = InfoDropout(nn.Linear(4, 3), eval_kl=eval_kl, **options).double().train(training)
    if module.spec.prior == "log-normal":
        with torch.no_grad():
            module.mu.fill_(0.2)
            module.log_sigma.fill_(0.1)
    x, eps = torch.randn(5, 4, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)

    def grads(call):
        module.zero_grad(set_to_none=True)
        xg = x.clone().requires_grad_(True)
        _LOSSES[loss](*call(xg), module).backward()
        return [xg.grad] + [p.grad for p in module.parameters()]

    got = grads(lambda xg: (module(xg, noise=eps), module.kl))
    want = grads(lambda xg: _plain(module, xg, eps))
    for g, w in zip(got, want, strict=True):
        if g is None or w is None:  # not in the loss's graph: no gradient, or an exact 0
            assert all(t is None or not t.any() for t in (g, w))
        else:
            torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-12)


# -- second order: the backward is differentiable (gradient penalties, Hessian-vector products) ----


_SECOND_ORDER_SPECS = [
    {"activation": "relu"},
    {"activation": "softplus"},
    {"activation": "relu", "mean_one": True, "zero_units": "mask"},
    {"activation": "relu", "prior": "log-normal", "mean_one": True},
    {"activation": "softplus", "prior": "log-uniform"},
]


def _kernel_inputs(spec, activation):
    g = torch.Generator().manual_seed(3)
    h = torch.randn(3, 4, dtype=torch.float64, generator=g)
    if activation is None:  # the kernel's input is f itself: positive, above the log floor
        h = h.abs() + 0.1
    inputs = [h, torch.randn(3, 4, dtype=torch.float64, generator=g)]
    if spec.prior == "log-normal":
        inputs += [torch.tensor(0.3, dtype=torch.float64), torch.tensor(0.8, dtype=torch.float64)]
    return [t.requires_grad_(True) for t in inputs]


def _kernel_fn(spec, activation, drawn):
    from idrop.backends.torch._kernel import info_dropout_kernel

    eps = torch.randn(3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(9))

    def fn(h, a, mu=None, sigma=None):
        draw = {"noise": None, "generator": torch.Generator().manual_seed(9)} if drawn else {"noise": eps}
        kw = {"generator": None, **draw}
        return info_dropout_kernel(h, a, spec=spec, activation=activation, reduce=True, mu=mu, sigma=sigma, **kw)

    return fn, eps


def _plain_fn(spec, activation, eps):
    from idrop.backends.torch._namespace import xp
    from idrop.core import functional
    from idrop.core._xp import activation as act

    def fn(h, a, mu=0.0, sigma=1.0):
        f = h if activation is None else act(activation, h, xp=xp)
        z, kl = functional.info_dropout(f, a, eps, spec=spec, mu=mu, sigma=sigma, xp=xp)
        return z, kl.sum(-1)

    return fn


@pytest.mark.parametrize("options", _SECOND_ORDER_SPECS, ids=lambda o: "-".join(map(str, o.values())))
@pytest.mark.parametrize("activation", ["in-kernel", None])
@pytest.mark.parametrize("drawn", [False, True], ids=["injected-noise", "drawn-noise"])
def test_kernel_second_order_is_plain_autograd_of_the_core(options, activation, drawn):
    """gradcheck and gradgradcheck pass, and a Hessian-vector product is plain autograd's (float64)."""
    from idrop.core.spec import InfoDropoutSpec

    spec = InfoDropoutSpec(**options)
    activation = spec.activation if activation else None
    fn, eps = _kernel_fn(spec, activation, drawn)
    inputs = _kernel_inputs(spec, activation)
    assert torch.autograd.gradcheck(fn, inputs)
    assert torch.autograd.gradgradcheck(fn, inputs)

    def hvp(f):
        z, kl = f(*inputs)
        w = torch.linspace(-1, 1, z.numel(), dtype=z.dtype).reshape(z.shape)
        grads = torch.autograd.grad((z * w).sum() + (kl * kl).sum(), inputs, create_graph=True)
        return torch.autograd.grad(sum((g * g).sum() for g in grads), inputs)

    for got, want in zip(hvp(fn), hvp(_plain_fn(spec, activation, eps)), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    ("layer", "x_shape"),
    [(nn.Linear(5, 4), (3, 5)), (nn.Conv2d(2, 3, 3, padding=1), (2, 2, 4, 4))],  # the conv: stacked maps
)
@pytest.mark.parametrize("options", _SECOND_ORDER_SPECS, ids=lambda o: "-".join(map(str, o.values())))
def test_gradient_penalty_matches_plain_autograd(layer, x_shape, options):
    """``|d loss / dx|^2`` differentiated again, through the layer: plain autograd's parameter gradients."""
    torch.manual_seed(0)
    module = InfoDropout(layer, **options).double()
    x = torch.randn(x_shape, dtype=torch.float64)
    eps = torch.randn(module.layer(x).shape, dtype=torch.float64)

    def penalty_grads(call):
        module.zero_grad(set_to_none=True)
        xg = x.clone().requires_grad_(True)
        z, kl = call(xg)
        (gx,) = torch.autograd.grad(
            _LOSSES["both"](z, kl.flatten(1).sum(1) if kl.dim() > 1 else kl, module), xg, create_graph=True
        )
        (gx * gx).sum().backward()
        return [p.grad for p in module.parameters()]

    def plain(xg):
        from idrop.backends.torch._namespace import xp
        from idrop.core import functional
        from idrop.core._xp import activation

        f = activation(module.spec.activation, module.layer(xg), xp=xp)
        ln = module.spec.prior == "log-normal"
        kw = {"mu": module.mu, "sigma": module.sigma} if ln else {}
        return functional.info_dropout(f, module.alpha_layer(xg), eps, spec=module.spec, xp=xp, **kw)

    got = penalty_grads(lambda xg: (module(xg, noise=eps), module.kl))
    want = penalty_grads(plain)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-9, atol=1e-12)


# -- kinks: ReLU'(0) = 0 and the log floor passes no gradient (docs/design-notes.md section 4) ----


@pytest.mark.parametrize("options", [{}, {"mean_one": True}], ids=["lean-path", "core-path"])
@pytest.mark.parametrize("mode", ["train", "eval", "eval-kl"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_relu_derivative_at_zero_is_zero(options, mode, dtype):
    module = InfoDropout(nn.Linear(3, 2), eval_kl=mode == "eval-kl", **options).to(dtype).train(mode == "train")
    with torch.no_grad():
        module.layer.weight.zero_()
        module.layer.bias.zero_()  # h == 0 exactly
    z = module(torch.randn(4, 3, dtype=dtype), noise=torch.zeros(4, 2, dtype=dtype))
    z.sum().backward()
    assert torch.equal(module.layer.bias.grad, torch.zeros(2, dtype=dtype))
    assert torch.equal(module.layer.weight.grad, torch.zeros(2, 3, dtype=dtype))


@pytest.mark.parametrize("mean_one", [False, True])
@pytest.mark.parametrize("training", [True, False])
def test_log_floor_passes_no_gradient(mean_one, training):
    module = InfoDropout(nn.Linear(3, 2), activation="softplus", mean_one=mean_one, eval_kl=True).train(training)
    with torch.no_grad():
        module.layer.weight.zero_()
        module.layer.bias.fill_(-30.0)  # f = softplus(-30) ~ 1e-13, under the 1e-4 floor
    module(torch.randn(4, 3), noise=torch.randn(4, 2))
    module.kl.sum().backward()
    assert torch.equal(module.layer.bias.grad, torch.zeros(2))
    assert torch.equal(module.layer.weight.grad, torch.zeros(2, 3))
    assert module.log_sigma.grad.item() != 0  # the KL did reach the backward


# -- the lean in-place path is the core's formulas, bit for bit -----------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("activation", ["relu", None])
@pytest.mark.parametrize("reduce", [True, False])
def test_lean_forward_is_the_core_bit_for_bit(dtype, activation, reduce):
    """z and the log-uniform KL of the in-place path equal the core's (plain namespace), every bit."""
    from idrop.backends.torch._kernel import _lean, _lean_forward, _Options
    from idrop.backends.torch._namespace import xp
    from idrop.core import functional
    from idrop.core._xp import relu
    from idrop.core.loss import per_sample_kl
    from idrop.core.spec import InfoDropoutSpec

    g = torch.Generator().manual_seed(1)
    h, a, eps = (torch.randn(8, 16, dtype=dtype, generator=g) * 3 for _ in range(3))
    for spec in (InfoDropoutSpec(), InfoDropoutSpec(max_alpha=0.37, alpha_min=0.013)):
        opts = _Options(spec, activation, reduce, True)
        assert _lean(opts, h, a)
        f, z, kl = _lean_forward(h, a, eps.clone(), opts)
        f0 = h if activation is None else relu(h, xp=xp)
        z0, kl0 = functional.info_dropout(f0, a, eps, spec=spec, xp=xp)
        kl0 = per_sample_kl(kl0, xp=xp) if reduce else kl0
        assert torch.equal(f, f0) and torch.equal(z, z0) and torch.equal(kl, kl0)


# -- transforms that a custom autograd.Function cannot serve take plain autograd -------------------


def test_torch_func_grad_and_jvp_match_autograd():
    torch.manual_seed(0)
    module = InfoDropout(nn.Linear(4, 3), activation="softplus").double()
    x, eps = torch.randn(5, 4, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    params = {k: v.detach() for k, v in module.named_parameters()}

    def loss(p):
        z = torch.func.functional_call(module, p, (x,), {"noise": eps})
        return (z * z).sum() + module.kl.sum()

    got = torch.func.grad(loss)(params)
    want = torch.autograd.grad(loss(dict(module.named_parameters())), list(module.parameters()))
    for name, w in zip(params, want, strict=True):
        torch.testing.assert_close(got[name], w, rtol=1e-12, atol=1e-12)
    v = torch.randn_like(x)
    _, tangent = torch.func.jvp(lambda xx: module(xx, noise=eps), (x,), (v,))
    # torch.autograd.functional.jvp differentiates the kernel's backward (the double-backward trick).
    _, want_tangent = torch.autograd.functional.jvp(lambda xx: module(xx, noise=eps), x, v)
    torch.testing.assert_close(tangent, want_tangent, rtol=1e-12, atol=1e-12)


def test_injected_noise_gets_its_gradient():
    module = InfoDropout(nn.Linear(4, 3)).double()
    x = torch.randn(5, 4, dtype=torch.float64)
    eps = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    z = module(x, noise=eps)
    z.sum().backward()
    alpha = 1e-3 + 0.7 * torch.sigmoid(module.alpha_layer(x)).detach()
    torch.testing.assert_close(eps.grad, z.detach() * alpha, rtol=1e-12, atol=0)
    assert math.isfinite(eps.grad.sum().item())


def test_torch_func_vmap_jacfwd_and_hessian_match_the_loop():
    """vmap over batches (injected noise, and drawn with randomness="different"), jacfwd = jacrev, hessian."""
    torch.manual_seed(0)
    module = InfoDropout(nn.Linear(4, 3), activation="softplus").double()
    x, eps = torch.randn(6, 5, 4, dtype=torch.float64), torch.randn(6, 5, 3, dtype=torch.float64)
    got = torch.func.vmap(lambda xx, ee: module(xx, noise=ee))(x, eps)
    torch.testing.assert_close(got, torch.stack([module(x[i], noise=eps[i]) for i in range(6)]), rtol=1e-12, atol=0)
    drawn = torch.func.vmap(module, randomness="different")(x)
    assert drawn.shape == (6, 5, 3) and not torch.equal(drawn[0], drawn[1])
    fn = lambda xx: module(xx, noise=eps[0])  # noqa: E731
    torch.testing.assert_close(torch.func.jacfwd(fn)(x[0]), torch.func.jacrev(fn)(x[0]), rtol=1e-10, atol=1e-12)
    hess = torch.func.hessian(lambda xx: fn(xx).sum())(x[0])
    want = torch.autograd.functional.hessian(lambda xx: fn(xx).sum(), x[0])
    torch.testing.assert_close(hess, want, rtol=1e-10, atol=1e-12)
