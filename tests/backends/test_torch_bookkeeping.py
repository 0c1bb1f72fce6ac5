"""KL bookkeeping of the torch layers (docs/design-notes.md section 3): records, collection, copies."""

import copy
import io
import pickle
import warnings

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from torch.optim.swa_utils import AveragedModel  # noqa: E402

from idrop.backends.torch import InfoDropout, ib_loss, kl_loss  # noqa: E402


def test_a_layer_called_twice_counts_twice():
    layer = InfoDropout(nn.Linear(4, 4))
    first = layer(torch.rand(3, 4))
    kl_first = layer.kl
    layer(first)
    assert layer.kl is not kl_first  # .kl is the latest call's
    torch.testing.assert_close(kl_loss(layer, 10), (kl_first.mean() + layer.kl.mean()) / 10)


def test_collection_empties_the_records():
    layer = InfoDropout(nn.Linear(4, 4))
    layer(torch.rand(3, 4))
    assert kl_loss(layer, 10).item() > 0
    assert kl_loss(layer, 10).item() == 0  # no forward since: nothing to collect
    layer(torch.rand(3, 4))
    assert ib_loss(torch.tensor(1.0), layer, beta=1.0, n_train=10).item() > 1
    assert ib_loss(torch.tensor(1.0), layer, beta=1.0, n_train=10).item() == 1


def test_a_skipped_layer_contributes_nothing_and_backward_runs():
    """A branch taken in one step and not the next: no stale KL (whose graph was freed) in the loss."""
    a, b = InfoDropout(nn.Linear(4, 4)), InfoDropout(nn.Linear(4, 4))
    model = nn.ModuleList([a, b])
    x = torch.rand(3, 4)
    ib_loss(b(a(x)).sum(), model, beta=1.0, n_train=10).backward()
    model.zero_grad()
    z = a(x)
    loss = ib_loss(z.sum(), model, beta=1.0, n_train=10)
    loss.backward()  # the old code summed b's stale KL and raised "backward through the graph a second time"
    assert b.layer.weight.grad is None and b.alpha_layer.weight.grad is None
    torch.testing.assert_close(loss, z.sum() + a.kl.mean() / 10)


@pytest.mark.parametrize("mode", ["train", "eval-kl"])
def test_an_empty_batch_contributes_zero(mode):
    layer = InfoDropout(nn.Linear(4, 3), activation="softplus", eval_kl=True).train(mode == "train")
    z = layer(torch.rand(0, 4))
    assert z.shape == (0, 3) and layer.kl.shape == (0,)
    loss = kl_loss(layer, 10)
    assert loss.item() == 0 and not loss.isnan()
    if mode == "train":
        loss.backward()
        assert all(torch.isfinite(p.grad).all() for p in layer.parameters() if p.grad is not None)


@pytest.mark.parametrize(
    ("layer", "x_shape"),
    [
        (nn.Linear(4, 3), (4,)),
        (nn.Conv1d(2, 3, 3), (2, 7)),
        (nn.Conv2d(2, 3, 3), (2, 5, 5)),  # the default alpha map of a conv is stacked with it
        (nn.Conv3d(2, 3, 3), (2, 4, 4, 4)),
    ],
)
@pytest.mark.parametrize("mode", ["train", "eval-kl"])
def test_unbatched_input_gives_a_0d_kl_of_one_sample(layer, x_shape, mode):
    torch.manual_seed(0)
    module = InfoDropout(layer, eval_kl=True).double().train(mode == "train")
    x = torch.randn(x_shape, dtype=torch.float64)
    eps = torch.randn(module.layer(x).shape, dtype=torch.float64)
    z = module(x, noise=eps)
    kl = module.kl
    assert kl.shape == () and z.shape == eps.shape
    z_batched = module(x[None], noise=eps[None])
    torch.testing.assert_close(z, z_batched[0], rtol=1e-12, atol=0)
    torch.testing.assert_close(kl, module.kl[0], rtol=1e-12, atol=0)
    kl_loss(module, 1)  # collect the batched call
    module(x, noise=eps)
    torch.testing.assert_close(kl_loss(module, 5), kl / 5)  # a batch of one


def test_no_grad_and_eval_loops_hold_one_record():
    layer = InfoDropout(nn.Linear(4, 3), eval_kl=True)
    with torch.no_grad():
        for _ in range(50):
            layer(torch.rand(2, 4))
    assert len(layer._kl_records) == 1
    torch.testing.assert_close(kl_loss(layer, 10), layer.kl.mean() / 10)
    layer.eval()
    for _ in range(50):
        layer(torch.rand(2, 4))
    assert len(layer._kl_records) == 1
    torch.testing.assert_close(kl_loss(layer, 10), layer.kl.mean() / 10)
    layer.eval_kl = False
    layer(torch.rand(2, 4))
    assert layer.kl is None and kl_loss(layer, 10).item() == 0


