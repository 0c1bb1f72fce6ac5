r"""KL records held beside a layer, and the losses that collect them (docs/design-notes.md section 3).

The Keras adapters (:mod:`idrop.backends.keras` on every Keras backend, :mod:`idrop.backends.tensorflow`)
keep each InfoDropout's per-sample KLs in a :class:`KLRecords` object: every training call (and every
evaluation call of a layer built with ``eval_kl=True``) records its KL; :func:`collect` hands over
and empties every record of a model, for :func:`kl_loss` and :func:`ib_loss` (eq. 5). A call with
nothing to differentiate (``add`` false) replaces the records instead of adding to them, and the next
call replaces its record in turn, so loops that never collect hold one record per layer and an
evaluation KL never joins a training step's sum.

Written once here in plain Python over the framework's calls (:class:`Ops`); a
framework whose records belong to a context (TensorFlow's traced graphs) subclasses
:class:`KLRecords` and passes :func:`collect` its check.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

from .loss import ib_loss as _ib_loss
from .loss import kl_term as _kl_term
from .spec import check_beta, check_n_train


class KLRecords:
    """One layer's per-sample KLs since the last collection, and ``latest``, the last call's (``.kl``).

    Copies (``copy.deepcopy``, pickling) start with no records.
    """

    __slots__ = ("inert", "kls", "latest")

    def __init__(self) -> None:
        self.kls: list[Any] = []
        self.latest: Any = None
        self.inert = False  # the records hold one call with nothing to differentiate

    def same_context(self, earlier: Any, kl: Any) -> bool:
        """Whether ``kl`` may join a sum with the record ``earlier`` (always, unless a subclass says no)."""
        return True

    def record(self, kl: Any, *, add: bool) -> None:
        """Record one call's KL: added to the records, or replacing them.

        It replaces them when nothing can differentiate it (``add`` false), when the records are
        such a call's (an evaluation KL must not join the next training step's sum), and when
        they come from another context (:meth:`same_context`).
        """
        if not add or self.inert or (self.kls and not self.same_context(self.kls[-1], kl)):
            self.kls = []
        self.kls.append(kl)
        self.latest, self.inert = kl, not add

    def skip(self) -> None:
        """An evaluation call that computes no KL: nothing recorded, and no stale record kept."""
        self.kls, self.latest, self.inert = [], None, False

    def __deepcopy__(self, memo: dict[int, Any]) -> KLRecords:
        return type(self)()

    def __getstate__(self) -> dict[str, Any]:
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        KLRecords.__init__(self)


def collect(layers: Iterable[Any], check: Callable[[list[Any]], None] | None = None) -> list[Any]:
    """Every KL recorded by ``layers`` (their ``_kl_records``) since the last collection; empties the records.

    ``check(kls)`` runs first and may raise (a record the caller cannot use): then nothing is emptied.
    """
    holders = [r for r in (getattr(m, "_kl_records", None) for m in layers) if isinstance(r, KLRecords)]
    kls = [kl for records in holders for kl in records.kls]
    if check is not None:
        check(kls)
    for records in holders:
        records.kls, records.inert = [], False
    return kls


class Ops(NamedTuple):
    """The framework calls the losses need (one constant per adapter)."""

    mean: Callable[[Any], Any]  #: the batch mean of a per-sample KL (:func:`idrop.core.loss.batch_mean`)
    cast: Callable[[Any, str], Any]  #: ``cast(tensor, dtype name)``
    zeros: Callable[[str], Any]  #: a 0-d zero of a dtype name
    dtype_name: Callable[[Any], str]  #: a tensor's dtype name
    compute_dtype: Callable[[Any], str]  #: the dtype a loss is computed in (float32 at least)
    tensor: Callable[[Any], Any]  #: a tensor of the framework from a Python/NumPy/framework value
    xp: Any  #: the namespace the core's sums run on


def kl_loss(collect: Callable[[], list[Any]], n_train: int, ops: Ops) -> Any:
    r"""``sum over records of mean(kl) / n_train`` (eq. 5) of the records ``collect()`` hands over.

    ``n_train`` is checked before anything is collected. float32, or float64 if a record is
    float64; a 0-d zero when there is no record.
    """
    n_train = check_n_train(n_train)
    kls = collect()
    dtype = "float64" if any(ops.dtype_name(k) == "float64" for k in kls) else "float32"
    if not kls:
        return ops.zeros(dtype)
    return _kl_term([ops.mean(ops.cast(k, dtype)) for k in kls], n_train=n_train, xp=ops.xp)


def ib_loss(task_loss: Any, collect: Callable[[], list[Any]], beta: float, n_train: int, ops: Ops) -> Any:
    r"""``task_loss + beta * sum over records of mean(kl) / n_train`` (eq. 5), in ``task_loss``'s compute dtype.

    ``beta`` and ``n_train`` are checked before anything is collected.
    """
    beta, n_train = check_beta(beta), check_n_train(n_train)
    task_loss = ops.tensor(task_loss)
    dtype = ops.compute_dtype(task_loss)
    means = [ops.mean(ops.cast(k, dtype)) for k in collect()] or [ops.zeros(dtype)]
    return _ib_loss(ops.cast(task_loss, dtype), means, beta=beta, n_train=n_train, xp=ops.xp)
