r"""The KL bookkeeping of the NNX layers, and ``kl_loss`` / ``ib_loss`` that collect it (eq. 5).

As Flax's ``sow``/``pop`` (docs/design-notes.md section 3): every recorded call adds its
``mean over batch of the per-sample KL`` to the layer's ``kl_pending``, and ``.kl`` holds the
latest call's per-sample KL; :func:`kl_loss` and :func:`ib_loss` sum ``kl_pending`` over the
layers and pop both (back to ``None``). So a layer called twice counts twice, a layer not called
since the last collection contributes nothing, a second ``kl_loss`` returns 0, an empty batch
adds 0 and an unbatched call (a 0-d KL) adds one sample's KL.

Why a running sum rather than a tuple of records, and why the collection pops ``.kl`` too:
the records are module state, and a jitted step (``nnx.jit``) takes module state in and gives
it back out. A tuple would grow by one array per call until collected and a batch-shaped
``.kl`` would go from ``None`` to ``[batch]``: either changes the state's structure or shapes
between steps, so the step would compile again. Kept as a 0-d sum, and popped by the
collection inside the step, both are ``None`` at every step boundary and the step compiles
once. Records that no one collects (a loop that only evaluates, or reads ``.kl`` itself) stay
one scalar per layer. Copies (``copy.deepcopy``, pickling) start with no records.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import errors as flax_errors
from flax import nnx

from idrop.core.loss import batch_mean
from idrop.core.loss import ib_loss as _ib_loss
from idrop.core.loss import kl_term as _kl_term
from idrop.core.spec import check_beta, check_n_train

from ._namespace import xp


class KLTerm(nnx.Intermediate):
    """The KL an :class:`InfoDropout` layer keeps: ``.kl`` (latest call, ``[batch]``) and ``.kl_pending``.

    Filter it out of checkpoints (``nnx.state(model, nnx.Not(KLTerm))``): its shape follows the batch.
    """

    # A copy starts with no records. pickle calls __getstate__ (flax.nnx.Variable.__getstate__,
    # flax 0.12); copy.deepcopy of a module (flax.nnx.Pytree.__deepcopy__) deep-copies each
    # Variable, which would otherwise find the array's own __deepcopy__ through Variable.__getattr__.
    def __getstate__(self) -> dict[str, Any]:
        return {**super().__getstate__(), "_raw_value": None}

    def __deepcopy__(self, memo: dict) -> KLTerm:
        return self.copy(None)


def record(layer: nnx.Module, kl: jax.Array, *, replace: bool) -> None:
    """Keep the per-sample ``kl`` of one call on ``layer.kl`` and add its batch mean to ``layer.kl_pending``.

    ``replace``: an evaluation call (``eval_kl``) replaces the pending records instead of adding to
    them, so an evaluation loop that never collects holds one record per layer.
    """
    mean = batch_mean(kl.astype(jnp.promote_types(kl.dtype, jnp.float32)), xp=xp)
    pending = layer.kl_pending.get_value()
    layer.kl_pending.set_value(mean if replace or pending is None else pending + mean)
    layer.kl.set_value(kl)


def drop(layer: nnx.Module) -> None:
    """An evaluation call without ``eval_kl`` records nothing and drops the records (design notes,
    section 3, rule 4) where Flax lets the call mutate the module. Under a plain ``jax.jit``/``grad``/
    ``vmap``, where a Flax module may not mutate (``flax.errors.TraceContextError``), an evaluation call
    leaves them, so that the layer runs there at all, as ``nnx.Dropout`` does."""
    if layer.kl_pending.get_value() is None and layer.kl.get_value() is None:
        return  # nothing to drop: no mutation, also under any transform
    try:
        layer.kl_pending.set_value(None)
        layer.kl.set_value(None)
    except flax_errors.TraceContextError:
        pass


def _collect(model: nnx.Module) -> list[jax.Array]:
    """Every layer's pending KL sum, popped: layers with nothing pending are left untouched."""
    sums = []
    for _, module in nnx.iter_modules(model):
        pending = getattr(module, "kl_pending", None)
        if isinstance(pending, KLTerm) and pending.get_value() is not None:
            sums.append(pending.get_value())
            pending.set_value(None)
            module.kl.set_value(None)
    return sums


def kl_loss(model: nnx.Module, n_train: int) -> jax.Array:
    r"""``sum over InfoDropout layers and their calls since the last collection of mean(kl) / n_train``.

    Call it inside the loss function, after the forward pass; it pops what it sums, so each
    call's KL enters one loss only. Float32 at least.
    """
    n_train = check_n_train(n_train)
    return _kl_term(_collect(model) or [jnp.zeros((), jnp.float32)], n_train=n_train, xp=xp)


def ib_loss(task_loss: jax.Array, model: nnx.Module, beta: float, n_train: int) -> jax.Array:
    r"""The Information Bottleneck loss ``task_loss + beta * kl_loss(model, n_train)`` (eq. 5)."""
    beta, n_train = check_beta(beta), check_n_train(n_train)  # before the collection empties anything
    return _ib_loss(task_loss, _collect(model) or [jnp.zeros((), jnp.float32)], beta=beta, n_train=n_train, xp=xp)
