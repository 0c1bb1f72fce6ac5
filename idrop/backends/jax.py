"""JAX adapter: pure functions (``info_dropout(key, ...)``) and Flax NNX modules (``InfoDropout``).

The array namespace ``xp`` (``jax.numpy`` plus fused ``sigmoid``/``relu``) and the pure
functions, which take an explicit ``key`` (as in Equinox) unless ``deterministic`` or
``noise=`` is given and are safe under ``jit``/``grad``/``vmap``/``checkpoint``, live in
``_jax_functional.py`` and are re-exported here; the training kernel is in
``_jax_kernel.py``. This module holds the NNX modules, which follow
``flax.nnx.Dropout``: a ``deterministic`` attribute (``model.train()``/``model.eval()``,
``nnx.view``, or per call) and a forked ``"dropout"`` RNG stream (or ``rngs=`` per call).

The per-sample KL of each call is kept on ``layer.kl``, a :class:`KLTerm` variable (an
``nnx.Intermediate``), and is also sown under ``"kl"`` when the call runs inside
``nnx.capture(..., KLTerm)``. Inside ``nnx.value_and_grad`` read it in the loss with
:func:`kl_loss` / :func:`ib_loss` right after the forward call.

All options are static Python values, validated at trace time by :mod:`idrop.core.spec`
(the same messages as every backend). Half-precision inputs get their KL, alpha and
noise in float32.

Example:
    >>> from flax import nnx
    >>> import jax.numpy as jnp
    >>> from idrop.backends.jax import InfoDropout
    >>> layer = InfoDropout(nnx.Linear(784, 256, rngs=nnx.Rngs(0)), rngs=nnx.Rngs(0, dropout=1))
    >>> z = layer(jnp.ones((32, 784)))
    >>> z.shape, layer.kl[...].shape
    ((32, 256), (32,))
"""

from __future__ import annotations

from typing import Any

from idrop.backends import missing_framework

try:
    import jax
    import jax.numpy as jnp
    from flax import nnx
except ImportError as err:  # pragma: no cover - exercised in a subprocess test
    raise missing_framework("jax", "JAX and Flax") from err

from idrop.backends._jax_functional import (
    _chain,
    _check_float,
    alpha_from_logits,
    binary_dropout,
    gaussian_dropout,
    gaussian_kl,
    info_dropout,
    lognormal_dropout,
    xp,
)
from idrop.core._xp import activation as _activation
from idrop.core.loss import ib_loss as _ib_loss
from idrop.core.loss import kl_term as _kl_term
from idrop.core.loss import per_sample_kl as _per_sample_kl
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
    "KLTerm",
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
# Flax NNX modules and losses (the pure functions are in _jax_functional.py).  #
# --------------------------------------------------------------------------- #


class KLTerm(nnx.Intermediate):
    """The per-sample KL (shape ``[batch]``) an :class:`InfoDropout` layer keeps from its last call."""


_MODE_HELP = (
    "No `deterministic` argument was provided to {name}. Pass `deterministic=` to the "
    "constructor or the call, use model.train()/model.eval(), or nnx.view(model, deterministic=...)."
)


def _fresh_copy(layer: nnx.Module, rngs: Any) -> nnx.Module:
    """A new map of ``layer``'s kind and shape with its own, freshly initialised weights."""
    if not isinstance(layer, (nnx.Linear, nnx.Conv)):
        raise ValueError(
            "Invalid value received for argument `alpha_layer`. Expected a module when "
            "`layer` is not nnx.Linear/nnx.Conv. "
            f"Received: alpha_layer=None, layer={type(layer).__name__}"
        )
    if not isinstance(rngs, nnx.Rngs):
        raise invalid("rngs", "an nnx.Rngs to initialise the default alpha_layer", rngs)
    common = {
        "use_bias": layer.use_bias,
        "dtype": layer.dtype,
        "param_dtype": layer.param_dtype,
        "precision": layer.precision,
        "promote_dtype": layer.promote_dtype,
        "preferred_element_type": layer.preferred_element_type,
        "rngs": rngs,
    }
    if isinstance(layer, nnx.Linear):
        return nnx.Linear(layer.in_features, layer.out_features, dot_general=layer.dot_general, **common)
    return nnx.Conv(
        layer.in_features,
        layer.out_features,
        layer.kernel_size,
        layer.strides,
        padding=layer.padding,
        input_dilation=layer.input_dilation,
        kernel_dilation=layer.kernel_dilation,
        feature_group_count=layer.feature_group_count,
        mask=layer.mask,
        conv_general_dilated=layer.conv_general_dilated,
        **common,
    )


def _first(*values: Any, error_msg: str) -> Any:
    """The first value that is not None (``flax.nnx.module.first_from``, not public API)."""
    for value in values:
        if value is not None:
            return value
    raise ValueError(error_msg)


