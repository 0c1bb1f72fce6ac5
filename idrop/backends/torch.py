"""PyTorch adapter: ``info_dropout`` (like ``F.dropout``) and ``InfoDropout`` (like ``nn.Dropout``).

The ``xp`` shim the core runs on and the fused training kernel are in
``_torch_kernel.py``; the functional ops, which draw noise with torch's RNG
(optionally a ``generator=``) unless ``noise=`` is given, in ``_torch_functional.py``
(re-exported here). This module holds the modules and the loss helpers.

Example:
    >>> import torch
    >>> from idrop.backends.torch import InfoDropout, ib_loss
    >>> layer = InfoDropout(torch.nn.Linear(784, 256), activation="relu")
    >>> z = layer(torch.rand(32, 784))
    >>> z.shape, layer.kl.shape
    (torch.Size([32, 256]), torch.Size([32]))
"""

from __future__ import annotations

import copy

from idrop.backends import missing_framework

try:
    import torch
    from torch import nn
except ImportError as err:  # pragma: no cover - exercised in a subprocess test
    raise missing_framework("torch", "PyTorch") from err

from idrop.backends import _torch_kernel as _kernel
from idrop.backends._torch_functional import (
    _check_float,
    _kl_dtype,
    _prior_params,
    alpha_from_logits,
    binary_dropout,
    gaussian_dropout,
    gaussian_kl,
    info_dropout,
    lognormal_dropout,
    xp,
)
from idrop.core import functional as _functional
from idrop.core._xp import activation as _activation
from idrop.core.loss import ib_loss as _ib_loss
from idrop.core.loss import kl_term as _kl_term
from idrop.core.loss import per_sample_kl
from idrop.core.spec import (
    InfoDropoutSpec,
    check_nonnegative,
    check_probability,
    check_same_shape,
    invalid,
)

__all__ = [
    "BinaryDropout",
    "GaussianDropout",
    "InfoDropout",
    "LogNormalDropout",
    "alpha_from_logits",
    "binary_dropout",
    "gaussian_dropout",
    "gaussian_kl",
    "ib_loss",
    "info_dropout",
    "kl_loss",
    "lognormal_dropout",
    "xp",
]

# --------------------------------------------------------------------------- #
# Modules and losses (the functional ops are in _torch_functional.py).        #
# --------------------------------------------------------------------------- #

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def _fresh_copy(layer: nn.Module) -> nn.Module:
    """A new map of ``layer``'s kind and shape with its own, freshly initialised weights."""
    if isinstance(layer, nn.Linear):
        p = layer.weight
        return nn.Linear(
            layer.in_features, layer.out_features, bias=layer.bias is not None, device=p.device, dtype=p.dtype
        )
    if isinstance(layer, _CONV):
        p = layer.weight
        return type(layer)(
            layer.in_channels,
            layer.out_channels,
            layer.kernel_size,
            stride=layer.stride,
            padding=layer.padding,
            dilation=layer.dilation,
            groups=layer.groups,
            bias=layer.bias is not None,
            padding_mode=layer.padding_mode,
            device=p.device,
            dtype=p.dtype,
        )
    if hasattr(layer, "reset_parameters"):
        clone = copy.deepcopy(layer)
        clone.reset_parameters()
        return clone
    raise ValueError(
        "Invalid value received for argument `alpha_layer`. Expected a module when "
        f"`layer` is not Linear/Conv1d/2d/3d and has no reset_parameters(). "
        f"Received: alpha_layer=None, layer={type(layer).__name__}"
    )


class _NoisyMap(nn.Module):
    """``noise(act(norm(layer(x))))``: what Information Dropout and its baselines share."""

    def __init__(self, layer: nn.Module, activation: str, norm: nn.Module | None) -> None:
        super().__init__()
        self.spec_activation = InfoDropoutSpec(activation=activation).activation
        self.layer = layer
        self.norm = norm
        self.kl: torch.Tensor | None = None

    def activation_of(self, x: torch.Tensor) -> torch.Tensor:
        """``f(x) = act(norm(layer(x)))``, after checking that ``x`` is floating point."""
        _check_float("x", x)
        h = self.layer(x)
        if self.norm is not None:
            h = self.norm(h)
        return _activation(self.spec_activation, h, xp=_kernel.kernel_xp)


