"""The vocabulary of the bad-input table (:mod:`idrop.conformance._bad_inputs`): rows, actions, oracles.

An *action* runs one public entry point of a backend through the harness with one value;
an *oracle* calls the core's own check (:mod:`idrop.core.spec`) on the same value and
returns what the backend must do: raise that exception (same class, same message),
raise a :class:`Fragment`, be skipped (:class:`Skip`), or accept (``None``).
Values that are framework arrays are written as :class:`Arr` and made by the harness
just before the call.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import numpy as np
from hypothesis import strategies as st

from idrop.core import InfoDropoutSpec
from idrop.core import spec as core

from ._harness import Map


@dataclasses.dataclass(frozen=True)
class Arr:
    """A framework array of ``shape`` and ``dtype`` (filled with ``fill``), made by the harness."""

    shape: tuple[int, ...]
    dtype: str = "float32"
    fill: float = 0.5


@dataclasses.dataclass(frozen=True)
class Fragment:
    """The backend must raise ``exc`` with ``text`` in its message (no core helper words it)."""

    exc: type[BaseException]
    text: str


@dataclasses.dataclass(frozen=True)
class Skip:
    """The row does not apply to this backend, for ``reason``."""

    reason: str


@dataclasses.dataclass(frozen=True)
class Row:
    """One argument of one public entry point: ``action(h, value)`` runs it, ``oracle(h, value)`` says
    what must happen (an exception instance, a :class:`Fragment`, a :class:`Skip`, or ``None``:
    accepted), ``check(h, result)`` checks an accepted result (default: every array finite)."""

    name: str
    action: Callable[[Any, Any], tuple]
    oracle: Callable[[Any, Any], Any]
    fixed: tuple = ()
    space: st.SearchStrategy | None = None
    check: Callable[[Any, tuple], None] | None = None


def raised(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> BaseException | None:
    """What the core helper raises for these arguments (``None`` if it accepts them)."""
    try:
        fn(*args, **kwargs)
    except Exception as err:  # the oracle: whatever the core raises is the contract
        return err
    return None


def make(h: Any, value: Any) -> Any:
    """``value`` with :class:`Arr` descriptions turned into the harness's arrays."""
    if isinstance(value, Arr):
        return h.asarray(np.full(value.shape, value.fill), value.dtype)
    return value


# --- actions: build, call and reduce through the public API only -------------------------

LINEAR = Map("linear", 4, 3)
BATCH = (2, 4)
OUT = (2, 3)
#: Injected noise every layer accepts: standard-normal eps for the log-normal and Gaussian laws,
#: and a uniform draw above any rate for binary dropout (the unit is kept).
NOISE = {"BinaryDropout": 0.75}


def _noise(h: Any, cls: str, shape: tuple[int, ...] = OUT) -> Any:
    return h.asarray(np.full(shape, NOISE.get(cls, 0.3)), "float32")


def _train_call(h: Any, layer: Any, cls: str, x: Any = None) -> tuple:
    x = h.asarray(np.full(BATCH, 0.5), "float32") if x is None else x
    z = h.call(layer, x, training=True, noise=_noise(h, cls))
    return z, (h.kl(layer) if cls == "InfoDropout" else None)


def construct(cls: str, arg: str, **others: Any) -> Callable[[Any, Any], tuple]:
    """Build ``cls(Linear(4, 3), arg=value, **others)`` and call it once in training."""

    def action(h: Any, value: Any) -> tuple:
        layer = h.build_layer(cls, LINEAR, dtype="float32", **others, **{arg: value})
        return _train_call(h, layer, cls)

    return action


def wrap(cls: str) -> Callable[[Any, Any], tuple]:
    """Build ``cls(value)`` (the wrapped map is the value) and call it once in training."""
    return lambda h, value: _train_call(h, h.build_layer(cls, value, dtype="float32"), cls)


