"""Validation of options: one message per bad argument, naming it and the fix."""

import pytest

from idrop.core import InfoDropoutSpec, check_beta, check_n_train, check_probability


def test_defaults_follow_the_paper():
    spec = InfoDropoutSpec()
    assert (spec.activation, spec.prior, spec.max_alpha, spec.alpha_min) == ("relu", "log-uniform", 0.7, 1e-3)
    assert InfoDropoutSpec(activation="softplus").prior == "log-normal"
    assert InfoDropoutSpec(activation="softplus", prior="log-uniform").prior == "log-uniform"


@pytest.mark.parametrize(
    ("kwargs", "exc", "fragment"),
    [
        ({"max_alpha": 0}, ValueError, "argument `max_alpha`. Expected a float in (0, 1]"),
        ({"max_alpha": 1e6}, ValueError, "argument `max_alpha`. Expected a float in (0, 1]"),
        ({"alpha_min": -1}, ValueError, "argument `alpha_min`. Expected a float in (0, 1]"),
        ({"alpha_min": 0}, ValueError, "0 makes the KL infinite"),
        ({"activation": "tanh"}, ValueError, "Expected one of 'relu', 'softplus'. Received: activation='tanh'"),
        ({"prior": "flat"}, ValueError, "argument `prior`"),
        ({"zero_units": "x"}, ValueError, "argument `zero_units`"),
        ({"max_alpha": "1"}, TypeError, "Invalid type received for argument `max_alpha`"),
        ({"max_alpha": float("nan")}, ValueError, "a finite float"),
        ({"mean_one": 1}, ValueError, "argument `mean_one`"),
        ({"mean_one": "false"}, ValueError, "Expected a bool (True or False)"),
    ],
)
def test_bad_options_name_the_argument(kwargs, exc, fragment):
    with pytest.raises(exc, match=None) as info:
        InfoDropoutSpec(**kwargs)
    assert fragment in str(info.value)


def test_loss_arguments():
    import numpy as np

    assert check_n_train(10) == 10 and check_n_train(10.0) == 10
    assert check_n_train(np.int64(60_000)) == 60_000 and type(check_n_train(np.int32(7))) is int
    assert check_beta(np.float32(0.5)) == 0.5
    for bad in (0, -3, 2.5, True, np.bool_(True), "10", float("inf")):
        with pytest.raises(ValueError, match="argument `n_train`"):
            check_n_train(bad)
    assert check_beta(0) == 0.0
    with pytest.raises(ValueError, match="argument `beta`"):
        check_beta(-1e-9)
    with pytest.raises(ValueError, match=r"argument `rate`. Expected a float in \[0, 1\)"):
        check_probability("rate", 1.0)


def test_a_wrapped_layer_with_its_own_activation_is_refused():
    from idrop.core.spec import check_no_activation

    check_no_activation("Dense", None)
    check_no_activation("Dense", "linear")
    with pytest.raises(ValueError, match="argument `layer`") as info:
        check_no_activation("Dense", "relu")
    assert "Received: layer=Dense with activation='relu'" in str(info.value)


def test_kl_outside_its_trace_names_the_fix():
    from idrop.core.spec import kl_outside_its_trace

    err = kl_outside_its_trace("a tf.function")
    assert isinstance(err, RuntimeError) and "inside a tf.function" in str(err)
    assert "Collect it in the same function as the forward pass" in str(err)


def test_constant_lognormal_noise_has_the_adapters_alpha_bound():
    """The reference refuses the fixed ``alpha`` every backend refuses (design notes, "Bounds")."""
    import numpy as np

    from idrop.core import constant_lognormal_noise
    from idrop.core.spec import check_alpha

    f = np.ones(3)
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError) as got:
            constant_lognormal_noise(f, np.zeros(3), alpha=bad, xp=np)
        with pytest.raises(ValueError) as want:
            check_alpha("alpha", bad)
        assert str(got.value) == str(want.value)
    np.testing.assert_array_equal(constant_lognormal_noise(f, np.zeros(3), alpha=1.0, xp=np), f)
