r"""Warm-up schedules of ``beta``, the weight of the KL term (eq. 5), written once.

A schedule maps a training step to ``beta``; every backend evaluates the same formula:

- ``"constant"``: ``beta``.
- ``"linear"``: ``beta * min(1, step / warmup_steps)`` (KL annealing, Bowman et al. 2016).
- ``"cosine"``: ``beta * (1 - cos(pi * min(1, step / warmup_steps))) / 2``.
- ``"cyclical"``: within each cycle of ``cycle_steps`` steps, linear from 0 to ``beta`` over the first
  ``ramp`` share of the cycle, then ``beta`` (Fu et al. 2019, "Cyclical annealing schedule").

``start`` is the value at step 0 (default 0): the ramps go from ``start`` to ``beta``.

:meth:`BetaSchedule.__call__` takes a Python int and returns a Python float (torch and Keras
helpers); :meth:`BetaSchedule.at` takes an array step and a namespace with ``clip``, ``cos``,
``floor`` and ``asarray`` (``jax.numpy``: jit-safe, an optax-style schedule).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any

from .spec import invalid

KINDS = ("constant", "linear", "cosine", "cyclical")


def _count(name: str, value: Any, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise invalid(name, f"an int >= {minimum}", value)
    return int(value)


class _PyMath:
    """The four names :meth:`BetaSchedule.at` uses, over Python floats."""

    pi = math.pi

    @staticmethod
    def asarray(x: Any) -> float:
        return float(x)

    @staticmethod
    def clip(x: float, lo: float, hi: float) -> float:
        return min(max(x, lo), hi)

    cos = staticmethod(math.cos)
    floor = staticmethod(math.floor)


@dataclasses.dataclass(frozen=True)
class BetaSchedule:
    """A validated beta schedule; call it with a step (see the module docstring for the formulas).

    Example:
        >>> s = BetaSchedule("linear", beta=1e-3, warmup_steps=100)
        >>> s(0), s(50), s(100), s(1000)
        (0.0, 0.0005, 0.001, 0.001)
    """

    kind: str
    beta: float
    warmup_steps: int = 0
    cycle_steps: int | None = None
    ramp: float = 0.5
    start: float = 0.0

    def __post_init__(self) -> None:
        from .spec import check_beta

        if self.kind not in KINDS:
            raise invalid("kind", "one of " + ", ".join(repr(k) for k in KINDS), self.kind)
        object.__setattr__(self, "beta", check_beta(self.beta))
        start = self.start
        if isinstance(start, bool) or not isinstance(start, numbers.Real) or not 0 <= start < math.inf:
            raise invalid("start", "a float >= 0 (beta at step 0)", start)
        object.__setattr__(self, "start", float(start))
        if self.kind in ("linear", "cosine"):
            object.__setattr__(self, "warmup_steps", _count("warmup_steps", self.warmup_steps, minimum=1))
        if self.kind == "cyclical":
            object.__setattr__(self, "cycle_steps", _count("cycle_steps", self.cycle_steps, minimum=1))
            ramp = self.ramp
            if isinstance(ramp, bool) or not isinstance(ramp, numbers.Real) or not 0 < ramp <= 1:
                raise invalid("ramp", "a float in (0, 1] (the share of each cycle spent ramping up)", ramp)
            object.__setattr__(self, "ramp", float(ramp))

    def at(self, step: Any, *, xp: Any) -> Any:
        """``beta`` at ``step`` (an array or number), over namespace ``xp``; jit-safe with ``jax.numpy``."""
        t = xp.asarray(step) * 1.0
        if self.kind == "constant":
            return t * 0.0 + self.beta
        if self.kind == "cyclical":
            assert self.cycle_steps is not None  # __post_init__ checked it (an int >= 1) for "cyclical"
            period = float(self.cycle_steps)
            phase = t - period * xp.floor(t / period)  # step mod cycle_steps, for any sign
            frac = xp.clip(phase / (period * self.ramp), 0.0, 1.0)
        else:
            frac = xp.clip(t / float(self.warmup_steps), 0.0, 1.0)
            if self.kind == "cosine":
                frac = (1.0 - xp.cos(math.pi * frac)) / 2.0
        return self.start + (self.beta - self.start) * frac

    def __call__(self, step: int) -> float:
        """``beta`` at an integer ``step`` (>= 0), a Python float."""
        step = _count("step", step, minimum=0)
        return float(self.at(step, xp=_PyMath))


def beta_schedule(
    kind: str,
    beta: float,
    *,
    warmup_steps: int = 0,
    cycle_steps: int | None = None,
    ramp: float = 0.5,
    start: float = 0.0,
) -> BetaSchedule:
    """A :class:`BetaSchedule` (``kind`` one of ``"constant"``, ``"linear"``, ``"cosine"``, ``"cyclical"``)."""
    return BetaSchedule(kind, beta, warmup_steps, cycle_steps, ramp, start)
