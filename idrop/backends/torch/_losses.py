r"""The KL bookkeeping of the torch layers, and ``kl_loss`` / ``ib_loss`` that collect it (eq. 5).

The rules are docs/design-notes.md section 3, the same in every backend:

1. Every training call (and evaluation call with ``eval_kl=True``) records its per-sample KL;
   ``.kl`` is the latest call's.
2. :func:`kl_loss` and :func:`ib_loss` collect: they sum, over layers and over every call
   recorded since the last collection, ``mean over batch of the per-sample KL / n_train``, and
   empty the records. A layer called twice counts twice; a layer not called contributes nothing.
3. An empty batch contributes 0 (:func:`idrop.core.loss.batch_mean`).
4. A call with nothing to differentiate (under ``torch.no_grad``, any evaluation call) replaces
   the records instead of adding to them, so an evaluation loop that never collects holds one
   record per layer. Copies (``copy.deepcopy``, ``AveragedModel``, pickling) start with none.

torch's reading of "records never outlive their use": a record holds its call's graph, so a
training loop that reads ``.kl`` itself and never collects would keep every step's. The fused
kernel's backward marks its call as differentiated (its graph freed), and the layer's next
training call drops such records: they could only make a later backward fail. A call made
while autograd runs a backward (``torch.utils.checkpoint`` recomputing the forward) records
nothing: its KL was recorded by the forward it repeats. That test is
``torch._C._current_graph_task_id()`` (torch 2.13, ``torch/csrc/autograd/init.cpp``): -1
outside a backward. A call traced by ``torch.export`` (``torch.compiler.is_exporting()``) records
nothing: the exported program has no Python state to keep it in.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from idrop.core.loss import ib_loss as _ib_loss
from idrop.core.loss import kl_term as _kl_term
from idrop.core.spec import check_beta, check_n_train

from ._namespace import xp


class Seen:
    """Set by the fused kernel's backward: the call's graph has been differentiated."""

    __slots__ = ("seen",)

    def __init__(self) -> None:
        self.seen = False


class KLRecords:
    """Mixin of a module that records its per-sample KL (``.kl`` and the records since the last collection)."""

    kl: torch.Tensor | None

    def _clear_records(self) -> None:
        self.kl = None
        self._kl_records: list[tuple[torch.Tensor, Seen | None]] = []
        self._kl_inert = False  # the records hold one call with nothing to differentiate

    def _record(self, kl: torch.Tensor | None, *, accumulate: bool, seen: Seen | None = None) -> None:
        """Keep ``kl`` as ``.kl``; add it to the records (dropping those a backward consumed), or
        (``accumulate=False``) let it replace them. Nothing during a backward (a recomputation), nor
        while ``torch.export`` (or ``torch.onnx``, which uses it) traces the module."""
        if torch.compiler.is_exporting():
            # An exported program keeps no Python state, so a record would only leave a traced tensor
            # on the module (torch warns that a tensor attribute was assigned during export).
            return
        if not torch.compiler.is_compiling() and torch._C._current_graph_task_id() != -1:
            return  # (a compiled graph traces no recomputation of its own)
        self.kl = kl
        records = [] if kl is None else [(kl, seen)]
        if accumulate:
            # A record of a call with nothing to differentiate (under no_grad, in evaluation) must not
            # join a training step's sum, as in the TensorFlow adapter (design notes, section 3).
            old = [] if getattr(self, "_kl_inert", False) else self._kl_records
            self._kl_records = [r for r in old if r[1] is None or not r[1].seen] + records
        else:
            self._kl_records = records
        self._kl_inert = not accumulate

    def __getstate__(self) -> dict[str, Any]:
        # A record is a graph node of one step, which deepcopy refuses and pickling would carry off.
        state = super().__getstate__()  # type: ignore[misc]  # nn.Module's (mypy sees no framework types)
        state["kl"], state["_kl_records"], state["_kl_inert"] = None, [], False
        return state


def _collect(model: nn.Module) -> list[torch.Tensor]:
    """Every record of every layer of ``model`` since the last collection; the records are emptied."""
    kls: list[torch.Tensor] = []
    for m in model.modules():
        if isinstance(m, KLRecords):
            kls.extend(kl for kl, _ in m._kl_records)
            m._kl_records = []
    return kls


def _zero(model: nn.Module, like: torch.Tensor | None = None) -> torch.Tensor:
    if like is not None:
        return torch.zeros((), dtype=like.dtype, device=like.device)
    p = next(model.parameters(), None)
    return torch.zeros((), device=None if p is None else p.device)


def kl_loss(model: nn.Module, n_train: int) -> torch.Tensor:
    r"""``sum over recorded calls of mean(kl) / n_train`` since the last collection (eq. 5), collecting them.

    Args:
        model: any module holding :class:`~idrop.backends.torch.InfoDropout` layers.
        n_train: size of the training set (an int >= 1, NumPy integers included).

    Returns:
        A 0-d tensor; 0 when no layer was called since the last collection.
    """
    n_train = check_n_train(n_train)
    kls = _collect(model)
    return _kl_term(kls or [_zero(model)], n_train=n_train, xp=xp)


def ib_loss(task_loss: torch.Tensor, model: nn.Module, beta: float, n_train: int) -> torch.Tensor:
    r"""The Information Bottleneck loss ``task_loss + beta * kl_loss(model, n_train)`` (eq. 5), collecting."""
    beta, n_train = check_beta(beta), check_n_train(n_train)
    kls = _collect(model) or [_zero(model, task_loss)]
    return _ib_loss(task_loss, kls, beta=beta, n_train=n_train, xp=xp)
