"""Export for torch: ``torch.export`` programs (``.pt2``) and ONNX, of the evaluation graph and of
the sampling graph with the noise as inputs (the rules in :mod:`idrop.core.export`).

The sampling graph feeds each ``InfoDropout`` layer its ``noise=`` through a forward pre-hook
(``register_forward_pre_hook(..., with_kwargs=True)``), which ``torch.export`` traces into the
graph, and turns on only the layers' own training flag (not their children's: a batch norm given
as ``norm=`` stays on its running statistics). The layers record no KL while ``torch.export`` traces
them (``KLRecords._record``), so an export assigns no tensor attribute and warns of none.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from idrop.core.export import export_format, noise_input_names

from ._layers import InfoDropout
from ._losses import KLRecords


def _info_layers(model: nn.Module) -> list[InfoDropout]:
    return [m for m in model.modules() if isinstance(m, InfoDropout)]


@contextlib.contextmanager
def _modes(model: nn.Module, noisy: list[InfoDropout]) -> Iterator[None]:
    """Every module in evaluation, the ``noisy`` layers (their own flag only) in training; restored after,
    with the KL records (a traced call must not leave its tensors there, nor drop a step's records)."""
    saved = [(m, m.training) for m in model.modules()]
    records = [(m, m.kl, list(m._kl_records)) for m in model.modules() if isinstance(m, KLRecords)]
    model.eval()
    for layer in noisy:
        layer.training = True
    try:
        yield
    finally:
        for m, flag in saved:
            m.training = flag
        for m, kl, kept in records:
            m.kl, m._kl_records = kl, kept


def noise_shapes(model: nn.Module, x: torch.Tensor) -> list[tuple[int, ...]]:
    """The shape of each ``InfoDropout`` layer's output for ``x``, in call order: the sampling graph's noise inputs."""
    shapes: list[tuple[int, tuple[int, ...]]] = []
    hooks = [
        layer.register_forward_hook(lambda m, i, out, k=k: shapes.append((k, tuple(out.shape))))
        for k, layer in enumerate(_info_layers(model))
    ]
    try:
        with _modes(model, []), torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return [s for _, s in shapes]


class _Sampling(nn.Module):
    """``(x, *noises) -> model(x)`` with ``noises[i]`` fed to the ``i``-th InfoDropout call."""

    def __init__(self, model: nn.Module, order: list[InfoDropout]) -> None:
        super().__init__()
        self.model = model
        self.order = order

    def forward(self, x: torch.Tensor, *noises: torch.Tensor) -> Any:
        hooks = [
            layer.register_forward_pre_hook(lambda m, args, kw, eps=eps: (args, {**kw, "noise": eps}), with_kwargs=True)
            for layer, eps in zip(self.order, noises)
        ]
        try:
            return self.model(x)
        finally:
            for h in hooks:
                h.remove()


def _call_order(model: nn.Module, x: torch.Tensor) -> list[InfoDropout]:
    order: list[InfoDropout] = []
    hooks = [layer.register_forward_hook(lambda m, i, o: order.append(m)) for layer in _info_layers(model)]
    try:
        with _modes(model, []), torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return order


def export(
    model: nn.Module,
    path: str | Path,
    x: torch.Tensor,
    *,
    sampling: bool = False,
    format: str | None = None,
    dynamic_batch: bool = False,
) -> Any:
    """Write the evaluation graph of ``model`` (or, with ``sampling=True``, its sampling graph) to ``path``.

    The sampling graph takes ``(x, noise_0, ..., noise_{k-1})``: the standard-normal draws of the
    ``k`` ``InfoDropout`` layers in call order (shapes: :func:`noise_shapes`), see :mod:`idrop.core.export`.
    The model's modes are restored afterwards.

    Args:
        model: an ``nn.Module``.
        path: the file to write: ``.pt2`` (``torch.export.save``) or ``.onnx`` (``torch.onnx.export``,
            needs ``pip install "idrop[export]"``).
        x: an example input; it fixes the shapes.
        sampling: write the sampling graph instead of the evaluation graph.
        format: ``"pt2"`` or ``"onnx"``; default from the path's suffix.
        dynamic_batch: let the graph take any batch size (the first axis of ``x`` and of every
            noise; ``torch.export.Dim``); ``x`` must then have a batch of at least 2.

    Returns:
        The ``torch.export.ExportedProgram`` (``"pt2"``) or the ``torch.onnx.ONNXProgram`` (``"onnx"``).

    Example:
        >>> import tempfile, torch
        >>> from idrop.backends.torch import InfoDropout, export, noise_shapes
        >>> model = torch.nn.Sequential(InfoDropout(torch.nn.Linear(4, 3)), torch.nn.Linear(3, 2))
        >>> x = torch.randn(5, 4)
        >>> program = export(model, f"{tempfile.mkdtemp()}/sampling.pt2", x, sampling=True)
        >>> eps = [torch.randn(s) for s in noise_shapes(model, x)]
        >>> program.module()(x, *eps).shape
        torch.Size([5, 2])
    """
    fmt = export_format(path, format, ("pt2", "onnx"))
    order = _call_order(model, x) if sampling else []
    noises = tuple(torch.randn(s, dtype=x.dtype, device=x.device) for s in noise_shapes(model, x)) if sampling else ()
    wrapper = _Sampling(model, order)
    wrapper.training = False  # its own flag only (the model's modes are _modes's): torch.onnx warns of a training one
    dynamic = None
    if dynamic_batch:
        batch = torch.export.Dim("batch")
        dynamic = {"x": {0: batch}} | ({"noises": tuple({0: batch} for _ in noises)} if noises else {})
    with _modes(model, order), torch.no_grad():
        if fmt == "onnx":
            names = noise_input_names(len(noises))
            with warnings.catch_warnings():
                # One `batch` Dim ties every input's batch axis on purpose; torch.onnx warns for each
                # input after the first that the (same) name is not used again.
                warnings.filterwarnings(
                    "ignore", message=r"# The axis name: batch will not be used", category=UserWarning
                )
                program = torch.onnx.export(
                    wrapper, (x, *noises), input_names=names, dynamic_shapes=dynamic, dynamo=True, verbose=False
                )
            program.save(str(path))
            return program
        program = torch.export.export(wrapper, (x, *noises), dynamic_shapes=dynamic)
    torch.export.save(program, str(path))
    return program
