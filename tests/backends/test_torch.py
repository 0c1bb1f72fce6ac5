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
    assert kl_loss(model, 64).item() == 0  # ib_loss collected the records of the last step
    model(x)
    assert kl_loss(model, 64).item() > 0


def test_kl_loss_sums_layers():
    model = nn.Sequential(InfoDropout(nn.Linear(4, 4)), InfoDropout(nn.Linear(4, 4)))
    model(torch.rand(3, 4))
    want = (model[0].kl.mean() + model[1].kl.mean()) / 100
    torch.testing.assert_close(kl_loss(model, 100), want)
    model(torch.rand(3, 4))
    want = (model[0].kl.mean() + model[1].kl.mean()) / 100
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


def test_torch_compile_dynamic_shapes_trains():
    torch._dynamo.reset()
    module = InfoDropout(nn.Linear(6, 5), activation="softplus", prior="log-normal")
    step = torch.compile(lambda x: ib_loss(module(x).sum(), module, 1.0, 10), dynamic=True)
    for batch in (3, 7):
        module.zero_grad(set_to_none=True)
        step(torch.randn(batch, 6)).backward()
        assert module.kl.shape == (batch,)
        assert all(torch.isfinite(p.grad).all() for p in module.parameters())


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


def test_public_names_are_frozen_and_resolve():
    import idrop.backends.torch as backend

    assert backend.__all__ == [
        "AlphaStats",
        "BetaScheduler",
        "BinaryDropout",
        "GaussianDropout",
        "IdropWarning",
        "InfoDropout",
        "LogNormalDropout",
        "MCPrediction",
        "alpha_from_logits",
        "alpha_map",
        "alpha_stats",
        "beta_schedule",
        "binary_dropout",
        "diagnostics",
        "export",
        "gaussian_dropout",
        "gaussian_kl",
        "ib_loss",
        "info_dropout",
        "kl_loss",
        "kl_map",
        "kl_maps",
        "lognormal_dropout",
        "mc_predict",
        "plot_kl_maps",
        "sampling",
        "noise_shapes",
        "strip_info_dropout",
        "to_info_dropout",
    ]
    assert all(getattr(backend, name) is not None for name in backend.__all__)
    from idrop.backends.torch._kernel import info_dropout_kernel
    from idrop.backends.torch._namespace import xp

    assert callable(info_dropout_kernel) and xp.sum(torch.ones(3), axis=()).shape == (3,)


def test_importing_the_adapter_leaves_the_environment_alone():
    import subprocess
    import sys

    code = (
        "import os; before = dict(os.environ); import idrop.backends.torch; "
        "assert dict(os.environ) == before, set(os.environ.items()) ^ set(before.items())"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