class InfoDropout(_NoisyMap):
    r"""Information Dropout around a linear or convolutional map (Achille & Soatto 2016).

    .. math:: z = f(x)\,e^{\alpha(x)\,\epsilon}, \quad f = \mathrm{act}(\mathrm{norm}(\mathrm{layer}(x))),
        \quad \alpha = \alpha_{\min} + \alpha_{\max}\,\sigma(\mathrm{alpha\_layer}(x))

    In training mode (``module.train()``) the log-normal noise is applied and the
    per-sample KL (eq. 3 or 4, summed over units) is left on ``.kl`` (shape
    ``[batch]``) for :func:`kl_loss` and :func:`ib_loss`. In evaluation mode the
    output is ``f(x)``, computed without the alpha branch, and ``.kl`` is ``None``
    unless ``eval_kl=True``.

    Training steps run the element-wise chain as one autograd function that keeps
    only the pre-activation and the alpha logits for backward (the noise is drawn
    again from the saved generator state), so double backward is not supported;
    with the default ``alpha_layer`` of a convolution both maps are one stacked
    convolution (``state_dict`` keys stay ``layer.*`` and ``alpha_layer.*``).

    Args:
        layer: ``nn.Linear`` or ``nn.Conv1d/2d/3d`` (any module if ``alpha_layer`` is given).
        activation: ``"relu"`` or ``"softplus"``.
        prior: ``"log-uniform"`` or ``"log-normal"``; default from the activation.
        max_alpha: cap of the noise scale (default 0.7, official code).
        alpha_min: floor of the noise scale (default 1e-3).
        mean_one: mean-1 noise ``exp(alpha*eps - alpha^2/2)`` instead of median-1.
        zero_units: ``"count"`` or ``"mask"`` for units with ``f(x) == 0`` (log-uniform prior).
        norm: optional module between ``layer`` and the activation (batch norm in the paper's CNNs).
        alpha_layer: the alpha branch; default a fresh copy of ``layer``'s kind and shape.
        eval_kl: also compute ``.kl`` in evaluation mode (default: skip the alpha branch).

    Shape:
        Input: whatever ``layer`` takes. Output: ``layer``'s output shape. ``.kl``: ``[batch]``.

    Raises:
        ValueError, TypeError: for bad options, at construction; for non-float
        input or an ``alpha_layer`` of another output shape, at the call.
    """

    def __init__(
        self,
        layer: nn.Module,
        *,
        activation: str = "relu",
        prior: str | None = None,
        max_alpha: float = 0.7,
        alpha_min: float = 1e-3,
        mean_one: bool = False,
        zero_units: str = "count",
        norm: nn.Module | None = None,
        alpha_layer: nn.Module | None = None,
        eval_kl: bool = False,
    ) -> None:
        spec = InfoDropoutSpec(activation, prior, max_alpha, alpha_min, mean_one, zero_units)
        if not isinstance(eval_kl, bool):
            raise invalid("eval_kl", "a bool", eval_kl)
        super().__init__(layer, spec.activation, norm)
        self.spec = spec
        self.eval_kl = eval_kl
        self.alpha_layer = _fresh_copy(layer) if alpha_layer is None else alpha_layer
        # One convolution with both weights stacked beats two on the CPU (one im2col); two
        # Linear maps beat one on concatenated weights (the copy costs more than it saves).
        self._stack = alpha_layer is None and isinstance(layer, _CONV) and layer.groups == 1
        if spec.prior == "log-normal":
            p = next(layer.parameters(), None)
            kw = {} if p is None else {"device": p.device, "dtype": p.dtype}
            self.mu = nn.Parameter(torch.zeros((), **kw))
            # sigma = exp(log_sigma) stays positive under any optimiser step.
            self.log_sigma = nn.Parameter(torch.zeros((), **kw))

    @property
    def sigma(self) -> torch.Tensor | None:
        """The log-normal prior's standard deviation (``None`` for the log-uniform prior)."""
        return self.log_sigma.exp() if self.spec.prior == "log-normal" else None

    def forward(
        self, x: torch.Tensor, noise: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Apply the layer; ``noise`` is the standard-normal ``eps`` shaped like the output."""
        if not self.training and not self.eval_kl:
            self.kl = None
            return self.activation_of(x)
        _check_float("x", x)
        h, alpha_logits = self._maps(x)
        check_same_shape(h.shape, alpha_logits.shape)
        lognormal = self.spec.prior == "log-normal"
        mu, sigma = _prior_params(self.spec, h, self.mu if lognormal else None, self.sigma if lognormal else None)
        if self.training:
            z, self.kl = _kernel.train_step(
                h,
                alpha_logits,
                spec=self.spec,
                activation=self.spec_activation,
                reduce=True,
                mu=mu,
                sigma=sigma,
                noise=noise,
                generator=generator,
            )
            return z
        f = _activation(self.spec_activation, h, xp=_kernel.kernel_xp)
        z, kl = _functional.info_dropout(
            f, alpha_logits, None, spec=self.spec, mu=mu, sigma=sigma, training=False, kl_dtype=_kl_dtype(f), xp=xp
        )
        self.kl = per_sample_kl(kl, xp=xp)
        return z

    def _stacks(self) -> bool:
        """Whether :meth:`_maps` may run the two convolutions as one (both still alike, no hooks)."""
        if not self._stack:
            return False
        layer, alpha = self.layer, self.alpha_layer
        return (
            type(alpha) is type(layer)
            and not (layer._forward_hooks or layer._forward_pre_hooks)
            and not (alpha._forward_hooks or alpha._forward_pre_hooks)
            and alpha.weight.shape == layer.weight.shape
            and alpha.weight.dtype == layer.weight.dtype
            and alpha.weight.device == layer.weight.device
            and (alpha.bias is None) == (layer.bias is None)
            and (alpha.stride, alpha.padding, alpha.dilation, alpha.groups, alpha.padding_mode)
            == (layer.stride, layer.padding, layer.dilation, layer.groups, layer.padding_mode)
        )

    def _maps(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(norm(layer(x)), alpha_layer(x))``, the two maps of a stacked default copy in one call."""
        if self._stacks():
            layer, alpha = self.layer, self.alpha_layer
            weight = torch.cat([layer.weight, alpha.weight])
            bias = None if layer.bias is None else torch.cat([layer.bias, alpha.bias])
            h, alpha_logits = layer._conv_forward(x, weight, bias).split(layer.out_channels, dim=1)
        else:
            h, alpha_logits = self.layer(x), self.alpha_layer(x)
        if self.norm is not None:
            h = self.norm(h)
        return h, alpha_logits

    def extra_repr(self) -> str:
        s = self.spec
        return (
            f"activation={s.activation!r}, prior={s.prior!r}, max_alpha={s.max_alpha}, "
            f"alpha_min={s.alpha_min}, mean_one={s.mean_one}, zero_units={s.zero_units!r}, eval_kl={self.eval_kl}"
        )


class BinaryDropout(_NoisyMap):
    """Baseline: ``act(norm(layer(x)))`` then binary dropout with ``rate`` (``noise``: uniform draws)."""

    def __init__(
        self, layer: nn.Module, *, activation: str = "relu", rate: float = 0.5, norm: nn.Module | None = None
    ) -> None:
        super().__init__(layer, activation, norm)
        self.rate = check_probability("rate", rate)

    def forward(
        self, x: torch.Tensor, noise: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        return binary_dropout(
            self.activation_of(x), self.rate, training=self.training, noise=noise, generator=generator
        )

    def extra_repr(self) -> str:
        return f"activation={self.spec_activation!r}, rate={self.rate}"


class GaussianDropout(BinaryDropout):
    """Baseline: Gaussian dropout with the variance ``rate/(1-rate)`` of binary dropout."""

    def forward(
        self, x: torch.Tensor, noise: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        return gaussian_dropout(
            self.activation_of(x), self.rate, training=self.training, noise=noise, generator=generator
        )


class LogNormalDropout(_NoisyMap):
    """Baseline: log-normal dropout with one fixed ``alpha`` and no alpha branch."""

    def __init__(
        self,
        layer: nn.Module,
        *,
        activation: str = "relu",
        alpha: float = 0.7,
        mean_one: bool = False,
        norm: nn.Module | None = None,
    ) -> None:
        super().__init__(layer, activation, norm)
        self.alpha = check_nonnegative("alpha", alpha)
        self.mean_one = InfoDropoutSpec(mean_one=mean_one).mean_one

    def forward(
        self, x: torch.Tensor, noise: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        return lognormal_dropout(
            self.activation_of(x),
            self.alpha,
            mean_one=self.mean_one,
            training=self.training,
            noise=noise,
            generator=generator,
        )

    def extra_repr(self) -> str:
        return f"activation={self.spec_activation!r}, alpha={self.alpha}, mean_one={self.mean_one}"


def _kl_per_sample(model: nn.Module) -> list[torch.Tensor]:
    return [m.kl for m in model.modules() if isinstance(m, InfoDropout) and m.kl is not None]


def kl_loss(model: nn.Module, n_train: int) -> torch.Tensor:
    r"""``sum over InfoDropout layers of mean(layer.kl) / n_train`` from the last forward call (eq. 5)."""
    kls = _kl_per_sample(model)
    if not kls:
        p = next(model.parameters(), None)
        zero = torch.zeros((), device=None if p is None else p.device)
        _kl_term([zero], n_train=n_train, xp=xp)  # validates n_train all the same
        return zero
    return _kl_term([k.float() for k in kls], n_train=n_train, xp=xp)


def ib_loss(task_loss: torch.Tensor, model: nn.Module, beta: float, n_train: int) -> torch.Tensor:
    r"""The Information Bottleneck loss ``task_loss + beta * kl_loss(model, n_train)`` (eq. 5)."""
    kls = _kl_per_sample(model) or [torch.zeros((), device=task_loss.device)]
    return _ib_loss(task_loss, [k.float() for k in kls], beta=beta, n_train=n_train, xp=xp)
