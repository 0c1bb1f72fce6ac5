"""Export, the rules every backend shares: the two graphs and the format of the file.

Every backend's ``export(model, path, x, *, sampling=False, format=None, dynamic_batch=False)`` writes one
of two graphs:

- the **evaluation graph** ``x -> model(x)`` (every layer in evaluation mode: no noise, batch
  norm on its running statistics);
- the **sampling graph** ``(x, eps_1, ..., eps_k) -> model(x)`` with the noise of Information
  Dropout on: the standard-normal draws ``eps_i`` of the ``k`` ``InfoDropout`` layers, in the
  order the model calls them, are inputs of the graph (each shaped like that layer's output for
  ``x``), so any runtime can draw them; every other layer stays in evaluation mode. Each layer
  must be called once per forward pass (a layer called twice would get the same draws).

The example input ``x`` fixes the shapes (the batch size too, unless ``dynamic_batch=True``, which
leaves the first axis of ``x`` and of every noise free). The format is chosen from
``format``, else from the path's suffix (``.onnx``: ONNX).
"""

from __future__ import annotations

from typing import Any

from .spec import _check_choice


def export_format(path: Any, fmt: str | None, formats: tuple[str, ...]) -> str:
    """The format to write: ``fmt`` if given (one of ``formats``), else ONNX for a ``.onnx`` path,
    else ``formats[0]``."""
    if fmt is None:
        return "onnx" if str(path).endswith(".onnx") and "onnx" in formats else formats[0]
    return _check_choice("format", fmt, formats)


def noise_input_names(count: int) -> list[str]:
    """The names of the sampling graph's inputs: ``x``, then ``noise_0`` ... ``noise_{count-1}``."""
    return ["x", *(f"noise_{i}" for i in range(count))]
