"""The one table of bad (and borderline good) input, run against every backend by ``test_bad_input.py``.

Every argument of the public layer constructors, the layer call, the functional ops and
the losses, with the values a hostile user would pass: each :class:`~._bad_actions.Row`
runs its entry point with fixed values and, where the space is large, values drawn by
Hypothesis on both sides of the bound. The expected outcome is never written here: the
oracle asks the core's check (``idrop.core.spec``) about the same value, so the message a
backend must raise is the one the core builds, the same in every backend. The rules are
``docs/design-notes.md``'s (bounds, input, KL bookkeeping).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import strategies as st

from idrop.core import spec as core

from ._bad_actions import (
    BAD_NOISE,
    BATCH,
    FLAGS,
    FUNCTIONAL_FLAGS,
    NOT_FLOATS,
    OPS,
    OUT,
    Arr,
    Fragment,
    Row,
    Skip,
    alpha_from_logits,
    call_flag,
    call_noise,
    call_x,
    construct,
    empty_batch,
    empty_batch_is_zero,
    flag_oracle,
    functional,
    ib_loss,
    kl_loss,
    loss_matches,
    raised,
    spec_of,
    unbatched,
    unbatched_is_one_sample,
    unit_interval,
    wrap,
)
from ._harness import LAYERS, Map


def accepted(h: Any, value: Any) -> None:
    return None


def _x(h: Any, value: Any) -> Any:
    """The layer input's rules, in the order the design notes give them: type, dtype kind, rank, dtype."""
    if not isinstance(value, Arr):
        return raised(core.check_input_type, "x", value, False)
    if not value.dtype.startswith(("float", "bfloat")):
        return raised(core.check_float_dtype, "x", value.dtype, False)
    if value.shape == ():
        return raised(core.check_input_rank, "x", value.shape)
    return raised(core.check_input_dtype, "x", value.dtype, "float32")


def _noise(h: Any, value: Arr) -> Any:
    return raised(core.check_noise_shape, "noise", value.shape, OUT)


def _own_activation(h: Any, value: Map) -> Any:
    if h.make_map(value, "float32") is None:
        return Skip(f"{h.name}'s maps carry no activation of their own")
    return Fragment(ValueError, "`layer`")


def _unbatched(h: Any, value: Arr) -> Any:
    return None if h.batchless_maps else Skip(f"{h.name}'s maps need a batch axis")


def _floats(space: st.SearchStrategy | None = None) -> dict[str, Any]:
    return {"fixed": NOT_FLOATS, "space": space if space is not None else unit_interval()}


UNKNOWN_KEYWORDS = ("max_aplha", "dropout_rate", "foo")


def _layer_rows(cls: str) -> list[Row]:
    """What every layer class shares: the activation, the norm, the wrapped map, unknown keywords, the call."""
    return [
        Row(f"{cls}(activation)", construct(cls, "activation"), spec_of("activation"), ("tanh", "ReLU", None, "relu")),
        Row(f"{cls}(norm)", construct(cls, "norm"), accepted, (Map("batch_norm", n_out=3), None)),
        Row(f"{cls}(layer)", wrap(cls), _own_activation, (Map("linear_relu"),)),
        Row(
            f"{cls}(**unknown)",
            lambda h, name, cls=cls: construct(cls, name)(h, 0.5),
            lambda h, name, cls=cls: core.unexpected_keyword(cls, name),
            UNKNOWN_KEYWORDS,
        ),
        Row(
            f"{cls}.call(x)",
            call_x(cls),
            _x,
            (
                [[0.5] * 4] * 2,
                (0.5,) * 4,
                0.5,
                Arr(()),
                Arr(BATCH, "int32"),
                Arr(BATCH, "float64"),
                Arr(BATCH, "float16"),
                Arr(BATCH),
            ),
        ),
        Row(f"{cls}.call(noise)", call_noise(cls), _noise, BAD_NOISE),
        Row(f"{cls}.call(mode)", call_flag(cls), flag_oracle(lambda h: h.layer_flag), FLAGS),
    ]


