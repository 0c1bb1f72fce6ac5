r"""The KL bookkeeping of the Keras layers, and ``kl_loss`` / ``ib_loss`` (eq. 5), on every Keras backend.

The rules are docs/design-notes.md section 3 (see :mod:`idrop.backends.tensorflow._losses`,
which this module IS on the TensorFlow backend: records that belong to a traced graph are
checked there). On JAX and torch a record is a tensor of the call that made it: an eager
tensor, or a tracer of the ``jax.jit`` step that ran the call (Keras's ``model.fit`` step);
collect a traced record inside the function that traced it, as ``add_loss`` does.
A call with nothing to differentiate (an evaluation call, or a torch call under ``no_grad``)
replaces the records instead of adding to them.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from idrop.backends.keras._namespace import BACKEND, compute_dtype, dtype_name, tensor, xp
from idrop.core.loss import batch_mean
from idrop.core.loss import ib_loss as _ib_loss
from idrop.core.loss import kl_term as _kl_term
from idrop.core.spec import check_beta, check_n_train


class KLRecords:
    """One layer's per-sample KLs since the last collection, and ``latest``, the last call's (``.kl``).

    Copies (``copy.deepcopy``, pickling) start with no records.
    """

    __slots__ = ("inert", "kls", "latest")

    def __init__(self) -> None:
        self.kls: list[Any] = []
        self.latest: Any = None
        self.inert = False  # the records hold one call with nothing to differentiate

    def record(self, kl: Any, *, add: bool) -> None:
        """Record one call's KL: added to the records, or replacing them (see the TensorFlow module)."""
        if not add or self.inert:
            self.kls = []
        self.kls.append(kl)
        self.latest, self.inert = kl, not add

    def skip(self) -> None:
        """An evaluation call that computes no KL: nothing recorded, and no stale record kept."""
        self.kls, self.latest, self.inert = [], None, False

    def __deepcopy__(self, memo: dict) -> KLRecords:
        return KLRecords()

    def __getstate__(self) -> dict:
        return {}

    def __setstate__(self, state: dict) -> None:
        self.__init__()


def collect(model: keras.Layer) -> list[Any]:
    """Every KL recorded in ``model``'s layers since the last collection; empties the records."""
    holders = [
        m._kl_records
        for m in model._flatten_layers(include_self=True, recursive=True)
        if isinstance(getattr(m, "_kl_records", None), KLRecords)
    ]
    kls = [kl for records in holders for kl in records.kls]
    for records in holders:
        records.kls, records.inert = [], False
    return kls


def kl_term(kls: list[Any], n_train: int) -> Any:
    """``sum over records of mean over batch of kl / n_train`` (an empty batch contributes 0)."""
    return _kl_term([batch_mean(kl, xp=xp) for kl in kls], n_train=n_train, xp=xp)


def kl_loss(model: keras.Layer, n_train: int) -> Any:
    r"""``sum over InfoDropout calls since the last collection of mean(kl) / n_train`` (eq. 5); collects.

    float32, or float64 if a layer computes in float64; 0 when nothing was recorded.
    """
    n_train = check_n_train(n_train)
    kls = collect(model)
    dtype = "float64" if any(dtype_name(k) == "float64" for k in kls) else "float32"
    return kl_term([ops.cast(k, dtype) for k in kls], n_train) if kls else ops.zeros((), dtype)


def ib_loss(task_loss: Any, model: keras.Layer, beta: float, n_train: int) -> Any:
    r"""The Information Bottleneck loss ``task_loss + beta * kl_loss(model, n_train)`` (eq. 5); collects.

    Computed in ``task_loss``'s dtype (float32 at least). Do not also give the
    layers ``beta``/``n_train`` when you use this, or the KL is counted twice.
    """
    beta, n_train = check_beta(beta), check_n_train(n_train)
    task_loss = tensor(task_loss)
    dtype = compute_dtype(task_loss)
    means = [batch_mean(ops.cast(k, dtype), xp=xp) for k in collect(model)] or [ops.zeros((), dtype)]
    return _ib_loss(ops.cast(task_loss, dtype), means, beta=beta, n_train=n_train, xp=xp)


if BACKEND == "tensorflow":
    # The TensorFlow adapter's bookkeeping (records of a traced graph, AutoGraph-free losses).
    # Assignments, not a `from` import, which a linter would prune as redefinitions.
    from idrop.backends.tensorflow import _losses as _tf

    KLRecords = _tf.KLRecords  # type: ignore[misc]
    collect = _tf.collect
    ib_loss = _tf.ib_loss
    kl_loss = _tf.kl_loss
    kl_term = _tf.kl_term
