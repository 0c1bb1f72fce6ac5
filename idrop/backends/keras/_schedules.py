r"""Beta warm-up for Keras: :func:`beta_schedule` (step -> beta) and the :class:`BetaScheduler` callback.

Written on ``keras.ops`` only (any Keras backend). The formulas are :mod:`idrop.core.schedules`, the
same in every backend. Inside ``model.fit`` the callback makes each InfoDropout built with ``beta`` and
``n_train`` (the layers that add the KL term to the loss) compute its beta from the optimizer's step
counter *inside* the compiled train step, as an optax schedule would: nothing is assigned per batch,
and it works alike under TensorFlow's ``tf.function``, JAX's ``jit`` and torch.

On JAX the compiled step is stateless: Keras's trainer passes the optimizer's variables to
``train_step(state, data)`` as traced arrays (``state[2]``) and purges the variables' own values during
``fit``, and the forward pass maps only the model's weights. So for the length of ``fit`` the callback
wraps the model's ``train_step`` to read ``optimizer.iterations`` from that traced state (under a
``keras.StatelessScope`` mapping the optimizer's variables, so a wrapped optimizer or gradient
accumulation gives its own ``iterations``) before the step runs; the layers' ``beta`` reads it.
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
        step = getattr(self, "_traced_step", None)  # JAX: the step of the train_step being traced
        if step is not None or keras.backend.backend() != "jax":
            return self.schedule.at(self.model.optimizer.iterations if step is None else step, xp=xp)
        try:  # outside a traced step: the variable's value, unless Keras's JAX trainer has purged it
            return self.schedule.at(self.model.optimizer.iterations, xp=xp)
        except TypeError as error:  # a purged variable has no value and no initializer
            raise RuntimeError(
                "BetaScheduler on the JAX backend reads the optimizer step from the state Keras passes to "
                "`train_step(state, data)`, through the model's `train_step` attribute; this step was traced "
                "without it (Keras's NNX mode calls the class's `train_step`). Read beta_schedule(...)(step) "
                "in the step instead."
            ) from error

    def _wrap_jax_train_step(self) -> None:
        """Make ``self._traced_step`` the traced ``optimizer.iterations`` while each JAX train step is traced."""
        model, optimizer = self.model, self.model.optimizer
        original = model.train_step

        def train_step(state: Any, data: Any) -> Any:
            optimizer_variables = state[2]  # (trainable, non-trainable, optimizer, metrics): Keras's JAX trainer
            with keras.StatelessScope(state_mapping=list(zip(optimizer.variables, optimizer_variables))):
                self._traced_step = ops.convert_to_tensor(optimizer.iterations)
            try:
                return original(state, data)
            finally:
                self._traced_step = None  # a tracer must not outlive its trace

        self._previous = model.__dict__.get("train_step")  # a train_step the user set on the instance
        object.__setattr__(model, "train_step", train_step)
        self._wrapped = model

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
        if keras.backend.backend() == "jax":
            self._wrap_jax_train_step()
        self.model.make_train_function(force=True)  # a step traced before would keep the fixed beta

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        for layer in self._layers:
            object.__setattr__(layer, "_beta_schedule", None)
        self._layers = []
        wrapped = getattr(self, "_wrapped", None)
        if wrapped is not None:
            wrapped.__dict__.pop("train_step", None)
            if self._previous is not None:
                object.__setattr__(wrapped, "train_step", self._previous)
            self._wrapped = self._previous = None
        self.model.make_train_function(force=True)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if logs is not None:
            logs["beta"] = float(ops.convert_to_numpy(self._current()))