def call_x(cls: str) -> Callable[[Any, Any], tuple]:
    """Call ``cls(Linear(4, 3))`` on the input ``value`` in training."""
    return lambda h, value: _train_call(h, h.build_layer(cls, LINEAR, dtype="float32"), cls, make(h, value))


def call_noise(cls: str) -> Callable[[Any, Any], tuple]:
    def action(h: Any, value: Any) -> tuple:
        layer = h.build_layer(cls, LINEAR, dtype="float32")
        return (h.call(layer, h.asarray(np.full(BATCH, 0.5), "float32"), training=True, noise=make(h, value)),)

    return action


def call_flag(cls: str) -> Callable[[Any, Any], tuple]:
    def action(h: Any, value: Any) -> tuple:
        layer = h.build_layer(cls, LINEAR, dtype="float32")
        return (h.call(layer, h.asarray(np.full(BATCH, 0.5), "float32"), training=value, noise=_noise(h, cls)),)

    return action


#: The functional ops' inputs: ``f``, ``alpha_logits`` (info_dropout only) and injected noise.
OPS = {
    "info_dropout": ("f", "alpha_logits"),
    "binary_dropout": ("f",),
    "gaussian_dropout": ("f",),
    "lognormal_dropout": ("f",),
}


def functional(op: str, arg: str, **fixed: Any) -> Callable[[Any, Any], tuple]:
    """Call the functional ``op`` on float32 ``(2, 3)`` inputs with ``arg=value`` (an input, a keyword
    argument, or ``training``), noise injected unless ``arg`` is the noise."""

    def action(h: Any, value: Any) -> tuple:
        inputs = {name: make(h, Arr(OUT)) for name in OPS[op]}
        kwargs = {"noise": _noise(h, "BinaryDropout" if op == "binary_dropout" else "")} | fixed
        training = True
        if arg in inputs:
            inputs[arg] = make(h, value)
        elif arg == "training":
            training = value
        else:
            kwargs[arg] = make(h, value)
        out = h.functional(op, *inputs.values(), training=training, **kwargs)
        return tuple(out) if isinstance(out, tuple) else (out,)

    return action


def alpha_from_logits(arg: str) -> Callable[[Any, Any], tuple]:
    return lambda h, value: (h.module.alpha_from_logits(make(h, Arr(OUT)), **{arg: value}),)


def _collected(h: Any, x: Arr = Arr(BATCH)) -> tuple[Any, np.ndarray]:
    """A trained-mode call of ``InfoDropout(Linear(4, 3))`` and the per-sample KL it recorded."""
    layer = h.build_layer("InfoDropout", LINEAR, dtype="float32")
    h.call(layer, make(h, x), training=True, noise=None)
    return layer, h.to_numpy(h.kl(layer))


def kl_loss(h: Any, n_train: Any) -> tuple:
    layer, kl = _collected(h)
    return h.module.kl_loss(layer, n_train), 0.0, 1.0, kl, n_train


def ib_loss(arg: str) -> Callable[[Any, Any], tuple]:
    """``ib_loss(1.5, layer, beta, n_train)`` with ``arg`` (``beta`` or ``n_train``) set to the value."""

    def action(h: Any, value: Any) -> tuple:
        layer, kl = _collected(h)
        args = {"beta": 0.5, "n_train": 10} | {arg: value}
        task = 1.5
        loss = h.module.ib_loss(h.asarray(task, "float32"), layer, args["beta"], args["n_train"])
        return loss, task, args["beta"], kl, args["n_train"]

    return action


def loss_matches(h: Any, result: tuple) -> None:
    """An accepted loss is a finite scalar equal to ``task + beta * mean(kl) / n_train`` (float32)."""
    loss, task, beta, kl, n_train = result
    got = h.to_numpy(loss)
    assert got.shape == () and np.isfinite(got), got
    np.testing.assert_allclose(got, task + float(beta) * kl.mean() / int(n_train), rtol=1e-5, atol=1e-7)


