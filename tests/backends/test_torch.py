"""PyTorch idioms: shapes, modes, generators, compile, autocast, state_dict, losses, errors."""

import io

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from idrop.backends.torch import (  # noqa: E402
    BinaryDropout,
    GaussianDropout,
    InfoDropout,
    LogNormalDropout,
    ib_loss,
    info_dropout,
    kl_loss,
)
from idrop.core import reference  # noqa: E402


@pytest.mark.parametrize(
    ("layer", "x_shape", "z_shape"),
    [
        (nn.Linear(7, 5), (4, 7), (4, 5)),
        (nn.Conv1d(3, 6, 3, stride=2, padding=1), (2, 3, 10), (2, 6, 5)),
        (nn.Conv2d(3, 6, 3, stride=2, padding=1), (2, 3, 8, 8), (2, 6, 4, 4)),
        (nn.Conv3d(2, 4, 3, padding=1), (2, 2, 4, 4, 4), (2, 4, 4, 4, 4)),
    ],
)
@pytest.mark.parametrize("activation", ["relu", "softplus"])
def test_shapes_and_kl(layer, x_shape, z_shape, activation):
    module = InfoDropout(layer, activation=activation)
    assert type(module.alpha_layer) is type(layer) and module.alpha_layer.weight is not layer.weight
    z = module(torch.randn(x_shape))
    assert z.shape == z_shape and module.kl.shape == (x_shape[0],)
    assert torch.isfinite(z).all() and torch.isfinite(module.kl).all()
    if activation == "relu":  # the log-uniform KL is >= 0 by construction (Prop. 1)
        assert (module.kl >= 0).all()


def test_eval_is_exactly_f_and_skips_kl_unless_asked():
    module = InfoDropout(nn.Linear(6, 4)).eval()
    x = torch.randn(3, 6)
    np.testing.assert_array_equal(module(x).detach(), torch.relu(module.layer(x)).detach())
    assert module.kl is None and kl_loss(module, 10).item() == 0.0
    module.eval_kl = True
    np.testing.assert_array_equal(module(x).detach(), torch.relu(module.layer(x)).detach())
    assert module.kl.shape == (3,)
    with pytest.raises(ValueError, match="argument `eval_kl`"):
        InfoDropout(nn.Linear(6, 4), eval_kl=1)


def test_generator_makes_draws_reproducible():
    module = InfoDropout(nn.Linear(6, 4, bias=True))
    with torch.no_grad():
        module.layer.bias.fill_(1.0)  # every unit active, so the noise shows
    x = torch.rand(3, 6)
    a = module(x, generator=torch.Generator().manual_seed(0))
    b = module(x, generator=torch.Generator().manual_seed(0))
    c = module(x)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(a, c)


