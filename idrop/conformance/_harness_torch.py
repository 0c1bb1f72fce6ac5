"""Conformance harness for :mod:`idrop.backends.torch`: conversions only (torch's layout is the reference)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from idrop.backends import torch as backend
from idrop.conformance._harness import DTYPES, Map

_DTYPES = {
    "float64": torch.float64,
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "int32": torch.int32,
    "int64": torch.int64,
}


class TorchHarness:
    name = "torch"
    framework = f"torch {torch.__version__}"
    module = backend
    dtypes = DTYPES
    channels_last = False
    batchless_maps = True
    functional_flag = "training"
    layer_flag = None  # the mode is Module.train(mode), which torch validates itself

    def asarray(self, a: Any, dtype: str) -> torch.Tensor:
        a = np.asarray(a)
        source = a.astype(np.float64) if dtype in DTYPES else a.astype(dtype)
        return torch.tensor(source, dtype=_DTYPES[dtype])

    def to_numpy(self, t: torch.Tensor) -> np.ndarray:
        return t.detach().to(torch.float64).cpu().numpy()

    def dtype_name(self, t: torch.Tensor) -> str:
        return str(t.dtype).removeprefix("torch.")

    def make_map(self, spec: Map, dtype: str) -> torch.nn.Module | None:
        dt = _DTYPES[dtype]
        if spec.kind == "linear":
            return torch.nn.Linear(spec.n_in, spec.n_out, dtype=dt)
        if spec.kind == "conv2d":
            return torch.nn.Conv2d(
                spec.n_in, spec.n_out, spec.kernel, stride=spec.stride, padding=spec.padding, dtype=dt
            )
        if spec.kind == "batch_norm":
            return torch.nn.BatchNorm1d(spec.n_out, dtype=dt)
        if spec.kind == "linear_relu":
            return None  # torch maps carry no activation
        raise KeyError(spec.kind)

    def build_layer(self, cls: str, layer: Any, *, dtype: str, input_shape: Any = None, **options: Any) -> Any:
        layer = self.make_map(layer, dtype) if isinstance(layer, Map) else layer
        options = {k: self.make_map(v, dtype) if isinstance(v, Map) else v for k, v in options.items()}
        return getattr(backend, cls)(layer, **options)

    def parameters(self, layer: Any) -> dict[str, Any]:
        params = {"weight": layer.layer.weight, "bias": layer.layer.bias}
        if getattr(layer, "alpha_rank", None) is not None:
            a = layer.alpha_layer
            params |= {"alpha_down": a.down.weight, "alpha_weight": a.up.weight, "alpha_bias": a.up.bias}
        elif getattr(layer, "alpha_layer", None) is not None:
            params |= {"alpha_weight": layer.alpha_layer.weight, "alpha_bias": layer.alpha_layer.bias}
        if getattr(layer, "mu", None) is not None:
            params |= {"mu": layer.mu, "log_sigma": layer.log_sigma}
        return params

    def assign(self, variable: torch.Tensor, value: np.ndarray) -> None:
        with torch.no_grad():
            variable.copy_(self.asarray(value, self.dtype_name(variable)))

    def call(self, layer: Any, x: Any, *, training: Any, noise: Any = None) -> Any:
        layer.train(training)
        return layer(x, noise=noise)

    def kl(self, layer: Any) -> Any:
        return layer.kl

    def differentiating(self) -> Any:
        return torch.enable_grad()

    def functional(self, op: str, *args: Any, training: Any = True, seed: int | None = None, **kwargs: Any) -> Any:
        if seed is not None:
            kwargs["generator"] = torch.Generator().manual_seed(seed)
        return getattr(backend, op)(*args, training=training, **kwargs)

    def vjp(self, fn, inputs, cotangents, layer=None):
        leaves = {k: v.detach().clone().requires_grad_(True) for k, v in inputs.items()}
        params = self.parameters(layer) if layer is not None else {}
        outs = fn(layer, **leaves)
        loss = sum(
            (o * self.asarray(c, self.dtype_name(o))).sum()
            for o, c in zip(outs, cotangents)
            if o is not None and c is not None
        )
        wrt = [*leaves.values(), *params.values()]
        grads = torch.autograd.grad(loss, wrt, allow_unused=True)
        named = [np.zeros(tuple(t.shape)) if g is None else self.to_numpy(g) for t, g in zip(wrt, grads)]
        return dict(zip(leaves, named[: len(leaves)])), dict(zip(params, named[len(leaves) :]))

    def jvp(self, fn, inputs, tangents, layer=None):
        names = list(inputs)
        tans = tuple(self.asarray(tangents[k], self.dtype_name(inputs[k])) for k in names)
        _, out = torch.func.jvp(lambda *a: tuple(fn(layer, **dict(zip(names, a)))), tuple(inputs.values()), tans)
        return tuple(self.to_numpy(t) for t in out)

    def vmap(self, fn, inputs, layer=None):
        names = list(inputs)
        out = torch.func.vmap(lambda *a: tuple(fn(layer, **dict(zip(names, a)))))(*inputs.values())
        return tuple(self.to_numpy(t) for t in out)

    def transform_grad(self, fn, inputs, cotangents):
        def loss(inputs):
            outs = fn(None, **inputs)
            return sum((o * self.asarray(c, self.dtype_name(o))).sum() for o, c in zip(outs, cotangents))

        return {k: self.to_numpy(v) for k, v in torch.func.grad(loss)(inputs).items()}


HARNESS = TorchHarness()