def empty_batch(h: Any, x: Arr) -> tuple:
    """Two training calls on an empty batch: ``kl_loss`` after the first, ``ib_loss`` after the second."""
    layer = h.build_layer("InfoDropout", LINEAR, dtype="float32")
    z = h.call(layer, make(h, x), training=True, noise=None)
    kl = h.kl(layer)
    loss = h.module.kl_loss(layer, 10)
    h.call(layer, make(h, x), training=True, noise=None)
    return z, kl, loss, h.module.ib_loss(h.asarray(1.5, "float32"), layer, 1.0, 10)


def empty_batch_is_zero(h: Any, result: tuple) -> None:
    """An empty batch carries no information: its KL term is 0, not the NaN of an empty mean."""
    z, kl, loss, ib = (h.to_numpy(r) for r in result)
    assert z.shape == (0, 3) and kl.shape == (0,), (z.shape, kl.shape)
    assert loss.shape == () and loss == 0.0, f"kl_loss of an empty batch: {loss}"
    assert ib.shape == () and ib == 1.5, f"ib_loss of an empty batch: {ib} (task loss 1.5)"


def unbatched(h: Any, x: Arr) -> tuple:
    """A training call on input without a batch axis, then ``kl_loss``."""
    layer = h.build_layer("InfoDropout", LINEAR, dtype="float32")
    z = h.call(layer, make(h, x), training=True, noise=None)
    kl = h.kl(layer)
    return z, kl, h.module.kl_loss(layer, 10)


def unbatched_is_one_sample(h: Any, result: tuple) -> None:
    """Unbatched input gives a 0-d per-sample KL, which ``kl_loss`` counts as a batch of one."""
    z, kl, loss = (h.to_numpy(r) for r in result)
    assert z.shape == (3,) and kl.shape == (), (z.shape, kl.shape)
    assert np.isfinite(kl) and loss.shape == (), (kl, loss)
    np.testing.assert_allclose(loss, kl / 10, rtol=1e-6)


# --- the oracles: the core's own checks -------------------------------------------------


def spec_of(arg: str) -> Callable[[Any, Any], Any]:
    """What ``InfoDropoutSpec(arg=value)`` raises: the layer options' checks."""
    return lambda h, value: raised(InfoDropoutSpec, **{arg: value})


def flag_oracle(name_of: Callable[[Any], Any]) -> Callable[[Any, Any], Any]:
    """``check_flag`` under the backend's name for the mode (``training`` or ``deterministic``)."""

    def oracle(h: Any, value: Any) -> Any:
        flag = name_of(h)
        if flag is None:
            return Skip("torch sets the mode with Module.train(mode), which validates its own argument")
        name, allow_none = flag if isinstance(flag, tuple) else (flag, False)
        return raised(core.check_flag, name, value, allow_none=allow_none)

    return oracle


# --- the values --------------------------------------------------------------------------

NAN, INF = math.nan, math.inf
#: Non-numbers and non-finite numbers every float argument must refuse (bool is not a number here).
NOT_FLOATS = ("0.5", None, True, NAN, INF, -INF)
FLAGS = ("false", "True", 1, 0, None, np.True_, np.False_, True, False)
FUNCTIONAL_FLAGS = ("false", "True", 1, 0, np.True_, np.False_, True, False)
BAD_NOISE = (Arr((2, 4)), Arr((1, 3)), Arr((3,)), Arr((2, 3, 1)), Arr(OUT))


def unit_interval(lo: float = -2.0, hi: float = 3.0) -> st.SearchStrategy[float]:
    """Floats on both sides of ``[0, 1]`` with its edges, NumPy scalars included."""
    edges = st.sampled_from([0.0, -0.0, 1.0, 1.0 + 1e-12, 1e-300, 5e-324, np.float32(0.5), np.float64(1.5), 1, 0])
    return st.one_of(edges, st.floats(lo, hi, allow_nan=False))
