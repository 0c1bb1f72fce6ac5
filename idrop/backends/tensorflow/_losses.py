r"""The KL bookkeeping of the Keras layers, and ``kl_loss`` / ``ib_loss`` (eq. 5).

docs/design-notes.md section 3: every training call of an :class:`InfoDropout` (and every
evaluation call of one built with ``eval_kl=True``) records its per-sample KL in the layer's
:class:`KLRecords`; :func:`kl_loss` and :func:`ib_loss` collect, summing over layers and over
every call recorded since the last collection, and empty the records. A call with nothing to
differentiate (an evaluation call, or an eager training call while no ``GradientTape``
records) replaces the records instead of adding to them, and the next call replaces its
record in turn, so loops that never collect hold one record per layer and an evaluation KL
never joins a training step's sum. Layers with ``beta`` and ``n_train`` also ``add_loss`` their term, in Keras's
own scope (the losses of the outermost call).

Under TensorFlow a record is a tensor of the context that ran the call: an eager tensor, or a
symbolic tensor of the graph being traced (a ``tf.function``, a ``model.fit`` step). A call in
another context starts the records afresh; collecting a traced record outside its graph is
:func:`idrop.core.spec.kl_outside_its_trace`. ``model._flatten_layers`` is Keras's own walk over
sublayers (``keras.src.layers.layer.Layer._flatten_layers``, Keras 3.15). The records and the
losses' recipe are :mod:`idrop.core.kl_records`; this module adds the traced-graph rules and the
TensorFlow calls.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from idrop.backends.tensorflow._namespace import compute_dtype, dtype_name, tensor, xp
from idrop.core import kl_records as _records
from idrop.core.loss import batch_mean
from idrop.core.loss import kl_term as _kl_term
from idrop.core.spec import kl_outside_its_trace


def _graph(kl: Any) -> Any:
    """The graph a symbolic record belongs to (``None`` for an eager tensor)."""
    return kl.graph if tf.is_symbolic_tensor(kl) else None


class KLRecords(_records.KLRecords):
    """:class:`idrop.core.kl_records.KLRecords` whose records from another context (another trace,
    or eager after a trace) replace the earlier ones instead of joining their sum."""

    __slots__ = ()

    def same_context(self, earlier: Any, kl: Any) -> bool:
        return _graph(earlier) is _graph(kl)


def _in_scope(kl: Any) -> bool:
    """Whether the current context can use ``kl`` (eager tensors anywhere; graph tensors in their graph)."""
    graph = _graph(kl)
    if graph is None:
        return True
    if tf.executing_eagerly():
        return False
    current = tf.compat.v1.get_default_graph()
    while current is not None:  # a tf.cond/while body may use its enclosing function's tensors
        if current is graph:
            return True
        current = getattr(current, "outer_graph", None)
    return False


def _check_scope(kls: list[Any]) -> None:
    if not all(_in_scope(kl) for kl in kls):
        raise kl_outside_its_trace("a traced function (a tf.function or a model.fit step)")


def collect(model: keras.Layer) -> list[Any]:
    """Every KL recorded in ``model``'s layers since the last collection; empties the records.

    A record of a trace collected outside it is :func:`idrop.core.spec.kl_outside_its_trace`.
    """
    return _records.collect(model._flatten_layers(include_self=True, recursive=True), _check_scope)


def _batch_mean(kl: Any) -> Any:
    """:func:`idrop.core.loss.batch_mean`; for a traced batch of unknown size, the same rule at run time."""
    if kl.shape.rank == 0 or kl.shape[0] is not None:
        return batch_mean(kl, xp=xp)
    return tf.math.divide_no_nan(tf.reduce_sum(kl), tf.cast(tf.size(kl), kl.dtype))  # empty batch: 0, not NaN


def kl_term(kls: list[Any], n_train: int) -> Any:
    """``sum over records of mean over batch of kl / n_train`` (each mean a 0-d "sample" of the core's sum)."""
    return _kl_term([_batch_mean(kl) for kl in kls], n_train=n_train, xp=xp)


def _zeros(dtype: str) -> Any:
    return tf.zeros((), dtype)


_OPS = _records.Ops(
    mean=_batch_mean,
    cast=tf.cast,
    zeros=_zeros,
    dtype_name=dtype_name,
    compute_dtype=compute_dtype,
    tensor=tensor,
    xp=xp,
)


@tf.autograph.experimental.do_not_convert  # plain Python over Python values: nothing for AutoGraph to do
def kl_loss(model: keras.Layer, n_train: int) -> Any:
    r"""``sum over InfoDropout calls since the last collection of mean(kl) / n_train`` (eq. 5); collects.

    float32, or float64 if a layer computes in float64; 0 when nothing was recorded.
    """
    return _records.kl_loss(lambda: collect(model), n_train, _OPS)


@tf.autograph.experimental.do_not_convert
def ib_loss(task_loss: Any, model: keras.Layer, beta: float, n_train: int) -> Any:
    r"""The Information Bottleneck loss ``task_loss + beta * kl_loss(model, n_train)`` (eq. 5); collects.

    Computed in ``task_loss``'s dtype (float32 at least). Do not also give the
    layers ``beta``/``n_train`` when you use this, or the KL is counted twice.
    """
    return _records.ib_loss(task_loss, lambda: collect(model), beta, n_train, _OPS)
