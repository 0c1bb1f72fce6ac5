"""The KL bookkeeping rules of ``docs/design-notes.md`` (section 3), the same in every backend.

Every training call (and every evaluation call of a layer built with ``eval_kl=True``) records
its per-sample KL; ``kl_loss`` collects every record since the last collection (a layer called
twice counts twice) and empties them; an evaluation call replaces the records instead of adding
to them. The expected sums are computed in NumPy from each call's ``.kl``.
"""

from __future__ import annotations

import numpy as np
import pytest

from ._bad_actions import LINEAR
from ._report import record

N_TRAIN = 10


def _layer(h, **options):
    return h.build_layer("InfoDropout", LINEAR, dtype="float32", **options)


def _call(h, layer, fill: float, *, training: bool, batch: int = 2):
    """Call ``layer`` on a ``(batch, 4)`` input of ``fill``; return the ``.kl`` it leaves (NumPy or None)."""
    x = h.asarray(np.full((batch, 4), fill), "float32")
    noise = h.asarray(np.full((batch, 3), 0.3), "float32") if training else None
    h.call(layer, x, training=training, noise=noise)
    kl = h.kl(layer)
    return None if kl is None else h.to_numpy(kl)


def _collect(h, layer) -> float:
    loss = h.to_numpy(h.module.kl_loss(layer, N_TRAIN))
    assert loss.shape == () and np.isfinite(loss), loss
    return float(loss)


def test_kl_loss_collects_every_call_once(harness):
    """Two training calls count twice; a second collection with no call in between is 0."""
    record(harness.name, "kl-bookkeeping/collect")
    layer = _layer(harness)
    with harness.differentiating():
        first = _call(harness, layer, 0.5, training=True)
        second = _call(harness, layer, -1.0, training=True, batch=3)
        collected = _collect(harness, layer)
    want = (first.mean() + second.mean()) / N_TRAIN
    np.testing.assert_allclose(collected, want, rtol=1e-6, err_msg="both calls, each once")
    assert _collect(harness, layer) == 0.0, "a second kl_loss with no call in between must be 0 (no stale KL)"


@pytest.mark.parametrize("eval_kl", [False, True], ids=["eval", "eval-kl"])
def test_evaluation_call_replaces_the_records(harness, eval_kl):
    """An evaluation call after training calls leaves only its own record (``eval_kl``) or none."""
    record(harness.name, "kl-bookkeeping/eval")
    layer = _layer(harness, eval_kl=eval_kl)
    with harness.differentiating():
        _call(harness, layer, 0.5, training=True)
        _call(harness, layer, 0.25, training=True)
        evaluated = _call(harness, layer, -1.0, training=False)
        collected = _collect(harness, layer)
    want = evaluated.mean() / N_TRAIN if eval_kl else 0.0
    assert (evaluated is not None) == eval_kl, f".kl after an evaluation call with eval_kl={eval_kl}: {evaluated}"
    np.testing.assert_allclose(collected, want, rtol=1e-6, err_msg="only the evaluation call's record")
