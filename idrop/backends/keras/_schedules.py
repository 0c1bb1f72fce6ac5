r"""Beta warm-up for Keras: :func:`beta_schedule` (step -> beta) and the :class:`BetaScheduler` callback.

Written on ``keras.ops`` only (any Keras backend). The formulas are :mod:`idrop.core.schedules`, the
same in every backend. Inside ``model.fit`` the callback makes each InfoDropout built with ``beta`` and
``n_train`` (the layers that add the KL term to the loss) compute its beta from the optimizer's step
counter *inside* the compiled train step, as an optax schedule would: nothing is assigned per batch,
and it works alike under TensorFlow's ``tf.function``, JAX's ``jit`` and torch.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from idrop.core.schedules import BetaSchedule
from idrop.core.schedules import beta_schedule as beta_schedule

from ._keras_tools import is_info_dropout, layers_of, xp


def _check_schedule(schedule: Any) -> BetaSchedule:
    if not isinstance(schedule, BetaSchedule):
        raise TypeError(
            "Invalid type received for argument `schedule`. Expected a BetaSchedule (from beta_schedule(...)). "
            f"Received: schedule of type {type(schedule).__name__}"
        )
    return schedule


class BetaScheduler(keras.callbacks.Callback):
    """Warm ``beta`` up during ``model.fit``: the KL term of each InfoDropout follows ``schedule``.

    The step is the optimizer's ``iterations`` (so a resumed fit continues the schedule); the value
    replaces the ``beta`` each InfoDropout was built with, for the InfoDropout layers built with
    ``beta=`` and ``n_train=``. ``logs["beta"]`` records it at each epoch's end. After ``fit`` the
    layers use their own ``beta`` again.

    Example:
        >>> from idrop.backends.tensorflow import BetaScheduler, beta_schedule
        >>> callback = BetaScheduler(beta_schedule("linear", 1e-3, warmup_steps=1000))
        >>> # model.fit(x, y, callbacks=[callback])

    Raises:
        ValueError: at the start of ``fit``, when no InfoDropout of the model has ``beta`` and ``n_train``.
    """

    def __init__(self, schedule: BetaSchedule) -> None:
        super().__init__()
        self.schedule = _check_schedule(schedule)
        self._layers: list[keras.Layer] = []

    def beta_at(self, step: int) -> float:
        """``beta`` at ``step``, a Python float (the same value the compiled step computes)."""
        return self.schedule(step)

    def _current(self) -> Any:
        return self.schedule.at(self.model.optimizer.iterations, xp=xp)

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._layers = [
            layer for _, layer in layers_of(self.model) if is_info_dropout(layer) and layer.beta is not None
        ]
        if not self._layers:
            raise ValueError(
                "Invalid value received for argument `model`. Expected a model holding an InfoDropout built with "
                "`beta=` and `n_train=` (the layers that add the KL term in model.fit); with ib_loss in a custom "
                "step, read beta_schedule(...)(step) there instead. Received: a model without one"
            )
        for layer in self._layers:
            object.__setattr__(layer, "_beta_schedule", self._current)  # plain attribute: never saved
        self.model.make_train_function(force=True)  # a step traced before would keep the fixed beta

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        for layer in self._layers:
            object.__setattr__(layer, "_beta_schedule", None)
        self._layers = []
        self.model.make_train_function(force=True)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if logs is not None:
            logs["beta"] = float(ops.convert_to_numpy(self._current()))