def test_bookkeeping_is_warning_free():
    model = nn.Sequential(InfoDropout(nn.Linear(4, 4)), InfoDropout(nn.Linear(4, 2), activation="softplus"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for x in (torch.rand(3, 4), torch.rand(4), torch.rand(0, 4)):
            ib_loss(model(x).sum(), model, beta=1.0, n_train=10).backward()
        model.eval()
        with torch.no_grad():
            model(torch.rand(3, 4))
        kl_loss(model, 10)


def _trained():
    model = nn.Sequential(InfoDropout(nn.Linear(4, 4)), InfoDropout(nn.Linear(4, 3), activation="softplus"))
    model(torch.rand(2, 4))  # a training forward: the records hold graph nodes
    return model


def test_deepcopy_after_a_training_forward_starts_with_no_records():
    model = _trained()
    clone = copy.deepcopy(model)  # the old code raised: non-leaf tensors refuse deepcopy
    assert all(m.kl is None and m._kl_records == [] for m in clone if isinstance(m, InfoDropout))
    assert kl_loss(clone, 10).item() == 0 and kl_loss(model, 10).item() > 0  # the original keeps its own
    x, eps = torch.rand(2, 4), torch.randn(2, 4)
    torch.testing.assert_close(clone[0](x, noise=eps), model[0](x, noise=eps))


def test_averaged_model_after_a_training_forward():
    model = _trained()
    averaged = AveragedModel(model)
    averaged.update_parameters(model)
    averaged(torch.rand(2, 4))
    assert kl_loss(averaged, 10).item() > 0


@pytest.mark.parametrize("how", ["pickle", "torch.save"])
def test_pickling_after_a_training_forward(how):
    model = _trained()
    if how == "pickle":
        clone = pickle.loads(pickle.dumps(model))
    else:
        buf = io.BytesIO()
        torch.save(model, buf)
        clone = torch.load(io.BytesIO(buf.getvalue()), weights_only=False)
    assert all(m.kl is None and m._kl_records == [] for m in clone if isinstance(m, InfoDropout))
    assert model[0].kl is not None  # pickling does not touch the original
    x, eps = torch.rand(2, 4), torch.randn(2, 4)
    torch.testing.assert_close(clone[0](x, noise=eps), model[0](x, noise=eps))


def test_state_dict_round_trip_after_a_training_forward():
    model = _trained()
    other = nn.Sequential(InfoDropout(nn.Linear(4, 4)), InfoDropout(nn.Linear(4, 3), activation="softplus"))
    other.load_state_dict(model.state_dict())
    x, eps = torch.rand(2, 4), torch.randn(2, 3)
    torch.testing.assert_close(other[1](x, noise=eps), model[1](x, noise=eps))
    assert kl_loss(other, 10).item() > 0


def test_a_loop_that_reads_kl_itself_keeps_no_old_graphs():
    """``loss = task + layer.kl.mean()`` without collecting: the records stay bounded."""
    layer = InfoDropout(nn.Linear(4, 3), activation="softplus")
    for _ in range(20):
        z = layer(torch.rand(2, 4))
        (z.sum() + layer.kl.mean()).backward()
    assert len(layer._kl_records) == 1


def test_a_step_whose_loss_left_out_the_kl_does_not_break_the_next():
    layer = InfoDropout(nn.Linear(4, 3))
    layer(torch.rand(2, 4)).sum().backward()  # forgot the KL: the graph of this call is freed
    z = layer(torch.rand(2, 4))
    ib_loss(z.sum(), layer, beta=1.0, n_train=10).backward()  # only this call's KL is collected
    assert torch.isfinite(layer.alpha_layer.weight.grad).all()


@pytest.mark.parametrize("use_reentrant", [False, True])
def test_checkpoint_recomputation_records_nothing(use_reentrant):
    """``torch.utils.checkpoint`` runs the forward again in backward: that KL was recorded already."""
    torch.manual_seed(0)
    model = nn.Sequential(InfoDropout(nn.Linear(4, 4), activation="softplus"), nn.Linear(4, 2))
    x = torch.randn(3, 4, requires_grad=use_reentrant)

    def step(checkpointed):
        model.zero_grad()
        torch.manual_seed(5)
        z = torch.utils.checkpoint.checkpoint(model, x, use_reentrant=use_reentrant) if checkpointed else model(x)
        loss = ib_loss(z.sum(), model, beta=1.0, n_train=10)
        loss.backward()
        return loss.detach(), [None if p.grad is None else p.grad.clone() for p in model.parameters()]

    plain = step(False)
    for _ in range(2):  # the second step would also collect a record of the first one's recomputation
        loss, grads = step(True)
        assert model[0]._kl_records == []
        if not use_reentrant:  # a reentrant checkpoint's forward runs under no_grad: no KL gradient
            torch.testing.assert_close(loss, plain[0])
            for g, g0 in zip(grads, plain[1], strict=True):
                torch.testing.assert_close(g, g0)