def _own_stream(rngs: Any, rng_collection: str) -> Any:
    """The module's own RNG stream, as ``nnx.Dropout`` stores it."""
    if isinstance(rngs, nnx.Rngs):
        return rngs[rng_collection].fork()
    if isinstance(rngs, nnx.RngStream):
        return rngs.fork()
    if rngs is None:
        return nnx.data(None)
    raise TypeError(f"rngs must be a Rngs, RngStream or None, but got {type(rngs)}.")


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
        self.deterministic = deterministic
        self.rng_collection = rng_collection
        self.rngs = _own_stream(rngs, rng_collection)

    def activation_of(self, x: jax.Array) -> jax.Array:
        """``f(x) = act(norm(layer(x)))``, after checking that ``x`` is floating point."""
        _check_float("x", x)
        h = self.layer(x)
        if self.norm is not None:
            h = self.norm(h)
        return _activation(self.spec_activation, h, xp=xp)

    def _mode(self, deterministic: bool | None) -> bool:
        return bool(_first(deterministic, self.deterministic, error_msg=_MODE_HELP.format(name=type(self).__name__)))

    def _key(self, deterministic: bool, noise: Any, rngs: Any) -> jax.Array | None:
        """A fresh key from the call's ``rngs`` or the module's stream, when a draw is needed."""
        if deterministic or noise is not None:
            return None
        rngs = _first(
            rngs,
            self.rngs,
            error_msg=(
                f"`deterministic` is False, but no `rngs` argument was provided to {type(self).__name__} "
                "as either a __call__ argument or class attribute."
            ),
        )
        if isinstance(rngs, nnx.Rngs):
            return rngs[self.rng_collection]()
        if isinstance(rngs, nnx.RngStream):
            return rngs()
        if isinstance(rngs, jax.Array):
            return rngs
        raise TypeError(f"rngs must be a Rngs, RngStream or jax.Array, but got {type(rngs)}.")

    def set_view(self, deterministic: bool | None = None) -> None:
        """Used by ``nnx.view``: ``deterministic=True`` disables the noise."""
        if deterministic is not None:
            self.deterministic = deterministic


