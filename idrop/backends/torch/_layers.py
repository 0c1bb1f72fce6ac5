"""The torch modules: ``InfoDropout`` (like ``nn.Dropout``, around a map) and the baselines.

Their functional ops are in ``_functional.py``, the fused training kernel in ``_kernel.py``,
the two maps' call in ``_maps.py`` and the KL records ``kl_loss`` collects in ``_losses.py``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.modules.dropout import _DropoutNd

from idrop.core import functional as _functional
from idrop.core._xp import activation as _activation
from idrop.core.loss import per_sample_kl
from idrop.core.spec import (
    InfoDropoutSpec,
    check_alpha,
    check_alpha_rank,
    check_flag,
    check_probability,
    check_recompute_alpha,
    check_same_shape,
    unexpected_keyword,
)

from ._functional import binary_dropout, check_noise, gaussian_dropout, lognormal_dropout, prior_params
from ._kernel import info_dropout_kernel
from ._losses import KLRecords, Seen
from ._maps import both_maps, fresh_copy, low_rank_copy, may_stack, recomputes, unbatched
from ._namespace import check_layer_input, kernel_xp, kl_dtype, xp
from ._remat import recomputed_kernel


def _reject(owner: nn.Module, unknown: dict) -> None:
    """Raise the core's ``TypeError`` for the first unknown constructor keyword, as Python words it."""
    if unknown:
        raise unexpected_keyword(type(owner).__name__, next(iter(unknown)))


class _NoisyMap(_DropoutNd):
    """``noise(act(norm(layer(x))))``: what Information Dropout and its baselines share.

    A ``_DropoutNd`` (torch's base of every dropout module) with a positive ``p``, so the MC-dropout
    wrappers of other libraries, which collect ``isinstance(m, _DropoutNd)`` modules with ``p > 0`` and
    call ``m.train()`` on them in evaluation (torch-uncertainty's ``MCDropout``, the usual
    ``enable_dropout`` recipe), find these layers and turn their noise on. ``p`` is not a drop
    probability here except for ``BinaryDropout``: it is the layer's noise level (``max_alpha``,
    ``rate`` or ``alpha``). :func:`idrop.backends.torch.sampling` is the native switch.
    """

    inplace = False  # read by code that inspects _DropoutNd modules; these layers never work in place

    def __init__(self, layer: nn.Module, activation: str, norm: nn.Module | None) -> None:
        nn.Module.__init__(self)  # not _DropoutNd.__init__, which would store a rate `p`
        self.spec_activation = InfoDropoutSpec(activation=activation).activation
        self.layer = layer
        self.norm = norm
        self.kl: torch.Tensor | None = None

    def _pre_activation(self, x: torch.Tensor) -> torch.Tensor:
        h = self.layer(x)
        return h if self.norm is None else self.norm(h)

    def activation_of(self, x: torch.Tensor) -> torch.Tensor:
        """``f(x) = act(norm(layer(x)))``, after checking ``x`` (docs/design-notes.md section 2)."""
        check_layer_input(x, self.layer)
        return _activation(self.spec_activation, self._pre_activation(x), xp=kernel_xp)


