"""A ``tf2onnx`` handler for TensorFlow's ``Log1p``, which tf2onnx 1.17 cannot convert.

The TensorFlow adapter's softplus is ``max(h, 0) + log1p(exp(-|h|))`` (the core's ``logaddexp``),
so without this a softplus Information Dropout model cannot go to ONNX through Keras's
``model.export(format="onnx")``. ONNX has no ``Log1p`` operator; the handler writes Kahan's exact
form ``log1p(x) = x if 1 + x == 1 else log(1 + x) * x / ((1 + x) - 1)``, accurate to rounding for
every finite ``x > -1`` (``x = inf`` gives NaN). It is registered only when tf2onnx has no
``Log1p`` handler of its own. Uses tf2onnx's public handler API (``tf2onnx.handler.tf_op``,
``Graph.make_node``/``make_const``/``remove_node``, tf2onnx 1.17).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def register_log1p() -> None:
    """Register the handler with tf2onnx (once; not if tf2onnx converts ``Log1p`` itself)."""
    from tf2onnx import utils
    from tf2onnx.handler import tf_op

    if any("Log1p" in ops for opset in tf_op.get_opsets().values() for ops in opset):
        return

    @tf_op("Log1p")
    class _Log1p:
        @classmethod
        def version_9(cls, ctx: Any, node: Any, **kwargs: Any) -> None:  # Where: opset 9
            x, out = node.input[0], node.output[0]
            np_dtype = utils.map_onnx_to_numpy_type(ctx.get_dtype(out))
            one = ctx.make_const(utils.make_name(f"{node.name}_one"), np.array(1, np_dtype)).output[0]
            u = ctx.make_node("Add", [x, one]).output[0]
            ratio = ctx.make_node(
                "Div",
                [
                    ctx.make_node("Mul", [ctx.make_node("Log", [u]).output[0], x]).output[0],
                    ctx.make_node("Sub", [u, one]).output[0],
                ],
            ).output[0]
            exact = ctx.make_node("Equal", [u, one]).output[0]
            shapes, dtypes = node.output_shapes, node.output_dtypes
            ctx.remove_node(node.name)
            ctx.make_node("Where", [exact, x, ratio], outputs=[out], shapes=shapes, dtypes=dtypes)
