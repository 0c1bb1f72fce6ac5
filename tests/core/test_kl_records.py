"""idrop.core.kl_records: the KL records of the Keras adapters and their losses, in NumPy."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

from idrop.core import kl_records as rec
from idrop.core.loss import batch_mean


class _Layer:
    def __init__(self, records: object) -> None:
        self._kl_records = records


class _ByTag(rec.KLRecords):
    """Records of a context (the tag of a ``(tag, kl)`` record), as TensorFlow's graphs."""

    __slots__ = ()

    def same_context(self, earlier: tuple[str, float], kl: tuple[str, float]) -> bool:
        return earlier[0] == kl[0]


_NUMPY = rec.Ops(
    mean=lambda k: batch_mean(k, xp=np),
    cast=lambda k, d: np.asarray(k, d),
    zeros=lambda d: np.zeros((), d),
    dtype_name=lambda k: np.asarray(k).dtype.name,
    compute_dtype=lambda t: "float64" if t.dtype == np.float64 else "float32",
    tensor=np.asarray,
    xp=np,
)


def test_records_add_replace_and_copy_empty() -> None:
    r = rec.KLRecords()
    r.record(1.0, add=True)
    r.record(2.0, add=True)
    assert r.kls == [1.0, 2.0] and r.latest == 2.0
    r.record(3.0, add=False)  # nothing to differentiate: replaces
    r.record(4.0, add=True)  # after such a call: replaces it in turn
    assert r.kls == [4.0] and not r.inert
    r.skip()
    assert (r.kls, r.latest) == ([], None)
    r.record(5.0, add=True)
    for c in (copy.deepcopy(r), pickle.loads(pickle.dumps(r))):
        assert type(c) is rec.KLRecords and (c.kls, c.latest, c.inert) == ([], None, False)
    t = _ByTag()
    t.record(("a", 1.0), add=True)
    t.record(("a", 2.0), add=True)
    t.record(("b", 3.0), add=True)  # another context starts afresh
    assert t.kls == [("b", 3.0)] and type(copy.deepcopy(t)) is _ByTag


def test_collect_empties_unless_the_check_refuses() -> None:
    a, b = rec.KLRecords(), rec.KLRecords()
    a.record(np.ones(2), add=True)
    b.record(np.zeros(3), add=False)
    layers = [_Layer(a), _Layer(None), object(), _Layer(b)]

    def refuse(kls: list) -> None:
        raise RuntimeError(f"{len(kls)} records outside their trace")

    with pytest.raises(RuntimeError, match="2 records"):
        rec.collect(layers, refuse)
    assert len(a.kls) == 1 and len(b.kls) == 1  # nothing emptied
    assert [k.shape for k in rec.collect(layers)] == [(2,), (3,)]
    assert a.kls == [] and b.kls == [] and not b.inert and rec.collect(layers) == []


def test_kl_loss_and_ib_loss_follow_eq_5_and_check_before_collecting() -> None:
    kls = [np.array([1.0, 3.0], np.float32), np.array([], np.float64), np.float32(4.0)]
    loss = rec.kl_loss(lambda: kls, 2, _NUMPY)
    assert loss.dtype == np.float64 and loss == (2.0 + 0.0 + 4.0) / 2  # an empty batch adds 0
    empty = rec.kl_loss(list, 2, _NUMPY)
    assert empty.dtype == np.float32 and empty == 0
    ib = rec.ib_loss(np.float32(1.0), lambda: kls[:1], 3.0, 4, _NUMPY)
    assert ib.dtype == np.float32 and ib == 1.0 + 3.0 * 2.0 / 4
    assert rec.ib_loss(1.0, list, 3.0, 4, _NUMPY) == 1.0

    def never() -> list:
        raise AssertionError("collected before the arguments were checked")

    with pytest.raises(ValueError, match="`n_train`"):
        rec.kl_loss(never, 0, _NUMPY)
    with pytest.raises(ValueError, match="`beta`"):
        rec.ib_loss(1.0, never, -1.0, 4, _NUMPY)
