"""A TorchScript-exporter symbolic for ``aten::logaddexp``, which ``torch.onnx``'s TorchScript path cannot convert.

On Keras's torch backend the core runs on the torch adapter's ops, whose softplus is ``torch.logaddexp(h, 0)``;
Keras 3.15 writes ONNX through ``torch.onnx.export(dynamo=False)`` (TorchScript) whenever the batch axis is
free (and when the dynamo exporter fails), and torch 2.13's TorchScript exporter has no ``logaddexp``, so a
softplus model could not go to ONNX there. The symbolic writes ``max(a, b) + log1p(exp(-|a - b|))`` with
Kahan's exact ``log1p(e) = e if 1 + e == 1 else log(1 + e) * e / ((1 + e) - 1)`` (ONNX has no ``Log1p``; as
``idrop.backends.tensorflow._onnx`` does for tf2onnx). The dynamo exporter decomposes ``logaddexp`` itself.
Uses torch's public ``torch.onnx.register_custom_op_symbolic`` and the graph context's ``op``.
"""

from __future__ import annotations

from typing import Any

#: The first opset with ``CastLike`` (the constant 1 in the input's dtype).
_OPSET = 15


def _logaddexp(g: Any, a: Any, b: Any) -> Any:
    e = g.op("Exp", g.op("Neg", g.op("Abs", g.op("Sub", a, b))))  # in [0, 1]
    import torch

    one = g.op("CastLike", g.op("Constant", value_t=torch.tensor(1.0)), e)
    u = g.op("Add", one, e)
    ratio = g.op("Div", g.op("Mul", g.op("Log", u), e), g.op("Sub", u, one))
    log1p = g.op("Where", g.op("Equal", u, one), e, ratio)
    return g.op("Add", g.op("Max", a, b), log1p)


def register_logaddexp() -> None:
    """Register the symbolic with ``torch.onnx`` (idempotent: a second registration replaces the first)."""
    import torch

    torch.onnx.register_custom_op_symbolic("aten::logaddexp", _logaddexp, _OPSET)