def test_injected_noise_matches_reference():
    module = InfoDropout(nn.Linear(5, 3), activation="softplus", mean_one=True).double()
    x, eps = torch.randn(4, 5, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    z = module(x, noise=eps)
    h = module.layer(x).detach().numpy()
    a = module.alpha_layer(x).detach().numpy()
    z_ref, kl_ref = reference.info_dropout(
        reference.act("softplus", h), a, noise=eps.numpy(), activation="softplus", mean_one=True
    )
    np.testing.assert_allclose(z.detach().numpy(), z_ref, rtol=1e-12)
    np.testing.assert_allclose(module.kl.detach().numpy(), kl_ref.sum(1), rtol=1e-12)


def test_training_step_reduces_ib_loss():
    torch.manual_seed(0)
    model = nn.Sequential(
        InfoDropout(nn.Linear(10, 32)), InfoDropout(nn.Linear(32, 32), activation="softplus"), nn.Linear(32, 2)
    )
    x, y = torch.randn(64, 10), torch.randint(0, 2, (64,))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(60):
        loss = ib_loss(nn.functional.cross_entropy(model(x), y), model, beta=1.0, n_train=64)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
    lognormal = model[1]
    assert lognormal.mu.grad is not None and lognormal.sigma.item() > 0
    assert kl_loss(model, 64).item() > 0


def test_kl_loss_sums_layers():
    model = nn.Sequential(InfoDropout(nn.Linear(4, 4)), InfoDropout(nn.Linear(4, 4)))
    model(torch.rand(3, 4))
    want = (model[0].kl.mean() + model[1].kl.mean()) / 100
    torch.testing.assert_close(kl_loss(model, 100), want)
    torch.testing.assert_close(ib_loss(torch.tensor(2.0), model, 0.5, 100), 2.0 + 0.5 * want)


def test_state_dict_round_trip():
    a = InfoDropout(nn.Conv2d(3, 4, 3), activation="softplus")
    with torch.no_grad():
        a.mu.fill_(0.3)
        a.log_sigma.fill_(0.2)
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    b = InfoDropout(nn.Conv2d(3, 4, 3), activation="softplus")
    b.load_state_dict(torch.load(io.BytesIO(buf.getvalue())))
    x, eps = torch.randn(2, 3, 6, 6), torch.randn(2, 4, 4, 4)
    torch.testing.assert_close(a(x, noise=eps), b(x, noise=eps), rtol=0, atol=0)
    torch.testing.assert_close(a.kl, b.kl, rtol=0, atol=0)
    assert set(a.state_dict()) == {
        "layer.weight",
        "layer.bias",
        "alpha_layer.weight",
        "alpha_layer.bias",
        "mu",
        "log_sigma",
    }


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_keeps_kl_in_float32(dtype):
    module = InfoDropout(nn.Linear(16, 8), activation="softplus")
    with torch.autocast("cpu", dtype=dtype):
        z = module(torch.randn(4, 16) * 100)  # large inputs: no overflow, no NaN
    assert z.dtype == dtype and module.kl.dtype == torch.float32
    assert torch.isfinite(z).all() and torch.isfinite(module.kl).all()


def test_half_precision_layer_draws_float32_noise():
    module = InfoDropout(nn.Linear(8, 8)).to(torch.bfloat16)
    z = module(torch.randn(2, 8, dtype=torch.bfloat16))
    assert z.dtype == torch.bfloat16 and module.kl.dtype == torch.float32


def test_torch_compile_matches_eager():
    torch._dynamo.reset()
    model = nn.Sequential(InfoDropout(nn.Linear(6, 5)), nn.Linear(5, 2))
    compiled = torch.compile(model)
    x, eps = torch.randn(3, 6), torch.randn(3, 5)
    eager = model[1](model[0](x, noise=eps))
    eager_kl = model[0].kl.clone()
    compiled_layer = torch.compile(model[0])
    z = compiled_layer(x, noise=eps)
    torch.testing.assert_close(model[1](z), eager)
    torch.testing.assert_close(model[0].kl, eager_kl)  # the .kl side effect survives compile
    y = compiled(x)  # sampling path under compile
    assert y.shape == (3, 2) and torch.isfinite(y).all()


def test_functional_matches_module_and_validates():
    f, a = torch.rand(2, 3), torch.randn(2, 3)
    z, kl = info_dropout(f, a, training=False)
    assert torch.equal(z, f) and kl.shape == f.shape
    with pytest.raises(ValueError, match="argument `alpha_layer`"):
        info_dropout(f, torch.randn(2, 4))
    with pytest.raises(TypeError, match="argument `f`"):
        info_dropout(torch.ones(2, 3, dtype=torch.int64), a)


@pytest.mark.parametrize("cls", [BinaryDropout, GaussianDropout, LogNormalDropout])
def test_baselines_share_the_interface(cls):
    module = cls(nn.Linear(5, 4))
    x = torch.randn(3, 5)
    assert module(x).shape == (3, 4) and module.kl is None
    module.eval()
    torch.testing.assert_close(module(x), torch.relu(module.layer(x)))


def test_binary_dropout_injected_uniforms():
    module = BinaryDropout(nn.Linear(2, 2), rate=0.5)
    with torch.no_grad():
        module.layer.weight.copy_(torch.eye(2))
        module.layer.bias.zero_()
    z = module(torch.tensor([[1.0, 2.0]]), noise=torch.tensor([[0.2, 0.7]]))
    torch.testing.assert_close(z, torch.tensor([[0.0, 4.0]]))


def test_other_modules_need_an_alpha_layer():
    with pytest.raises(ValueError, match="argument `alpha_layer`"):
        InfoDropout(nn.Identity())
    module = InfoDropout(nn.Sequential(nn.Linear(3, 3)), alpha_layer=nn.Linear(3, 3))
    assert module(torch.rand(2, 3)).shape == (2, 3)


def test_extra_repr_names_the_options():
    text = repr(InfoDropout(nn.Linear(2, 2), max_alpha=0.5))
    assert "prior='log-uniform'" in text and "max_alpha=0.5" in text


# -- the fused kernel (idrop/backends/_torch_kernel.py) ------------------------------------------


def _grads(module, x, **kw):
    module.zero_grad(set_to_none=True)
    x = x.detach().requires_grad_(True)
    z = module(x, **kw)
    ((z * torch.linspace(-1, 1, z.numel(), dtype=z.dtype).reshape(z.shape)).sum() + module.kl.sum()).backward()
    return z.detach(), module.kl.detach(), [x.grad] + [p.grad for p in module.parameters()]


def _unfused_grads(module, x, eps):
    """The same step by plain autograd through the core (the adapter before the kernel)."""
    from idrop.backends.torch import xp
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
    assert module._stacks()
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


def test_double_backward_is_refused():
    module = InfoDropout(nn.Linear(4, 3))
    x = torch.randn(2, 4, requires_grad=True)
    z = module(x)
    (g,) = torch.autograd.grad((z * z).sum(), x, create_graph=True)  # the cotangent 2z needs a gradient
    with pytest.raises(RuntimeError, match="once_differentiable"):
        g.sum().backward()


def test_torch_compile_dynamic_shapes_trains():
    torch._dynamo.reset()
    module = InfoDropout(nn.Linear(6, 5), activation="softplus", prior="log-normal")
    step = torch.compile(lambda x: ib_loss(module(x).sum(), module, 1.0, 10), dynamic=True)
    for batch in (3, 7):
        module.zero_grad(set_to_none=True)
        step(torch.randn(batch, 6)).backward()
        assert module.kl.shape == (batch,)
        assert all(torch.isfinite(p.grad).all() for p in module.parameters())


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


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_backward(dtype):
    module = InfoDropout(nn.Conv2d(3, 4, 3), activation="softplus")
    x = torch.randn(2, 3, 6, 6, requires_grad=True)
    with torch.autocast("cpu", dtype=dtype):
        z = module(x)
        loss = ib_loss(z.float().mean(), module, 1.0, 10)
    loss.backward()
    assert z.dtype == dtype and x.grad.dtype == torch.float32
    assert all(torch.isfinite(p.grad).all() for p in module.parameters()) and torch.isfinite(x.grad).all()
