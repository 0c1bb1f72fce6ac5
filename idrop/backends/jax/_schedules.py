r"""Beta warm-up for JAX loops: :func:`beta_schedule`, an optax-style schedule (``step -> beta``, jit-safe).

The formulas are :mod:`idrop.core.schedules`, the same in every backend; here they run on
``jax.numpy``, so the schedule takes a traced step inside ``jax.jit`` and returns a float32 array.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from idrop.core.schedules import BetaSchedule


class JaxBetaSchedule(BetaSchedule):
    """A :class:`~idrop.core.schedules.BetaSchedule` whose call takes an int or a (traced) array step."""

    def __call__(self, step: Any) -> jax.Array:
        return jnp.asarray(self.at(jnp.asarray(step, dtype=jnp.float32), xp=jnp), dtype=jnp.float32)


def beta_schedule(
    kind: str,
    beta: float,
    *,
    warmup_steps: int = 0,
    cycle_steps: int | None = None,
    ramp: float = 0.5,
    start: float = 0.0,
) -> JaxBetaSchedule:
    """An optax-style schedule ``step -> beta`` (see :mod:`idrop.core.schedules` for the kinds).

    Example:
        >>> from idrop.backends.jax import beta_schedule
        >>> s = beta_schedule("cosine", 1e-3, warmup_steps=100)
        >>> round(float(s(50)), 7)  # float32
        0.0005
    """
    return JaxBetaSchedule(kind, beta, warmup_steps, cycle_steps, ramp, start)