def _op_rows(op: str) -> list[Row]:
    """What every functional op shares: ``f``'s dtype, the noise's shape, the mode flag."""
    return [
        Row(
            f"{op}(f)",
            functional(op, "f"),
            lambda h, v: raised(core.check_float_dtype, "f", v.dtype, v.dtype.startswith("float")),
            (Arr(OUT, "int32"), Arr(OUT)),
        ),
        Row(f"{op}(noise)", functional(op, "noise"), _noise, BAD_NOISE),
        Row(f"{op}(mode)", functional(op, "training"), flag_oracle(lambda h: h.functional_flag), FUNCTIONAL_FLAGS),
    ]


def _alpha_logits(h: Any, value: Arr) -> Any:
    if value.dtype == "int32":
        return raised(core.check_float_dtype, "alpha_logits", "int32", False)
    return raised(core.check_same_shape, OUT, value.shape)


def _prior_scalar(name: str) -> Any:
    """A tensor ``mu``/``sigma`` must be 0-d or ``(1,)``; a Python ``sigma`` must be > 0 (``None``: the default)."""

    def oracle(h: Any, value: Any) -> Any:
        if isinstance(value, Arr):
            return raised(core.check_scalar_shape, name, value.shape)
        if value is None or name == "mu":
            return None
        return raised(core.check_prior_scale, name, value)

    return oracle


LOGNORMAL = {"prior": "log-normal"}
PRIOR_TENSORS = (Arr((3,)), Arr(OUT), Arr((1, 1)), Arr((1,)), Arr(()))

