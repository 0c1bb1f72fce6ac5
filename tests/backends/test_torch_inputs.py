"""Option bounds and input rules of the torch adapter (docs/design-notes.md sections 1-2), with the
core's exception classes and messages; the maps' call (stacking, hooks, lazy and generic maps)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from idrop.backends.torch import (  # noqa: E402
    BinaryDropout,
    GaussianDropout,
    InfoDropout,
    LogNormalDropout,
    binary_dropout,
    gaussian_dropout,
    ib_loss,
    info_dropout,
    kl_loss,
    lognormal_dropout,
)
from idrop.core import spec  # noqa: E402

CLASSES = [InfoDropout, BinaryDropout, GaussianDropout, LogNormalDropout]


def _raises_as(want: BaseException, fn, *args, **kwargs):
    """``fn`` raises the core's exception: same class, same message."""
    with pytest.raises(type(want)) as info:
        fn(*args, **kwargs)
    assert str(info.value) == str(want)


def _error(fn, *args, **kwargs) -> BaseException:
    try:
        fn(*args, **kwargs)
    except Exception as err:
        return err
    raise AssertionError("no error")


# -- the layer's input -------------------------------------------------------------------------


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float16])
def test_input_of_another_float_dtype_is_refused_with_the_core_message(cls, mode, dtype):
    module = cls(nn.Linear(4, 3)).train(mode == "train")
    want = _error(spec.check_input_dtype, "x", str(dtype).removeprefix("torch."), "float32")
    _raises_as(want, module, torch.ones(2, 4, dtype=dtype))


def test_input_dtype_under_autocast_is_the_maps_business():
    module = InfoDropout(nn.Linear(4, 3))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert module(torch.ones(2, 4, dtype=torch.bfloat16)).dtype == torch.bfloat16


@pytest.mark.parametrize("cls", CLASSES)
def test_scalar_and_list_input_are_refused(cls):
    module = cls(nn.Linear(1, 3))
    _raises_as(_error(spec.check_input_rank, "x", ()), module, torch.tensor(1.0))
    _raises_as(_error(spec.check_input_type, "x", [[1.0]], False), module, [[1.0]])
    _raises_as(_error(spec.check_input_type, "x", 1.0, False), module, 1.0)


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("shape", [(2, 4), (1, 3), (3,), (2, 3, 1)], ids=str)
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_noise_of_another_shape_is_refused_also_when_broadcastable(cls, shape, mode):
    module = cls(nn.Linear(4, 3)).train(mode == "train")
    want = _error(spec.check_noise_shape, "noise", shape, (2, 3))
    _raises_as(want, module, torch.ones(2, 4), noise=torch.zeros(shape))


@pytest.mark.parametrize(
    ("fn", "args"),
    [(info_dropout, (torch.ones(2, 3),)), (binary_dropout, ()), (gaussian_dropout, ()), (lognormal_dropout, ())],
)
def test_functional_noise_shape_is_exact(fn, args):
    f = torch.ones(2, 3)
    _raises_as(_error(spec.check_noise_shape, "noise", (3,), (2, 3)), fn, f, *args, noise=torch.zeros(3))


@pytest.mark.parametrize("name", ["mu", "sigma"])
def test_functional_prior_parameters_are_scalars(name):
    f, a = torch.rand(2, 3) + 0.1, torch.randn(2, 3)
    want = _error(spec.check_scalar_shape, name, (3,))
    _raises_as(want, info_dropout, f, a, prior="log-normal", **{name: torch.ones(3)})
    _, kl = info_dropout(f, a, prior="log-normal", **{name: torch.ones(1)}, noise=torch.zeros(2, 3))
    _, kl0 = info_dropout(f, a, prior="log-normal", **{name: 1.0}, noise=torch.zeros(2, 3))
    torch.testing.assert_close(kl, kl0)


@pytest.mark.parametrize("sigma", [0.0, -1.0, float("inf"), 1e-300, 1e7])
def test_functional_sigma_number_is_positive(sigma):
    f, a = torch.rand(2, 3), torch.randn(2, 3)
    _raises_as(_error(spec.check_prior_scale, "sigma", sigma), info_dropout, f, a, prior="log-normal", sigma=sigma)


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("activation", ["relu", "softplus"])
def test_non_finite_input_never_gives_a_finite_output(mode, activation):
    """NaN stays NaN (``where(h > 0, h, 0)`` would have made it 0 in evaluation)."""
    module = InfoDropout(nn.Linear(2, 3), activation=activation).train(mode == "train")
    z = module(torch.tensor([[float("nan"), 1.0]]))
    assert z.isnan().all()


# -- options -------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", CLASSES)
def test_unknown_keyword_is_refused_as_python_words_it(cls):
    _raises_as(spec.unexpected_keyword(cls.__name__, "dropout"), cls, nn.Linear(2, 2), dropout=0.5)


@pytest.mark.parametrize(
    ("cls", "name"),
    [(InfoDropout, "eval_kl"), (InfoDropout, "mean_one"), (LogNormalDropout, "mean_one")],
)
def test_truthy_strings_are_not_flags(cls, name):
    _raises_as(_error(spec.check_flag, name, "false"), cls, nn.Linear(2, 2), **{name: "false"})
    cls(nn.Linear(2, 2), **{name: np.bool_(True)})  # NumPy bools are flags