class InfoDropout(KLRecords, _NoisyMap):
    r"""Information Dropout around a linear or convolutional map (Achille & Soatto 2016).

    .. math:: z = f(x)\,e^{\alpha(x)\,\epsilon}, \quad f = \mathrm{act}(\mathrm{norm}(\mathrm{layer}(x))),
        \quad \alpha = \alpha_{\min} + \alpha_{\max}\,\sigma(\mathrm{alpha\_layer}(x))

    In training mode (``module.train()``) the log-normal noise is applied and the per-sample
    KL (eq. 3 or 4, summed over units) is left on ``.kl`` (shape ``[batch]``, 0-d for an
    unbatched input) and recorded for :func:`kl_loss` and :func:`ib_loss`, which collect every
    call since the last collection (docs/design-notes.md section 3). In evaluation mode the
    output is ``f(x)``, computed without the alpha branch, and ``.kl`` is ``None`` unless
    ``eval_kl=True``. Copies (``copy.deepcopy``, pickling) start with no KL. It is a ``_DropoutNd``
    with ``p = max_alpha``, so MC-dropout wrappers find it; :func:`sampling` and :func:`mc_predict` turn
    its noise on with the rest of the model in evaluation.

    Training steps run the element-wise chain as one autograd function that keeps only ``f``
    (or the pre-activation) and the alpha logits for backward (the noise is drawn again from
    the saved generator state); double backward (``create_graph=True``) is supported. With the
    default ``alpha_layer`` of a convolution both maps are one stacked convolution
    (``state_dict`` keys stay ``layer.*`` and ``alpha_layer.*``).

    Args:
        layer: ``nn.Linear`` or ``nn.Conv1d/2d/3d`` (any module if ``alpha_layer`` is given).
        activation: ``"relu"`` or ``"softplus"``.
        prior: ``"log-uniform"`` or ``"log-normal"``; default from the activation.
        max_alpha: cap of the noise scale, in ``(0, 1]`` (default 0.7, official code).
        alpha_min: floor of the noise scale, in ``(0, 1]`` (default 1e-3).
        mean_one: mean-1 noise ``exp(alpha*eps - alpha^2/2)`` instead of median-1.
        zero_units: ``"count"`` or ``"mask"`` for units with ``f(x) == 0`` (log-uniform prior).
        norm: optional module between ``layer`` and the activation (batch norm in the paper's CNNs).
        alpha_layer: the alpha branch; default a fresh copy of ``layer``'s kind and shape.
        alpha_rank: ``None`` (default, the paper's full alpha map) or an int ``r >= 1``: the
            alpha branch is the low-rank :class:`~idrop.backends.torch._maps.LowRankAlpha`
            ``up(down(x))`` (``down`` of ``layer``'s kind with ``r`` outputs, ``up`` a
            ``Linear``/1x1 conv with a bias), about ``r/out`` of the full map's cost.
            Not with ``alpha_layer``.
        recompute_alpha: with ``alpha_rank``, keep ``t = down(x)`` (``r`` channels) for backward
            instead of the alpha logits and recompute ``up`` and the element-wise kernel there
            (``torch.utils.checkpoint``): a conv training step keeps ``x + h + t`` instead of
            ``x + h + a`` (0.59x the naive layer's bytes instead of 0.70x in ``benchmarks``), for
            more time per step. Same outputs and gradients. Default ``False``.
        eval_kl: also compute ``.kl`` in evaluation mode (default: skip the alpha branch).

    Shape:
        Input: whatever ``layer`` takes. Output: ``layer``'s output shape. ``.kl``: ``[batch]``.

    Raises:
        ValueError, TypeError: for bad options, at construction; for input that is not a float
            tensor in the weights' dtype with at least one axis, for ``noise`` not of the output's
            shape, or an ``alpha_layer`` of another output shape, at the call.
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
        alpha_rank: int | None = None,
        recompute_alpha: bool = False,
        eval_kl: bool = False,
        **unknown: object,
    ) -> None:
        _reject(self, unknown)
        spec = InfoDropoutSpec(activation, prior, max_alpha, alpha_min, mean_one, zero_units)
        alpha_rank = check_alpha_rank(alpha_rank, has_alpha_layer=alpha_layer is not None)
        recompute_alpha = check_recompute_alpha(recompute_alpha, alpha_rank=alpha_rank)
        eval_kl = check_flag("eval_kl", eval_kl)
        super().__init__(layer, spec.activation, norm)
        self._clear_records()
        self.spec = spec
        self.eval_kl = eval_kl
        self.alpha_rank = alpha_rank
        self.recompute_alpha = recompute_alpha
        self._stack = may_stack(layer, alpha_layer)  # only the default branches (full or low-rank) stack
        if alpha_layer is None:
            alpha_layer = fresh_copy(layer) if alpha_rank is None else low_rank_copy(layer, alpha_rank)
        self.alpha_layer = alpha_layer
        if spec.prior == "log-normal":
            p = next(layer.parameters(), None)
            kw = {} if p is None else {"device": p.device, "dtype": p.dtype}
            self.mu = nn.Parameter(torch.zeros((), **kw))
            # sigma = exp(log_sigma) stays positive under any optimiser step.
            self.log_sigma = nn.Parameter(torch.zeros((), **kw))

    @property
    def eval_kl(self) -> bool:
        """Whether evaluation calls compute (and record) ``.kl`` too."""
        return self._eval_kl

    @eval_kl.setter
    def eval_kl(self, value: bool) -> None:
        self._eval_kl = check_flag("eval_kl", value)

    @property
    def sigma(self) -> torch.Tensor | None:
        """The log-normal prior's standard deviation (``None`` for the log-uniform prior)."""
        return self.log_sigma.exp() if self.spec.prior == "log-normal" else None

    @property
    def p(self) -> float:
        """The noise level ``max_alpha``, as ``_DropoutNd.p`` for MC-dropout wrappers (see ``_NoisyMap``)."""
        return self.spec.max_alpha

    def forward(
        self, x: torch.Tensor, noise: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Apply the layer; ``noise`` is the standard-normal ``eps``, exactly the output's shape."""
        check_layer_input(x, self.layer)
        if not self.training and not self.eval_kl:
            f = _activation(self.spec_activation, self._pre_activation(x), xp=kernel_xp)
            check_noise(noise, f)
            self._record(None, accumulate=False)
            return f
        batched = not unbatched(self.layer, x)
        remat = self.training and self.recompute_alpha and recomputes(self.layer, self.alpha_layer)
        h, alpha_logits = both_maps(self.layer, self.alpha_layer, x, stack=self._stack, batched=batched, skip_up=remat)
        if self.norm is not None:
            h = self.norm(h)
        if not remat:  # else alpha_logits is down(x); up keeps the output shape of a 1x1 conv
            check_same_shape(h.shape, alpha_logits.shape)
        check_noise(noise, h)
        source = getattr(self, "_noise_source", None)  # set by mc_predict: per-sample seeded noise
        if noise is None and source is not None and self.training:
            noise = source(self, tuple(h.shape), h)
        lognormal = self.spec.prior == "log-normal"
        mu, sigma = prior_params(self.spec, h, self.mu if lognormal else None, self.sigma if lognormal else None)
        seen = None
        if self.training:
            seen = Seen()
            kernel = recomputed_kernel if remat else info_dropout_kernel
            args = (self.alpha_layer.up, h, alpha_logits) if remat else (h, alpha_logits)
            z, kl = kernel(
                *args,
                spec=self.spec,
                activation=self.spec_activation,
                reduce=True,
                batched=batched,
                mu=mu,
                sigma=sigma,
                noise=noise,
                generator=generator,
                seen=seen,
            )
        else:
            f = _activation(self.spec_activation, h, xp=kernel_xp)
            z, kl = _functional.info_dropout(
                f, alpha_logits, None, spec=self.spec, mu=mu, sigma=sigma, training=False, kl_dtype=kl_dtype(f), xp=xp
            )
            kl = per_sample_kl(kl, batched=batched, xp=xp)
        self._record(kl, accumulate=self.training and kl.requires_grad, seen=seen)
        return z

    def extra_repr(self) -> str:
        s = self.spec
        return (
            f"activation={s.activation!r}, prior={s.prior!r}, max_alpha={s.max_alpha}, "
            f"alpha_min={s.alpha_min}, mean_one={s.mean_one}, zero_units={s.zero_units!r}, "
            f"alpha_rank={self.alpha_rank}, recompute_alpha={self.recompute_alpha}, eval_kl={self.eval_kl}"
        )


class BinaryDropout(_NoisyMap):
    """Baseline: ``act(norm(layer(x)))`` then binary dropout with ``rate`` (``noise``: uniform draws)."""

    def __init__(
        self,
        layer: nn.Module,
        *,
        activation: str = "relu",
        rate: float = 0.5,
        norm: nn.Module | None = None,
        **unknown: object,
    ) -> None:
        _reject(self, unknown)
        rate = check_probability("rate", rate)
        super().__init__(layer, activation, norm)
        self.rate = rate

    @property
    def p(self) -> float:
        """The dropout rate, as ``_DropoutNd.p``."""
        return self.rate

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
    """Baseline: log-normal dropout with one fixed ``alpha`` in ``[0, 1]`` and no alpha branch."""

    def __init__(
        self,
        layer: nn.Module,
        *,
        activation: str = "relu",
        alpha: float = 0.7,
        mean_one: bool = False,
        norm: nn.Module | None = None,
        **unknown: object,
    ) -> None:
        _reject(self, unknown)
        alpha, mean_one = check_alpha("alpha", alpha), check_flag("mean_one", mean_one)
        super().__init__(layer, activation, norm)
        self.alpha = alpha
        self.mean_one = mean_one

    @property
    def p(self) -> float:
        """The fixed noise scale ``alpha``, as ``_DropoutNd.p`` for MC-dropout wrappers."""
        return self.alpha

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
