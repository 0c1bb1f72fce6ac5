"""torch export: the evaluation and sampling graphs, as torch.export programs and ONNX (onnxruntime),
give the module's own outputs to float32 rounding."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from idrop.backends.torch import InfoDropout, export, noise_shapes  # noqa: E402


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    net = nn.Sequential(
        InfoDropout(nn.Conv2d(1, 4, 3), norm=nn.BatchNorm2d(4)),
        nn.Flatten(),
        InfoDropout(nn.Linear(144, 8), activation="softplus"),
        nn.Linear(8, 3),
    )
    with torch.no_grad():  # running statistics that differ from a batch's own
        net[0].norm.running_mean.fill_(0.3)
        net[0].norm.running_var.fill_(2.0)
    return net.train()  # export must not depend on (nor change) the mode it finds


def _own(net, x, eps):
    """The sampling graph by hand: the layers in training with their noise, the batch norm on its running statistics."""
    with torch.no_grad():
        net.eval()
        for layer, e in zip((net[0], net[2]), eps):
            layer.training = True
            if layer is net[0]:
                z = layer(x, noise=e)
            else:
                z = layer(net[1](z), noise=e)
        out = net[3](z)
        net.train()
    return out


def _export_quietly(*args, **kwargs):
    """``export`` that must warn of nothing: no tensor attribute assigned while torch.export traces (a KL
    record), no module exported in training mode, no note on the shared batch axis name (torch 2.13)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        program = export(*args, **kwargs)
    assert [str(w.message) for w in caught if issubclass(w.category, UserWarning)] == []
    return program


@pytest.mark.parametrize("suffix", ["pt2", "onnx"])
def test_both_graphs_match_the_module(model, tmp_path, suffix):
    x = torch.randn(2, 1, 8, 8)
    shapes = noise_shapes(model, x)
    assert shapes == [(2, 4, 6, 6), (2, 8)]
    eps = [torch.randn(s) for s in shapes]
    with torch.no_grad():
        want_eval = model.eval()(x)
    model.train()
    want_sampling = _own(model, x, eps)
    assert not torch.allclose(want_sampling, want_eval)
    for sampling, want, inputs in ((False, want_eval, [x]), (True, want_sampling, [x, *eps])):
        path = tmp_path / f"graph_{sampling}.{suffix}"
        _export_quietly(model, path, x, sampling=sampling)
        assert model.training and model[0].norm.training  # modes restored
        if suffix == "pt2":
            got = torch.export.load(str(path)).module()(*inputs)
        else:
            ort = pytest.importorskip("onnxruntime")
            session = ort.InferenceSession(str(path))
            assert [i.name for i in session.get_inputs()] == ["x", *(f"noise_{i}" for i in range(len(inputs) - 1))]
            got = session.run(None, {i.name: v.numpy() for i, v in zip(session.get_inputs(), inputs)})[0]
        got = got.detach().numpy() if isinstance(got, torch.Tensor) else got
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-6)


def test_bad_format(model, tmp_path):
    with pytest.raises(ValueError, match="Invalid value received for argument `format`"):
        export(model, tmp_path / "m.pt2", torch.randn(2, 1, 8, 8), format="tflite")


def test_export_leaves_the_kl_records_of_a_step(model, tmp_path):
    from idrop.backends.torch import kl_loss

    x = torch.randn(2, 1, 8, 8)
    model(x)  # a training step's forward: its KL records wait for kl_loss
    before = [model[0].kl, model[2].kl]
    export(model, tmp_path / "s.pt2", x, sampling=True)
    assert model[0].kl is before[0] and model[2].kl is before[1]
    assert kl_loss(model, 10).item() > 0


@pytest.mark.parametrize("strict", [False, True])
def test_torch_export_of_a_training_layer_records_nothing(strict):
    """torch.export called directly on a model in training (and one computing its KL in evaluation): the
    traced calls leave no record (a traced tensor) on the layers, so no warning and no KL to collect."""
    from idrop.backends.torch import kl_loss

    net = nn.Sequential(InfoDropout(nn.Linear(4, 3)), InfoDropout(nn.Linear(3, 2), eval_kl=True))
    for mode in (net.train, net.eval):
        mode()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.export.export(net, (torch.randn(2, 4),), strict=strict)
        assert [str(w.message) for w in caught if issubclass(w.category, UserWarning)] == []
        assert net[0].kl is None and net[1].kl is None and net[0]._kl_records == [] == net[1]._kl_records
    net.train()(torch.randn(2, 4))  # a real call after the export still records its KL
    assert net[0].kl is not None and kl_loss(net, 10).item() > 0


@pytest.mark.parametrize("suffix", ["pt2", "onnx"])
def test_dynamic_batch(model, tmp_path, suffix):
    """Exported at batch 2, called at batch 5: the sampling graph still gives the module's own outputs."""
    path = tmp_path / f"dyn.{suffix}"
    _export_quietly(model, path, torch.randn(2, 1, 8, 8), sampling=True, dynamic_batch=True)
    x = torch.randn(5, 1, 8, 8)
    eps = [torch.randn(s) for s in noise_shapes(model, x)]
    want = _own(model, x, eps).numpy()
    if suffix == "pt2":
        got = torch.export.load(str(path)).module()(x, *eps).detach().numpy()
    else:
        ort = pytest.importorskip("onnxruntime")
        session = ort.InferenceSession(str(path))
        got = session.run(None, {i.name: v.numpy() for i, v in zip(session.get_inputs(), [x, *eps])})[0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
