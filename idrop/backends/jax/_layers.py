r"""Flax NNX modules: ``InfoDropout`` and the baselines ``BinaryDropout``, ``GaussianDropout``, ``LogNormalDropout``.

They follow ``flax.nnx.Dropout``: a ``deterministic`` attribute (``model.train()``/``model.eval()``,
``nnx.view``, or per call) and a forked ``"dropout"`` RNG stream (or ``rngs=`` per call).

Transforms, as ``nnx.Dropout`` has them (flax 0.12):

- In evaluation (deterministic, ``eval_kl=False``) a layer mutates nothing, so it runs under
  plain ``jax.jit``, ``jax.grad`` and ``jax.vmap`` as well as under the ``nnx`` transforms.
- In training a layer advances its RNG stream and records its KL (``_losses``): use
  ``nnx.jit``/``nnx.grad``/``nnx.value_and_grad``/``nnx.vmap``/``nnx.remat``, or a module
  created (``nnx.merge``) inside the traced function. A module created outside a plain
  ``jax`` transform raises Flax's ``TraceContextError`` there, as ``nnx.Dropout`` does; the
  pure :func:`info_dropout` takes a key and works under any transform.
- Under ``nnx.vmap`` with the layer broadcast (``in_axes=None``) each vmapped call records its
  own KL: give the :class:`KLTerm` state an axis, ``nnx.StateAxes({KLTerm: 0, ...: None})``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from idrop.core._xp import activation as _activation
from idrop.core.loss import per_sample_kl
from idrop.core.spec import (
    InfoDropoutSpec,
    check_alpha,
    check_alpha_rank,
    check_flag,
    check_probability,
    check_recompute_alpha,
    unexpected_keyword,
)

from . import _maps
from ._functional import binary_dropout, check_noise, gaussian_dropout, lognormal_dropout
from ._kernel import info_dropout_kernel
from ._losses import KLTerm, drop, record
from ._namespace import call_key, check_layer_input, own_stream, xp
from ._remat import recomputed_kernel

_MODE_HELP = (
    "No `deterministic` argument was provided to {name}. Pass `deterministic=` to the "
    "constructor or the call, use model.train()/model.eval(), or nnx.view(model, deterministic=...)."
)


def _no_unknown(owner: str, unknown: dict[str, Any]) -> None:
    for name in unknown:
        raise unexpected_keyword(owner, name)


class _NoisyMap(nnx.Module):
    """``noise(act(norm(layer(x))))``: what Information Dropout and its baselines share."""

    def __init__(
        self,
        layer: nnx.Module,
        activation: str,
        norm: nnx.Module | None,
        deterministic: bool | None,
        rng_collection: str,
        rngs: Any,
    ) -> None:
        self.spec_activation = InfoDropoutSpec(activation=activation).activation
        self.layer = layer
        self.norm = nnx.data(norm)
        self.deterministic = check_flag("deterministic", deterministic, allow_none=True)
        self.rng_collection = rng_collection
        self.rngs = own_stream(rngs, rng_collection)

    def activation_of(self, x: jax.Array) -> jax.Array:
        """``f(x) = act(norm(layer(x)))``, after the input checks."""
        check_layer_input(x, _maps.compute_dtype(self.layer))
        return _activation(self.spec_activation, _maps.apply(self.layer, self.norm, x), xp=xp)

    def _mode(self, deterministic: Any) -> bool:
        mode = check_flag("deterministic", deterministic, allow_none=True)
        mode = self.deterministic if mode is None else mode
        if mode is None:
            raise ValueError(_MODE_HELP.format(name=type(self).__name__))
        return mode

    def _key(self, deterministic: bool, noise: Any, rngs: Any) -> jax.Array | None:
        """A fresh key from the call's ``rngs`` or the module's stream, when a draw is needed."""
        if deterministic or noise is not None:
            return None
        return call_key(rngs, self.rngs, self.rng_collection, type(self).__name__)

    def set_view(self, deterministic: bool | None = None) -> None:
        """Used by ``nnx.view``: ``deterministic=True`` disables the noise."""
        if deterministic is not None:
            self.deterministic = check_flag("deterministic", deterministic)


class InfoDropout(_NoisyMap):
    r"""Information Dropout around ``nnx.Linear`` or ``nnx.Conv`` (Achille & Soatto 2016).

    .. math:: z = f(x)\,e^{\alpha(x)\,\epsilon}, \quad f = \mathrm{act}(\mathrm{norm}(\mathrm{layer}(x))),
        \quad \alpha = \alpha_{\min} + \alpha_{\max}\,\sigma(\mathrm{alpha\_layer}(x))

    When not deterministic the log-normal noise is applied (``eps`` from the ``rng_collection``
    stream) by a ``jax.custom_jvp`` kernel (``_kernel.py``) that keeps only ``h``, the alpha
    logits and the key for the backward pass. When deterministic the output is ``f(x)`` and,
    unless ``eval_kl``, the alpha branch and the KL are skipped and nothing is mutated.
    Each recorded call keeps its per-sample KL (eq. 3 or 4 summed over units, float32 for half
    precision; 0-d for an unbatched input) on ``.kl`` (a :class:`KLTerm`, read ``layer.kl[...]``)
    until :func:`kl_loss`/:func:`ib_loss` collect it, and sows it as ``"kl"`` under
    ``nnx.capture(fn, KLTerm)``. Save checkpoints with ``nnx.state(model, nnx.Not(KLTerm))``.

    Args:
        layer: ``nnx.Linear`` or ``nnx.Conv`` (any module if ``alpha_layer`` is given). Its
            ``dtype`` (else ``param_dtype``) is the dtype the input must have.
        activation: ``"relu"`` or ``"softplus"``.
        prior: ``"log-uniform"`` or ``"log-normal"``; default from the activation.
        max_alpha: cap of the noise scale, in ``(0, 1]`` (default 0.7, official code).
        alpha_min: floor of the noise scale, in ``(0, 1]`` (default 1e-3).
        mean_one: mean-1 noise ``exp(alpha*eps - alpha^2/2)`` instead of median-1.
        zero_units: ``"count"`` or ``"mask"`` for units with ``f(x) == 0`` (log-uniform prior).
        norm: optional module between ``layer`` and the activation (batch norm in the paper's CNNs).
        alpha_layer: the alpha branch; default a fresh module of ``layer``'s kind and
            shape (default initialisers), initialised from ``rngs``.
        alpha_rank: ``None`` (default, the paper's full alpha map) or an int ``r >= 1``: the
            alpha branch is the low-rank :class:`~idrop.backends.jax._maps.LowRankAlpha`
            ``up(down(x))`` (``down`` of ``layer``'s kind with ``r`` outputs, ``up`` an
            ``nnx.Linear``/1x1 ``nnx.Conv`` with a bias), about ``r/out`` of the full map's cost.
            Not with ``alpha_layer``.
        recompute_alpha: with ``alpha_rank``, keep ``t = down(x)`` (``r`` channels) as the
            residual instead of the alpha logits and recompute ``up`` and the fused kernel in the
            backward pass (``jax.checkpoint``; the same key, so the same ``eps``): a conv training
            step keeps ``x + h + t`` instead of ``x + h + a``, for more time per step. Same
            outputs and gradients. Default ``False``.
        deterministic: no noise when true; overridden per call, by ``model.train()``/``eval()``
            or ``nnx.view(model, deterministic=...)``.
        eval_kl: compute and record the KL in deterministic calls too (default False).
        rng_collection: the ``rngs`` stream the noise is drawn from.
        rngs: ``nnx.Rngs`` (its ``rng_collection`` stream is forked for the noise, its
            ``params`` stream initialises the default alpha branch), an ``RngStream``, or
            ``None`` to pass ``rngs=`` at each call (these two need ``alpha_layer``).

    Call arguments:
        x: the input of ``layer`` (an array in its dtype, at least 1-d). noise: standard-normal
        ``eps`` of the output's shape. deterministic: overrides the attribute. rngs: ``Rngs``,
        ``RngStream`` or key for this call.

    Shape:
        Input: whatever ``layer`` takes. Output: ``layer``'s output shape. ``.kl``: ``[batch]``.
    """

    def __init__(
        self,
        layer: nnx.Module,
        *,
        activation: str = "relu",
        prior: str | None = None,
        max_alpha: float = 0.7,
        alpha_min: float = 1e-3,
        mean_one: bool = False,
        zero_units: str = "count",
        norm: nnx.Module | None = None,
        alpha_layer: nnx.Module | None = None,
        alpha_rank: int | None = None,
        recompute_alpha: bool = False,
        deterministic: bool | None = False,
        eval_kl: bool = False,
        rng_collection: str = "dropout",
        rngs: nnx.Rngs | nnx.RngStream | None,
        **unknown: Any,
    ) -> None:
        _no_unknown(type(self).__name__, unknown)
        spec = InfoDropoutSpec(activation, prior, max_alpha, alpha_min, mean_one, zero_units)
        alpha_rank = check_alpha_rank(alpha_rank, has_alpha_layer=alpha_layer is not None)
        recompute_alpha = check_recompute_alpha(recompute_alpha, alpha_rank=alpha_rank)
        super().__init__(layer, spec.activation, norm, deterministic, rng_collection, rngs)
        self.spec = spec
        self.eval_kl = check_flag("eval_kl", eval_kl)
        self.alpha_rank = alpha_rank
        self.recompute_alpha = recompute_alpha
        if alpha_layer is None:
            alpha_layer = (
                _maps.fresh_copy(layer, rngs) if alpha_rank is None else _maps.low_rank_copy(layer, alpha_rank, rngs)
            )
        self.alpha_layer = alpha_layer
        if spec.prior == "log-normal":
            dtype = getattr(layer, "param_dtype", jnp.float32)
            self.mu = nnx.Param(jnp.zeros((), dtype))
            # sigma = exp(log_sigma) stays positive under any optimiser step.
            self.log_sigma = nnx.Param(jnp.zeros((), dtype))
        self.kl = KLTerm(None)
        self.kl_pending = KLTerm(None)

    @property
    def sigma(self) -> jax.Array | None:
        """The log-normal prior's standard deviation (``None`` for the log-uniform prior)."""
        return jnp.exp(self.log_sigma[...]) if self.spec.prior == "log-normal" else None

    def __call__(
        self, x: jax.Array, noise: jax.Array | None = None, deterministic: bool | None = None, rngs: Any = None
    ) -> jax.Array:
        """Apply the layer; ``noise`` is the standard-normal ``eps`` shaped like the output."""
        probe = getattr(self, "_probe", None)  # set by kl_maps/alpha_stats/diagnostics for one pass
        if probe is not None:
            probe(self, x)
        deterministic = self._mode(deterministic)
        if deterministic and not self.eval_kl:  # the plain map; nothing recorded
            f = self.activation_of(x)
            if noise is not None:
                check_noise(noise, f.shape)
            drop(self)
            return f
        check_layer_input(x, _maps.compute_dtype(self.layer))
        lognormal = self.spec.prior == "log-normal"
        prior = {"mu": self.mu[...] if lognormal else None, "sigma": self.sigma if lognormal else None}
        remat = not deterministic and self.recompute_alpha and isinstance(self.alpha_layer, _maps.LowRankAlpha)
        if remat:  # t = down(x) is kept for backward, not the alpha logits (_remat.py)
            h, t = _maps.apply(self.layer, self.norm, x), self.alpha_layer.down(x)
        else:
            h, alpha_logits = _maps.apply_both(self.layer, self.norm, self.alpha_layer, x)
        if noise is not None:
            check_noise(noise, h.shape)
        key = self._key(deterministic, noise, rngs)
        if remat:
            up = self.alpha_layer.up
            z, kl = recomputed_kernel(self.spec, self.spec_activation, key, up, h, t, noise=noise, **prior)
        else:
            z, kl = info_dropout_kernel(
                self.spec, self.spec_activation, key, h, alpha_logits, deterministic=deterministic, noise=noise, **prior
            )
        kl = per_sample_kl(kl, batched=_maps.is_batched(self.layer, x), xp=xp)
        record(self, kl, replace=deterministic)
        # Inside nnx.capture (flax.nnx.Module.sow reads __captures__, flax 0.12) sow it as well;
        # sow outside a capture is deprecated.
        if hasattr(self, "__captures__"):
            self.sow(KLTerm, "kl", kl)
        return z


class BinaryDropout(_NoisyMap):
    """Baseline: ``act(norm(layer(x)))`` then binary dropout with ``rate`` (``noise``: uniform draws)."""

    _law = staticmethod(binary_dropout)

    def __init__(
        self,
        layer: nnx.Module,
        *,
        activation: str = "relu",
        rate: float = 0.5,
        norm: nnx.Module | None = None,
        deterministic: bool | None = False,
        rng_collection: str = "dropout",
        rngs: nnx.Rngs | nnx.RngStream | None = None,
        **unknown: Any,
    ) -> None:
        _no_unknown(type(self).__name__, unknown)
        super().__init__(layer, activation, norm, deterministic, rng_collection, rngs)
        self.rate = check_probability("rate", rate)

    def __call__(
        self, x: jax.Array, noise: jax.Array | None = None, deterministic: bool | None = None, rngs: Any = None
    ) -> jax.Array:
        deterministic = self._mode(deterministic) or self.rate == 0.0
        f = self.activation_of(x)
        return self._law(self._key(deterministic, noise, rngs), f, self.rate, deterministic=deterministic, noise=noise)


class GaussianDropout(BinaryDropout):
    """Baseline: Gaussian dropout with the variance ``rate/(1-rate)`` of binary dropout."""

    _law = staticmethod(gaussian_dropout)


class LogNormalDropout(_NoisyMap):
    """Baseline: log-normal dropout with one fixed ``alpha`` in ``[0, 1]`` and no alpha branch."""

    def __init__(
        self,
        layer: nnx.Module,
        *,
        activation: str = "relu",
        alpha: float = 0.7,
        mean_one: bool = False,
        norm: nnx.Module | None = None,
        deterministic: bool | None = False,
        rng_collection: str = "dropout",
        rngs: nnx.Rngs | nnx.RngStream | None = None,
        **unknown: Any,
    ) -> None:
        _no_unknown(type(self).__name__, unknown)
        super().__init__(layer, activation, norm, deterministic, rng_collection, rngs)
        self.alpha = check_alpha("alpha", alpha)
        self.mean_one = check_flag("mean_one", mean_one)

    def __call__(
        self, x: jax.Array, noise: jax.Array | None = None, deterministic: bool | None = None, rngs: Any = None
    ) -> jax.Array:
        deterministic = self._mode(deterministic)
        f = self.activation_of(x)
        return lognormal_dropout(
            self._key(deterministic, noise, rngs),
            f,
            self.alpha,
            mean_one=self.mean_one,
            deterministic=deterministic,
            noise=noise,
        )
