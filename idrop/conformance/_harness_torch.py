"""Conformance harness for :mod:`idrop.backends.torch` (reference layout = torch layout)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from idrop.backends import torch as backend
from idrop.conformance._harness import LayerWeights, Output

_DTYPES = {"float64": torch.float64, "float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def _t(a: np.ndarray, dtype: str = "float64", grad: bool = False) -> torch.Tensor:
    return torch.tensor(np.asarray(a, dtype=np.float64), dtype=_DTYPES[dtype], requires_grad=grad)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().to(torch.float64).numpy()


def _name(t: torch.Tensor) -> str:
    return str(t.dtype).removeprefix("torch.")


def _split(options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    options = dict(options)
    return options.pop("activation", "relu"), options


class TorchHarness:
    name = "torch"
    framework = f"torch {torch.__version__}"
    dtypes = ("float64", "float32", "float16", "bfloat16")
    grad_dtypes = ("float64",)

    def info_dropout(self, f, alpha_logits, *, dtype, noise, training, mu, sigma, **options):
        _, options = _split(options)
        z, kl = backend.info_dropout(
            _t(f, dtype),
            _t(alpha_logits, dtype),
            training=training,
            noise=None if noise is None else _t(noise, dtype if dtype in ("float64", "float32") else "float32"),
            mu=mu,
            sigma=sigma,
            **options,
        )
        return Output(_np(z), _np(kl), _name(z), _name(kl))

    def alpha(self, alpha_logits, *, dtype, max_alpha, alpha_min):
        return _np(backend.alpha_from_logits(_t(alpha_logits, dtype), max_alpha=max_alpha, alpha_min=alpha_min))

    def info_dropout_grads(self, f, alpha_logits, *, noise, mu, sigma, z_cotangent, kl_cotangent, **options):
        _, options = _split(options)
        inputs = {"f": _t(f, grad=True), "alpha_logits": _t(alpha_logits, grad=True)}
        lognormal = options.get("prior") == "log-normal"
        if lognormal:
            inputs["mu"] = _t(mu, grad=True)
            inputs["sigma"] = _t(sigma, grad=True)
        z, kl = backend.info_dropout(
            inputs["f"],
            inputs["alpha_logits"],
            noise=_t(noise),
            mu=inputs.get("mu"),
            sigma=inputs.get("sigma"),
            **options,
        )
        ((z * _t(z_cotangent)).sum() + (kl * _t(kl_cotangent)).sum()).backward()
        return {k: _np(v.grad) for k, v in inputs.items()}

    def apply_noise(self, law, f, raw, *, dtype, **params):
        fn = {
            "binary": backend.binary_dropout,
            "gaussian": backend.gaussian_dropout,
            "lognormal": backend.lognormal_dropout,
        }[law]
        raw_dtype = dtype if dtype in ("float64", "float32") else "float32"
        return _np(fn(_t(f, dtype), noise=_t(raw, raw_dtype), **params))

    def gaussian_kl(self, mu, scale, *, dtype):
        kl = backend.gaussian_kl(_t(mu, dtype), _t(scale, dtype))
        return Output(np.asarray(mu, dtype=np.float64), _np(kl), dtype, _name(kl))

    def sample(self, law, shape, *, seed, **params):
        g = torch.Generator().manual_seed(seed)
        ones = torch.ones(shape, dtype=torch.float64)
        if law == "information":
            logits = torch.full(shape, float(params.pop("alpha_logits")), dtype=torch.float64)
            return _np(backend.info_dropout(ones, logits, generator=g, **params)[0])
        fn = {
            "binary": backend.binary_dropout,
            "gaussian": backend.gaussian_dropout,
            "lognormal": backend.lognormal_dropout,
        }[law]
        return _np(fn(ones, generator=g, **params))

    # -- layers ----------------------------------------------------------------
    def _build(self, w: LayerWeights, dtype: str, mu: float, sigma: float, options: dict[str, Any]):
        activation, options = _split(options)
        if w.kind == "linear":
            out_f, in_f = w.weight.shape
            layer = torch.nn.Linear(in_f, out_f)
        else:
            o, i, k, _ = w.weight.shape
            layer = torch.nn.Conv2d(i, o, k, stride=w.stride, padding=w.padding)
        # The default alpha_layer (a fresh copy of layer's kind) is what users get.
        # eval_kl: the contract checks the KL in evaluation mode too.
        module = backend.InfoDropout(layer, activation=activation, eval_kl=True, **options).to(_DTYPES[dtype])
        with torch.no_grad():
            for p, a in ((layer.weight, w.weight), (layer.bias, w.bias)):
                p.copy_(_t(a))
            module.alpha_layer.weight.copy_(_t(w.alpha_weight))
            module.alpha_layer.bias.copy_(_t(w.alpha_bias))
            if module.spec.prior == "log-normal":
                module.mu.fill_(mu)
                module.log_sigma.fill_(float(np.log(sigma)))
        return module

    def layer(self, weights, x, *, dtype, noise, training, mu, sigma, **options):
        module = self._build(weights, dtype, mu, sigma, options).train(training)
        noise_dtype = dtype if dtype in ("float64", "float32") else "float32"
        z = module(_t(x, dtype), noise=None if noise is None else _t(noise, noise_dtype))
        return Output(_np(z), _np(module.kl), _name(z), _name(module.kl))

    def layer_grads(self, weights, x, *, noise, mu, sigma, z_cotangent, **options):
        module = self._build(weights, "float64", mu, sigma, options)
        xt = _t(x, grad=True)
        z = module(xt, noise=_t(noise))
        ((z * _t(z_cotangent)).sum() + module.kl.sum()).backward()
        grads = {
            "x": _np(xt.grad),
            "weight": _np(module.layer.weight.grad),
            "bias": _np(module.layer.bias.grad),
            "alpha_weight": _np(module.alpha_layer.weight.grad),
            "alpha_bias": _np(module.alpha_layer.bias.grad),
        }
        if module.spec.prior == "log-normal":
            grads["mu"] = _np(module.mu.grad)
            # d/dsigma = d/dlog_sigma / sigma: report the gradient the contract names.
            grads["sigma"] = _np(module.log_sigma.grad) / sigma
        return grads

    # -- errors ----------------------------------------------------------------
    def construct_error(self, **kwargs):
        try:
            backend.InfoDropout(torch.nn.Linear(4, 3), **kwargs)
        except Exception as err:
            return err
        return None

    def call_error(self, case):
        try:
            if case == "integer_input":
                backend.InfoDropout(torch.nn.Linear(4, 3))(torch.ones(2, 4, dtype=torch.int32))
            elif case == "alpha_layer_shape":
                backend.InfoDropout(torch.nn.Linear(4, 3), alpha_layer=torch.nn.Linear(4, 5))(torch.ones(2, 4))
            elif case == "n_train":
                model = backend.InfoDropout(torch.nn.Linear(4, 3))
                model(torch.ones(2, 4))
                backend.kl_loss(model, n_train=0)
            elif case == "beta":
                model = backend.InfoDropout(torch.nn.Linear(4, 3))
                model(torch.ones(2, 4))
                backend.ib_loss(torch.zeros(()), model, beta=-1.0, n_train=10)
            else:
                raise KeyError(case)
        except KeyError:
            raise
        except Exception as err:
            return err
        return None


HARNESS = TorchHarness()
