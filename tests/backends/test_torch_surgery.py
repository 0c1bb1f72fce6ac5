"""torch model surgery: a small CNN trained a few steps keeps its evaluation outputs through
to_info_dropout and strip_info_dropout."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from idrop.backends.torch import InfoDropout, kl_loss, strip_info_dropout, to_info_dropout  # noqa: E402


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.Softplus(), nn.Dropout(0.2),
        nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 3),
    )  # fmt: skip
    x, y = torch.randn(8, 1, 8, 8), torch.randint(0, 3, (8,))
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    for _ in range(3):
        opt.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    return net.eval(), x


def test_outputs_equal_before_wrapping_after_wrapping_and_after_stripping(trained):
    net, x = trained
    want = net(x).detach()
    wrapped = to_info_dropout(net).eval()
    assert [type(m).__name__ for m in wrapped] == [
        "InfoDropout",
        "InfoDropout",
        "Dropout",
        "Flatten",
        "InfoDropout",
        "Linear",
    ]
    assert [m.spec.activation for m in wrapped if isinstance(m, InfoDropout)] == ["relu", "softplus", "relu"]
    torch.testing.assert_close(wrapped(x), want, rtol=1e-6, atol=1e-6)
    assert wrapped[0].layer is not net[0] and torch.equal(wrapped[0].layer.weight, net[0].weight)  # a copy
    assert "9.weight" in wrapped.state_dict()  # keys outside the blocks unchanged
    stripped = strip_info_dropout(wrapped).eval()
    assert not any(isinstance(m, InfoDropout) for m in stripped.modules())
    torch.testing.assert_close(stripped(x), want, rtol=1e-6, atol=1e-6)
    wrapped.train()
    wrapped(x)
    assert kl_loss(wrapped, 100).item() > 0  # trains as an Information Dropout network


def test_options_layers_replace_and_errors(trained):
    net, _ = trained
    only = to_info_dropout(net, layers=["7"], max_alpha=0.5)
    assert [type(m).__name__ for m in only][-3:] == ["Flatten", "InfoDropout", "Linear"]
    assert only[7].spec.max_alpha == 0.5
    by_dropout = to_info_dropout(net, replace="dropout")
    assert [type(m).__name__ for m in by_dropout][3:5] == ["InfoDropout", "Flatten"]  # Dropout(0.2) replaced
    picked = to_info_dropout(net, layers=lambda name, m: isinstance(m, nn.Conv2d))
    assert sum(isinstance(m, InfoDropout) for m in picked) == 2
    with pytest.raises(ValueError, match=r"such maps here: \['0', '3', '7'\]"):
        to_info_dropout(net, layers=["9"])  # the last Linear has no activation after it
    with pytest.raises(ValueError, match="argument `replace`"):
        to_info_dropout(net, replace="everything")
    with pytest.raises(ValueError, match="max_alpha"):
        to_info_dropout(net, max_alpha=2.0)
    same = to_info_dropout(net, inplace=False)
    assert same is not net and isinstance(net[0], nn.Conv2d)


def test_nested_containers_and_attribute_children():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(nn.Linear(4, 5), nn.ReLU())
            self.fc = nn.Linear(5, 2)  # an attribute child: its activation lives in forward

        def forward(self, x):
            return torch.relu(self.fc(self.features(x)))

    net = Net().eval()
    x = torch.randn(3, 4)
    wrapped = to_info_dropout(net).eval()
    assert isinstance(wrapped.features[0], InfoDropout) and isinstance(wrapped.fc, nn.Linear)
    torch.testing.assert_close(wrapped(x), net(x))
    with pytest.raises(ValueError, match=r"such maps here: \['features.0'\]"):
        to_info_dropout(net, layers="fc")
    torch.testing.assert_close(strip_info_dropout(wrapped)(x), net(x))
    single = strip_info_dropout(InfoDropout(nn.Linear(4, 2)).eval())
    assert isinstance(single, nn.Sequential)
