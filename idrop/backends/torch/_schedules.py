r"""Beta warm-up in torch training loops: :func:`beta_schedule` (step -> beta) and :class:`BetaScheduler`.

The formulas are :mod:`idrop.core.schedules`, the same in every backend.
"""

from __future__ import annotations

from typing import Any

from idrop.core.schedules import BetaSchedule
from idrop.core.schedules import beta_schedule as beta_schedule


class BetaScheduler:
    """A stateful beta, stepped like an LR scheduler and saved with the checkpoint.

    Example:
        >>> from idrop.backends.torch import BetaScheduler, beta_schedule
        >>> sched = BetaScheduler(beta_schedule("linear", 1e-3, warmup_steps=2))
        >>> betas = []
        >>> for _ in range(3):
        ...     betas.append(sched.beta)  # loss = ib_loss(task, model, sched.beta, n_train)
        ...     _ = sched.step()
        >>> betas
        [0.0, 0.0005, 0.001]
    """

    def __init__(self, schedule: BetaSchedule, *, last_step: int = 0) -> None:
        if not isinstance(schedule, BetaSchedule):
            raise TypeError(
                "Invalid type received for argument `schedule`. Expected a BetaSchedule (from beta_schedule(...)). "
                f"Received: schedule of type {type(schedule).__name__}"
            )
        self.schedule = schedule
        self.last_step = int(last_step)

    @property
    def beta(self) -> float:
        """``beta`` at the current step."""
        return self.schedule(self.last_step)

    def step(self) -> float:
        """Advance one step; return the new ``beta``."""
        self.last_step += 1
        return self.beta

    def state_dict(self) -> dict[str, Any]:
        """The step, for ``torch.save`` with the model and optimizer."""
        return {"last_step": self.last_step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume at a saved step."""
        self.last_step = int(state["last_step"])
