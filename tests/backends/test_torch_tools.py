"""torch tools: mc_predict and sampling, KL maps and alpha statistics, logging, beta schedules."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from torch.nn.modules.dropout import _DropoutNd  # noqa: E402

from idrop.backends.torch import (  # noqa: E402
    BetaScheduler,
    BinaryDropout,
    IdropWarning,
    InfoDropout,
    alpha_map,
    alpha_stats,
    beta_schedule,
    diagnostics,
    info_dropout,
    kl_map,
    kl_maps,
    mc_predict,
    sampling,
)
from idrop.core import diagnostics as core_diag  # noqa: E402


def _net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    net = nn.Sequential(InfoDropout(nn.Linear(6, 16), norm=nn.BatchNorm1d(16)), nn.Dropout(0.5), nn.Linear(16, 4))
    net.train()
    net(torch.randn(32, 6))  # non-trivial running statistics
    return net


X = torch.randn(5, 6, generator=torch.Generator().manual_seed(1))


def test_mc_predict_is_seeded_and_independent_of_chunking() -> None:
    net = _net()
    a = mc_predict(net, X, 9, chunk=2, seed=3)
    b = mc_predict(net, X, 9, chunk=None, seed=3)
    c = mc_predict(net, X, 9, chunk=2, seed=3)
    d = mc_predict(net, X, 9, seed=4)
    for u, v, w in zip(a, b, c):
        torch.testing.assert_close(u, v, rtol=1e-5, atol=1e-6)
        assert torch.equal(u, w)
    assert not torch.equal(a.mean, d.mean)
    assert a.mean.shape == a.std.shape == (5, 4) and a.entropy.shape == a.mutual_information.shape == (5,)
    torch.testing.assert_close(a.mean.sum(-1), torch.ones(5), rtol=1e-5, atol=1e-6)
    assert (a.std > 0).any() and (a.mutual_information >= 0).all()


def test_mc_predict_keeps_batch_norm_and_plain_dropout_in_eval_and_restores_modes() -> None:
    net = _net()
    bn = net[0].norm
    before = bn.running_mean.clone(), bn.num_batches_tracked.clone()
    net.train()
    out = mc_predict(net, X, 4, seed=0)
    assert torch.equal(bn.running_mean, before[0]) and torch.equal(bn.num_batches_tracked, before[1])
    assert all(m.training for m in net.modules())  # modes restored
    # With the noise as small as the layer allows, the MC mean is the evaluation output (BN in eval).
    tiny = _net()
    tiny[0].spec = type(tiny[0].spec)(max_alpha=1e-6, alpha_min=1e-6)
    tiny.eval()
    ref = torch.softmax(tiny(X), -1)
    torch.testing.assert_close(mc_predict(tiny, X, 3).mean, ref, rtol=1e-4, atol=1e-5)
    assert out.mean.dtype == torch.float32


def test_mc_predict_edge_inputs_and_probabilities() -> None:
    net = _net().eval()
    empty = mc_predict(net, X[:0], 3)
    assert empty.mean.shape == (0, 4) and empty.mutual_information.shape == (0,)
    one = mc_predict(net, X[0][None], 3)
    assert one.mean.shape == (1, 4)
    probs = nn.Sequential(net, nn.Softmax(-1))
    torch.testing.assert_close(
        mc_predict(probs, X, 4, from_logits=False).mean, mc_predict(net, X, 4).mean, rtol=1e-5, atol=1e-6
    )
    assert mc_predict(net, X, 2, seed=None).mean.shape == (5, 4)


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"n_samples": 0}, ValueError, "n_samples"),
        ({"n_samples": 2.0}, ValueError, "n_samples"),
        ({"n_samples": 2, "chunk": 0}, ValueError, "chunk"),
        ({"n_samples": 2, "seed": -1}, ValueError, "seed"),
        ({"n_samples": 2, "from_logits": "yes"}, ValueError, "from_logits"),
    ],
)
def test_mc_predict_bad_arguments(kwargs: dict, error: type, name: str) -> None:
    with pytest.raises(error, match=f"argument `{name}`"):
        mc_predict(_net(), X, **kwargs)


def test_mc_predict_refuses_a_list() -> None:
    with pytest.raises(TypeError, match="argument `x`"):
        mc_predict(_net(), X.tolist(), 2)


def test_sampling_turns_only_the_noise_on() -> None:
    net = _net()
    net.train()
    with sampling(net):
        assert net[0].training and not net[0].norm.training and not net[1].training and not net[0].layer.training
        a, b = net(X), net(X)
        assert not torch.equal(a, b)
    assert all(m.training for m in net.modules())
    net.eval()
    with pytest.raises(RuntimeError), sampling(net):
        raise RuntimeError
    assert not any(m.training for m in net.modules())


def test_mc_dropout_wrappers_find_the_layers() -> None:
    # What torch-uncertainty's MCDropout and the usual enable_dropout recipe do: collect
    # `_DropoutNd` modules with p > 0, put the model in eval and call .train() on them.
    net = nn.Sequential(InfoDropout(nn.Linear(6, 8)), BinaryDropout(nn.Linear(8, 8), rate=0.3), nn.Linear(8, 4))
    found = [m for m in net.modules() if isinstance(m, _DropoutNd)]
    assert found == [net[0], net[1]] and all(m.p > 0 for m in found)
    assert net[0].p == 0.7 and net[1].p == 0.3 and net[0].inplace is False
    net.eval()
    for m in found:
        m.train()
    with torch.no_grad():
        assert not torch.equal(net(X), net(X))


def test_kl_map_is_the_noiseless_kl_of_the_layer() -> None:
    net = _net().eval()
    layer = net[0]
    maps = kl_maps(net, X)
    assert list(maps) == ["0"] and maps["0"].shape == (5, 16)
    f = layer.activation_of(X)
    _, expected = info_dropout(f, layer.alpha_layer(X), **layer.spec.kl_options, training=False)
    assert torch.equal(maps["0"], expected.detach()) and torch.equal(kl_map(layer, X).detach(), expected.detach())
    layer.train()
    layer(X)
    torch.testing.assert_close(layer.kl, kl_map(layer, X).sum(1), rtol=1e-5, atol=1e-5)  # the KL needs no noise
    a = alpha_map(layer, X)
    assert ((a >= 1e-3) & (a <= 0.701)).all()
    with pytest.raises(TypeError, match="argument `layer`"):
        kl_map(nn.Linear(2, 2), X)
    with pytest.raises(ValueError, match="InfoDropout"):
        kl_maps(nn.Linear(6, 2), X)


def test_kl_maps_of_a_conv_and_a_reused_layer() -> None:
    conv = InfoDropout(nn.Conv2d(1, 3, 3, padding=1))
    twice = nn.Sequential(conv, nn.Conv2d(3, 1, 1), conv)
    maps = kl_maps(twice, torch.rand(2, 1, 5, 5))
    assert list(maps) == ["0", "0#1"] and maps["0"].shape == (2, 3, 5, 5)


def test_alpha_stats_and_diagnostics_warn_once() -> None:
    net = _net()
    with torch.no_grad():
        net[0].alpha_layer.bias.fill_(-50.0)  # every unit at alpha_min
    stats = alpha_stats(net, X)
    assert float(stats["0"].pinned_low) == 1.0 and float(stats["0"].pinned_high) == 0.0
    core_diag.reset_warnings()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        logs = diagnostics(net, X, task_loss=0.01, beta=1.0, n_train=1)
        diagnostics(net, X, task_loss=0.01, beta=1.0, n_train=1)
    assert sorted(logs) == ["0/alpha_mean", "0/kl", "0/pinned_high", "0/pinned_low", "kl_share", "kl_term"]
    assert all(isinstance(v, float) for v in logs.values())
    assert [w.category for w in seen if issubclass(w.category, IdropWarning)] == [
        IdropWarning,
        IdropWarning,
    ]  # pinned, KL dominates: once each
    assert seen[0].filename == __file__  # points at the caller
    core_diag.reset_warnings()


def test_beta_scheduler_steps_and_resumes() -> None:
    sched = BetaScheduler(beta_schedule("cosine", 1.0, warmup_steps=4))
    betas = [sched.beta] + [sched.step() for _ in range(5)]
    assert betas == [beta_schedule("cosine", 1.0, warmup_steps=4)(s) for s in range(6)]
    again = BetaScheduler(beta_schedule("cosine", 1.0, warmup_steps=4))
    again.load_state_dict(sched.state_dict())
    assert again.beta == sched.beta
    with pytest.raises(TypeError, match="`schedule`"):
        BetaScheduler(lambda s: 0.1)


def test_plot_kl_maps_takes_torch_maps() -> None:
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from idrop.backends.torch import plot_kl_maps

    conv = nn.Sequential(InfoDropout(nn.Conv2d(1, 3, 3, padding=1)))
    fig = plot_kl_maps(kl_maps(conv, torch.rand(2, 1, 5, 5)))
    image = fig.axes[0].images[0].get_array()
    assert np.asarray(image).shape == (5, 5)  # summed over dim=1, the channels
    plt.close(fig)


def test_the_tools_leave_the_kl_bookkeeping_alone() -> None:
    from idrop.backends.torch import kl_loss

    net = _net()
    net.train()
    kl_loss(net, 100)  # what _net's warm-up call left
    net(X)
    expected = kl_loss(net, 100).item()
    net(X)  # a training step in progress: its KL is pending
    mc_predict(net, X, 3)
    kl_maps(net, X)
    with sampling(net):
        net(X)
    assert kl_loss(net, 100).item() == pytest.approx(expected, rel=1e-6)


def test_a_no_grad_call_does_not_join_the_next_training_sum() -> None:
    from idrop.backends.torch import kl_loss

    net = _net()
    net.train()
    kl_loss(net, 1)  # what _net's warm-up call left
    net(X)
    one = kl_loss(net, 1).item()
    with torch.no_grad():
        net(X)  # e.g. a validation pass in training mode
    net(X)
    assert kl_loss(net, 1).item() == pytest.approx(one, rel=1e-6)


class _ExtraRow(nn.Module):
    """Its InfoDropout sees one row more than the batch: the per-sample noise falls back to one draw per chunk."""

    def __init__(self) -> None:
        super().__init__()
        self.drop, self.out = InfoDropout(nn.Linear(6, 8)), nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.drop(torch.cat([x, x[:1]]))[:-1])


def test_mc_predict_when_a_layer_does_not_see_the_batch_first() -> None:
    torch.manual_seed(0)
    net = _ExtraRow()
    a, b = mc_predict(net, X, 6, chunk=4, seed=1), mc_predict(net, X, 6, chunk=4, seed=1)
    assert torch.equal(a.mean, b.mean) and (a.std > 0).any()
    with pytest.raises(ValueError, match="argument `x`"):
        mc_predict(net, torch.tensor(1.0), 2)