ROWS: list[Row] = [
    # -- InfoDropout's options
    Row("InfoDropout(prior)", construct("InfoDropout", "prior"), spec_of("prior"), ("gaussian", "LOG-NORMAL", 1, None)),
    Row("InfoDropout(max_alpha)", construct("InfoDropout", "max_alpha"), spec_of("max_alpha"), **_floats()),
    Row("InfoDropout(alpha_min)", construct("InfoDropout", "alpha_min"), spec_of("alpha_min"), **_floats()),
    Row("InfoDropout(mean_one)", construct("InfoDropout", "mean_one"), spec_of("mean_one"), FLAGS),
    Row("InfoDropout(zero_units)", construct("InfoDropout", "zero_units"), spec_of("zero_units"), ("drop", "MASK")),
    Row(
        "InfoDropout(eval_kl)",
        construct("InfoDropout", "eval_kl"),
        lambda h, v: raised(core.check_flag, "eval_kl", v),
        FLAGS,
    ),
    Row(
        "InfoDropout(alpha_layer)",
        construct("InfoDropout", "alpha_layer"),
        lambda h, v: raised(core.check_same_shape, OUT, (OUT[0], v.n_out)),
        (Map("linear", 4, 5), Map("linear", 4, 3)),
    ),
    # -- the cheap alpha branch: an int >= 1 or None, never with an explicit alpha_layer
    Row(
        "InfoDropout(alpha_rank)",
        construct("InfoDropout", "alpha_rank"),
        lambda h, v: raised(core.check_alpha_rank, v),
        fixed=(0, -1, True, np.True_, 2.5, 2.0, "3", None, 1, 3, 64, np.int64(2), np.int32(0)),
        space=st.integers(-3, 40),
    ),
    Row(
        "InfoDropout(alpha_rank, alpha_layer)",
        construct("InfoDropout", "alpha_rank", alpha_layer=Map("linear", 4, 3)),
        lambda h, v: raised(core.check_alpha_rank, v, has_alpha_layer=True),
        (2, 1, 0, None),
    ),
    # -- recomputing the cheap branch in backward: a flag, True only with alpha_rank
    Row(
        "InfoDropout(recompute_alpha)",
        construct("InfoDropout", "recompute_alpha", alpha_rank=2),
        lambda h, v: raised(core.check_recompute_alpha, v, alpha_rank=2),
        FLAGS,
    ),
    Row(
        "InfoDropout(recompute_alpha, alpha_rank=None)",
        construct("InfoDropout", "recompute_alpha"),
        lambda h, v: raised(core.check_recompute_alpha, v, alpha_rank=None),
        (True, False),
    ),
    # -- the baselines' options
    *(
        Row(f"{cls}(rate)", construct(cls, "rate"), lambda h, v: raised(core.check_probability, "rate", v), **_floats())
        for cls in ("BinaryDropout", "GaussianDropout")
    ),
    Row(
        "LogNormalDropout(alpha)",
        construct("LogNormalDropout", "alpha"),
        lambda h, v: raised(core.check_alpha, "alpha", v),
        **_floats(),
    ),
    Row(
        "LogNormalDropout(mean_one)",
        construct("LogNormalDropout", "mean_one"),
        lambda h, v: raised(core.check_flag, "mean_one", v),
        FLAGS,
    ),
    *(row for cls in LAYERS for row in _layer_rows(cls)),
    # -- the functional ops
    *(row for op in OPS for row in _op_rows(op)),
    Row(
        "info_dropout(alpha_logits)",
        functional("info_dropout", "alpha_logits"),
        _alpha_logits,
        (Arr(OUT, "int32"), Arr((2, 4)), Arr(OUT)),
    ),
    Row(
        "info_dropout(mu)",
        functional("info_dropout", "mu", **LOGNORMAL),
        _prior_scalar("mu"),
        (*PRIOR_TENSORS, 0.25, -3.0),
    ),
    Row(
        "info_dropout(sigma)",
        functional("info_dropout", "sigma", **LOGNORMAL),
        _prior_scalar("sigma"),
        fixed=(*PRIOR_TENSORS, *NOT_FLOATS),
        space=unit_interval(-2.0, 3.0),
    ),
    Row("info_dropout(prior)", functional("info_dropout", "prior"), spec_of("prior"), ("gaussian", "log-normal")),
    Row("info_dropout(mean_one)", functional("info_dropout", "mean_one"), spec_of("mean_one"), FLAGS),
    Row("info_dropout(zero_units)", functional("info_dropout", "zero_units"), spec_of("zero_units"), ("drop",)),
    *(
        Row(f"info_dropout({arg})", functional("info_dropout", arg), spec_of(arg), **_floats())
        for arg in ("max_alpha", "alpha_min")
    ),
    *(
        Row(f"alpha_from_logits({arg})", alpha_from_logits(arg), spec_of(arg), **_floats())
        for arg in ("max_alpha", "alpha_min")
    ),
    *(
        Row(f"{op}(rate)", functional(op, "rate"), lambda h, v: raised(core.check_probability, "rate", v), **_floats())
        for op in ("binary_dropout", "gaussian_dropout")
    ),
    Row(
        "lognormal_dropout(alpha)",
        functional("lognormal_dropout", "alpha"),
        lambda h, v: raised(core.check_alpha, "alpha", v),
        **_floats(),
    ),
    Row(
        "lognormal_dropout(mean_one)",
        functional("lognormal_dropout", "mean_one"),
        lambda h, v: raised(core.check_flag, "mean_one", v),
        FLAGS,
    ),
    # -- the losses: NumPy integers and floats are numbers (a size read off an array is a NumPy int)
    Row(
        "kl_loss(n_train)",
        kl_loss,
        lambda h, v: raised(core.check_n_train, v),
        fixed=(0, -1, 2.5, 10.0, "10", True, np.True_, None, np.int64(7), np.int32(3), np.uint8(5), np.int64(0)),
        space=st.integers(-5, 10**6),
        check=loss_matches,
    ),
    Row(
        "ib_loss(n_train)",
        ib_loss("n_train"),
        lambda h, v: raised(core.check_n_train, v),
        (0, 2.5, np.int64(10), np.float64(4.0)),
        check=loss_matches,
    ),
    Row(
        "ib_loss(beta)",
        ib_loss("beta"),
        lambda h, v: raised(core.check_beta, v),
        fixed=(-1.0, -0.0, 0, np.float32(0.5), np.float64(-1e-9), np.int64(2), *NOT_FLOATS),
        space=st.floats(-2.0, 2.0),
        check=loss_matches,
    ),
    # -- KL bookkeeping at the edges of the batch
    Row("InfoDropout(empty batch)", empty_batch, accepted, (Arr((0, 4)),), check=empty_batch_is_zero),
    Row("InfoDropout(unbatched)", unbatched, _unbatched, (Arr((4,)),), check=unbatched_is_one_sample),
]