def test_eval_kl_set_later_is_checked_too():
    module = InfoDropout(nn.Linear(2, 2))
    _raises_as(_error(spec.check_flag, "eval_kl", "yes"), setattr, module, "eval_kl", "yes")
    module.eval_kl = np.bool_(True)
    assert module.eval_kl is True


@pytest.mark.parametrize(
    ("fn", "args"),
    [
        (info_dropout, (torch.ones(2, 3),)),
        (binary_dropout, ()),
        (gaussian_dropout, ()),
        (lognormal_dropout, ()),
    ],
)
def test_functional_training_flag_is_a_bool(fn, args):
    f = torch.ones(2, 3)
    _raises_as(_error(spec.check_flag, "training", "false"), fn, f, *args, training="false")
    fn(f, *args, training=np.bool_(False))


@pytest.mark.parametrize(
    ("make", "want"),
    [
        (lambda: InfoDropout(nn.Linear(2, 2), max_alpha=1.5), lambda: spec.check_max_alpha(1.5)),
        (lambda: InfoDropout(nn.Linear(2, 2), alpha_min=0.0), lambda: spec.check_alpha_min(0.0)),
        (lambda: LogNormalDropout(nn.Linear(2, 2), alpha=1.5), lambda: spec.check_alpha("alpha", 1.5)),
        (lambda: LogNormalDropout(nn.Linear(2, 2), alpha=-0.1), lambda: spec.check_alpha("alpha", -0.1)),
        (lambda: lognormal_dropout(torch.ones(2), 1.5), lambda: spec.check_alpha("alpha", 1.5)),
        (lambda: BinaryDropout(nn.Linear(2, 2), rate=1.0), lambda: spec.check_probability("rate", 1.0)),
        (lambda: gaussian_dropout(torch.ones(2), rate=-0.1), lambda: spec.check_probability("rate", -0.1)),
    ],
)
def test_bounds_use_the_core_messages(make, want):
    _raises_as(_error(want), make)


def test_bounds_are_inclusive_where_the_notes_say():
    InfoDropout(nn.Linear(2, 2), max_alpha=1.0, alpha_min=1.0)
    LogNormalDropout(nn.Linear(2, 2), alpha=1.0)
    LogNormalDropout(nn.Linear(2, 2), alpha=0.0)
    BinaryDropout(nn.Linear(2, 2), rate=0.0)


def test_n_train_and_beta_accept_numpy_scalars():
    module = InfoDropout(nn.Linear(2, 2))
    module(torch.rand(3, 2))
    kl = module.kl.mean()
    torch.testing.assert_close(kl_loss(module, np.int64(10)), kl / 10)
    module(torch.rand(3, 2))
    kl = module.kl.mean()
    torch.testing.assert_close(ib_loss(torch.tensor(1.0), module, np.float32(0.5), np.int32(10)), 1 + 0.5 * kl / 10)
    _raises_as(_error(spec.check_n_train, True), kl_loss, module, True)
    _raises_as(_error(spec.check_beta, -1.0), ib_loss, torch.tensor(1.0), module, -1.0, 10)


def test_bad_loss_arguments_leave_the_records_alone():
    module = InfoDropout(nn.Linear(2, 2))
    module(torch.rand(3, 2))
    with pytest.raises(ValueError):
        ib_loss(torch.tensor(1.0), module, beta=-1.0, n_train=10)
    assert kl_loss(module, 10).item() > 0


# -- the maps ------------------------------------------------------------------------------------


def test_stacked_convolution_on_unbatched_input_splits_the_channel_axis():
    module = InfoDropout(nn.Conv2d(2, 3, 3))
    x = torch.randn(2, 5, 5)
    eps = torch.randn(3, 3, 3)
    z = module(x, noise=eps)
    module._stack = False  # two convolutions
    torch.testing.assert_close(module(x, noise=eps), z)


def test_global_and_backward_hooks_turn_stacking_off():
    module = InfoDropout(nn.Conv2d(2, 3, 3))
    seen = []
    handle = nn.modules.module.register_module_forward_hook(lambda m, i, o: seen.append(m))
    try:
        module(torch.randn(1, 2, 5, 5))
    finally:
        handle.remove()
    assert module.layer in seen and module.alpha_layer in seen
    calls = []
    module.layer.register_full_backward_hook(lambda m, gi, go: calls.append(m))
    module(torch.randn(1, 2, 5, 5)).sum().backward()
    assert calls == [module.layer]


@pytest.mark.parametrize("lazy", [nn.LazyLinear(3), nn.LazyConv2d(3, 3)], ids=["LazyLinear", "LazyConv2d"])
def test_lazy_maps_get_a_lazy_alpha_map(lazy):
    module = InfoDropout(lazy)
    x = torch.randn(2, 4) if isinstance(lazy, nn.Linear) else torch.randn(2, 2, 5, 5)
    z = module(x)
    assert z.shape == module.alpha_layer(x).shape and module.kl.shape == (2,)
    assert not torch.equal(module.layer.weight, module.alpha_layer.weight)


def test_a_map_with_a_batch_only_output_keeps_its_batch():
    """A map whose output is ``[batch]``: one unit per sample, the per-sample KL is that unit's."""
    module = InfoDropout(
        nn.Sequential(nn.Linear(3, 1), nn.Flatten(0)), alpha_layer=nn.Sequential(nn.Linear(3, 1), nn.Flatten(0))
    )
    module(torch.randn(5, 3))
    assert module.kl.shape == (5,)