class InfoDropout(_NoisyMap):
    r"""Information Dropout around ``nnx.Linear`` or ``nnx.Conv`` (Achille & Soatto 2016).

    .. math:: z = f(x)\,e^{\alpha(x)\,\epsilon}, \quad f = \mathrm{act}(\mathrm{norm}(\mathrm{layer}(x))),
        \quad \alpha = \alpha_{\min} + \alpha_{\max}\,\sigma(\mathrm{alpha\_layer}(x))

    When not deterministic the log-normal noise is applied (``eps`` from the
    ``rng_collection`` stream) by a ``jax.custom_vjp`` kernel (:mod:`idrop.backends._jax_kernel`)
    that keeps only ``f``, the alpha logits and the key for the backward pass; when
    deterministic the output is ``f(x)`` and, unless ``eval_kl``, the alpha branch and
    the KL are skipped (``.kl`` is set to ``None``, so :func:`kl_loss` sees no stale KL).
    Otherwise the per-sample KL (eq. 3 or 4, summed over units; float32 for half precision) is
    kept on ``.kl`` (a :class:`KLTerm`, read ``layer.kl[...]``) for :func:`kl_loss` and
    :func:`ib_loss`, and sown as ``"kl"`` under ``nnx.capture(fn, KLTerm)``. Save
    checkpoints with ``nnx.state(model, nnx.Not(KLTerm))``: the KL's shape follows the batch.

    Args:
        layer: ``nnx.Linear`` or ``nnx.Conv`` (any module if ``alpha_layer`` is given).
        activation: ``"relu"`` or ``"softplus"``.
        prior: ``"log-uniform"`` or ``"log-normal"``; default from the activation.
        max_alpha: cap of the noise scale (default 0.7, official code).
        alpha_min: floor of the noise scale (default 1e-3).
        mean_one: mean-1 noise ``exp(alpha*eps - alpha^2/2)`` instead of median-1.
        zero_units: ``"count"`` or ``"mask"`` for units with ``f(x) == 0`` (log-uniform prior).
        norm: optional module between ``layer`` and the activation (batch norm in the paper's CNNs).
        alpha_layer: the alpha branch; default a fresh module of ``layer``'s kind and
            shape (default initialisers), initialised from ``rngs``.
        deterministic: no noise when true; overridden per call, by ``model.train()``/``eval()``
            or ``nnx.view(model, deterministic=...)``.
        eval_kl: compute the KL in deterministic calls too (default False: evaluation is the plain map).
        rng_collection: the ``rngs`` stream the noise is drawn from.
        rngs: ``nnx.Rngs`` (its ``rng_collection`` stream is forked for the noise, its
            ``params`` stream initialises the default alpha branch), an ``RngStream``, or
            ``None`` to pass ``rngs=`` at each call (these two need ``alpha_layer``).

    Call arguments:
        x: the input of ``layer``. noise: standard-normal ``eps`` shaped like the output.
        deterministic: overrides the attribute. rngs: ``Rngs``, ``RngStream`` or key for this call.

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
        deterministic: bool | None = False,
        eval_kl: bool = False,
        rng_collection: str = "dropout",
        rngs: nnx.Rngs | nnx.RngStream | None,
    ) -> None:
        spec = InfoDropoutSpec(activation, prior, max_alpha, alpha_min, mean_one, zero_units)
        super().__init__(layer, spec.activation, norm, deterministic, rng_collection, rngs)
        self.spec = spec
        self.eval_kl = bool(eval_kl)
        self.alpha_layer = _fresh_copy(layer, rngs) if alpha_layer is None else alpha_layer
        if spec.prior == "log-normal":
            dtype = getattr(layer, "param_dtype", jnp.float32)
            self.mu = nnx.Param(jnp.zeros((), dtype))
            # sigma = exp(log_sigma) stays positive under any optimiser step.
            self.log_sigma = nnx.Param(jnp.zeros((), dtype))
        self.kl = KLTerm(None)

    @property
    def sigma(self) -> jax.Array | None:
        """The log-normal prior's standard deviation (``None`` for the log-uniform prior)."""
        return jnp.exp(self.log_sigma[...]) if self.spec.prior == "log-normal" else None

    def __call__(
        self, x: jax.Array, noise: jax.Array | None = None, deterministic: bool | None = None, rngs: Any = None
    ) -> jax.Array:
        """Apply the layer; ``noise`` is the standard-normal ``eps`` shaped like the output."""
        deterministic = self._mode(deterministic)
        if deterministic and not self.eval_kl:
            self.kl.set_value(None)  # no KL in evaluation unless eval_kl
            return self.activation_of(x)
        _check_float("x", x)
        h, alpha_logits = self.layer(x), self.alpha_layer(x)
        if self.norm is not None:
            h = self.norm(h)
        check_same_shape(h.shape, alpha_logits.shape)
        _check_float("f", h)
        _check_float("alpha_logits", alpha_logits)
        lognormal = self.spec.prior == "log-normal"
        z, kl = _chain(
            self.spec,
            self.spec_activation,
            self._key(deterministic, noise, rngs),
            h,
            alpha_logits,
            deterministic=deterministic,
            noise=noise,
            mu=self.mu[...] if lognormal else None,
            sigma=self.sigma if lognormal else None,
        )
        kl = _per_sample_kl(kl, xp=xp)
        self.kl.set_value(kl)
        if hasattr(self, "__captures__"):  # inside nnx.capture: sow as well (sow outside it is deprecated)
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
    ) -> None:
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
    """Baseline: log-normal dropout with one fixed ``alpha`` and no alpha branch."""

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
    ) -> None:
        super().__init__(layer, activation, norm, deterministic, rng_collection, rngs)
        self.alpha = check_nonnegative("alpha", alpha)
        self.mean_one = InfoDropoutSpec(mean_one=mean_one).mean_one

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


def _kl_per_sample(model: nnx.Module) -> list[jax.Array]:
    """Each InfoDropout layer's last per-sample KL, promoted to float32 at least."""
    kls = []
    for _, m in nnx.iter_modules(model):
        if isinstance(m, InfoDropout) and m.kl.get_value() is not None:
            k = m.kl.get_value()
            kls.append(k.astype(jnp.promote_types(k.dtype, jnp.float32)))
    return kls


def kl_loss(model: nnx.Module, n_train: int) -> jax.Array:
    r"""``sum over InfoDropout layers of mean(layer.kl) / n_train`` from the last call (eq. 5).

    Call it inside the loss function, after the forward pass, so it sees this pass's KL.
    """
    kls = _kl_per_sample(model)
    if not kls:
        zero = jnp.zeros((), jnp.float32)
        _kl_term([zero], n_train=n_train, xp=xp)  # validates n_train all the same
        return zero
    return _kl_term(kls, n_train=n_train, xp=xp)


def ib_loss(task_loss: jax.Array, model: nnx.Module, beta: float, n_train: int) -> jax.Array:
    r"""The Information Bottleneck loss ``task_loss + beta * kl_loss(model, n_train)`` (eq. 5)."""
    kls = _kl_per_sample(model) or [jnp.zeros((), jnp.float32)]
    return _ib_loss(task_loss, kls, beta=beta, n_train=n_train, xp=xp)
