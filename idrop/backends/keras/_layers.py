"""The Keras 3 layers: ``InfoDropout`` and the baselines that wrap a layer, on every Keras backend.

One set of classes: ``idrop.backends.tensorflow`` exports these same classes, which on the
TensorFlow backend run its ``tf.custom_gradient`` kernel and Philox draws (see :mod:`._kernel`).

``InfoDropout`` computes its two maps in :mod:`._maps` and the element-wise chain in the
fused kernel of :mod:`._kernel`, and records its KL in :mod:`._losses`; the baselines call
the functional ops of :mod:`._functional`. ``keras.src.backend.common.symbolic_scope.in_symbolic_scope``
(Keras 3.15) tells the symbolic call that infers output shapes, which records nothing.
"""

from __future__ import annotations

import functools
from typing import Any

import keras
from keras import ops
from keras.src.backend.common.symbolic_scope import in_symbolic_scope

from idrop.backends.keras._functional import (
    binary_dropout,
    gaussian_dropout,
    info_dropout,
    lognormal_dropout,
)
from idrop.backends.keras._kernel import info_dropout_kernel as _info_dropout_kernel
from idrop.backends.keras._kernel import kernel_noise
from idrop.backends.keras._losses import KLRecords, kl_term
from idrop.backends.keras._maps import (
    LowRankAlpha,
    NoisyMap,
    _build,
    _fresh_copy,
    _low_rank_call,
    _low_rank_copy,
    _low_rank_twins,
    _plain_call,
    _twin_call,
    _twins,
    plain_errors,
)
from idrop.backends.keras._namespace import (
    BACKEND,
    adds_records,
    check_noise,
    compute_dtype,
    tensor,
    xp,
)
from idrop.backends.keras._remat import recomputed_kernel
from idrop.core._xp import activation as _activation
from idrop.core.loss import per_sample_kl as _per_sample_kl
from idrop.core.spec import (
    InfoDropoutSpec,
    check_alpha,
    check_alpha_rank,
    check_beta,
    check_flag,
    check_n_train,
    check_probability,
    check_recompute_alpha,
    check_same_shape,
)


def _sampling(layer: keras.Layer) -> bool:
    """Whether ``sampling(model)`` has turned this layer's noise on (a plain attribute, never saved)."""
    return getattr(layer, "_sampling", False)


@keras.saving.register_keras_serializable(package="idrop")
class InfoDropout(NoisyMap):
    r"""Information Dropout around a dense or convolutional layer (Achille & Soatto 2016).

    .. math:: z = f(x)\,e^{\alpha(x)\,\epsilon}, \quad f = \mathrm{act}(\mathrm{norm}(\mathrm{layer}(x))),
        \quad \alpha = \alpha_{\min} + \alpha_{\max}\,\sigma(\mathrm{alpha\_layer}(x))

    With ``training=True`` (or inside :func:`sampling`, which :func:`mc_predict` uses) the
    log-normal noise is applied; otherwise the output is ``f(x)``. In training calls (and
    evaluation calls with ``eval_kl=True``) the per-sample KL (eq. 3 or 4, summed over units;
    0-d for an input without batch axis) is recorded for
    :func:`kl_loss` / :func:`ib_loss`, which collect every call since the last collection, left
    on ``.kl`` (the last call's; ``None`` after an evaluation call without ``eval_kl``, which
    skips the alpha branch), and averaged in the metric ``"<name>_kl"``, which ``model.fit``
    logs per epoch (``history["<name>_kl"]``; not on the JAX backend, whose trainer drops metrics
    updated inside a layer, keras-team/keras#21639). With ``beta`` and ``n_train`` the layer adds
    ``beta * mean(kl) / n_train`` to ``model.losses`` in training calls, so ``model.fit``
    minimises the IB loss (eq. 5). A call traced inside ``model.fit`` or a ``tf.function``
    leaves symbolic tensors: read ``.kl`` and collect in that same function.

    Args:
        layer: ``Dense`` or ``Conv1D/2D/3D`` (any layer if ``alpha_layer`` is given).
        activation: ``"relu"`` or ``"softplus"``.
        prior: ``"log-uniform"`` or ``"log-normal"``; default from the activation.
        max_alpha: cap of the noise scale (default 0.7, official code).
        alpha_min: floor of the noise scale (default 1e-3).
        mean_one: mean-1 noise ``exp(alpha*eps - alpha^2/2)`` instead of median-1.
        zero_units: ``"count"`` or ``"mask"`` for units with ``f(x) == 0`` (log-uniform prior).
        norm: optional layer between ``layer`` and the activation (batch norm in the paper's CNNs).
        alpha_layer: the alpha branch; default a fresh ``layer`` of the same class
            and config (own weights, linear activation).
        alpha_rank: ``None`` (default, the paper's full alpha map) or an int ``r >= 1``: the
            alpha branch is the low-rank :class:`~idrop.backends.keras._maps.LowRankAlpha`
            ``up(down(x))`` (``down`` of ``layer``'s class and geometry with ``r`` outputs, ``up``
            a ``Dense``/1x1 conv with a bias), about ``r/out`` of the full map's cost. Not with
            ``alpha_layer``.
        recompute_alpha: with ``alpha_rank``, keep ``t = down(x)`` (``r`` channels) for the
            backward pass instead of the alpha logits and recompute ``up`` and the fused kernel
            there (``tf.recompute_grad`` on TensorFlow, ``jax.checkpoint`` on JAX,
            ``torch.utils.checkpoint`` on torch; :mod:`idrop.backends.keras._remat`): a conv step
            keeps ``x + h + t`` instead of ``x + h + a`` (plus ``eps`` on JAX and torch), for more
            time per step. Same outputs and gradients; on TensorFlow no second derivative
            (``tf.recompute_grad`` refuses it). Default ``False``.
        beta, n_train: when both are given, add the KL term to ``self.losses``.
        eval_kl: also compute the alpha branch and the KL in evaluation calls (default: skip them).
        seed: int seed of the layer's ``keras.random.SeedGenerator``.
        **kwargs: ``keras.Layer`` arguments (``name``, ``dtype``; default ``layer``'s dtype policy).

    Call arguments:
        x: the input of ``layer``: a tensor or array in the layer's compute dtype (under a
        mixed-precision policy also float32, which Keras autocasts). training: ``True``,
        ``False`` or ``None`` (Keras's default). noise: the standard-normal ``eps``, shaped
        exactly like the output (float32 under mixed precision).

    Raises:
        ValueError, TypeError: for bad options, unknown keyword arguments or a ``layer`` with an
            activation of its own, at construction; for input of another dtype, rank 0 or a Python
            list, a non-bool ``training``, a misshapen ``noise`` or an ``alpha_layer`` of another
            output shape, at the call (docs/design-notes.md sections 1-2).
    """

    def __init__(
        self,
        layer: keras.Layer,
        *,
        activation: str = "relu",
        prior: str | None = None,
        max_alpha: float = 0.7,
        alpha_min: float = 1e-3,
        mean_one: bool = False,
        zero_units: str = "count",
        norm: keras.Layer | None = None,
        alpha_layer: keras.Layer | None = None,
        alpha_rank: int | None = None,
        recompute_alpha: bool = False,
        beta: float | None = None,
        n_train: int | None = None,
        eval_kl: bool = False,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        spec = InfoDropoutSpec(activation, prior, max_alpha, alpha_min, mean_one, zero_units)
        beta = None if beta is None else check_beta(beta)
        n_train = None if n_train is None and beta is None else check_n_train(n_train)
        alpha_rank = check_alpha_rank(alpha_rank, has_alpha_layer=alpha_layer is not None)
        recompute_alpha = check_recompute_alpha(recompute_alpha, alpha_rank=alpha_rank)
        if alpha_layer is None:
            alpha_layer = _fresh_copy(layer) if alpha_rank is None else _low_rank_copy(layer, alpha_rank)
        super().__init__(layer, activation=spec.activation, norm=norm, seed=seed, **kwargs)
        self.spec, self.beta, self.n_train, self.alpha_layer = spec, beta, n_train, alpha_layer
        self.alpha_rank = alpha_rank
        self.recompute_alpha = recompute_alpha
        self.eval_kl = check_flag("eval_kl", eval_kl)
        # Keras's JAX trainer drops a metric updated inside a layer's call (its forward runs as a
        # stateless call that maps only the weights: keras-team/keras#21639, #19402); a metric
        # that always read 0 would mislead, so on JAX there is none (read `.kl` or the loss).
        self.kl_metric = None if BACKEND == "jax" else keras.metrics.Mean(name=f"{self.name}_kl")
        self._kl_records = KLRecords()
        if spec.prior == "log-normal":
            # sigma = exp(log_sigma) stays positive under any optimiser step; float32 at
            # least under mixed precision (autocast=False), like the KL.
            self.mu = self.add_weight(shape=(), initializer="zeros", name="mu", autocast=False)
            self.log_sigma = self.add_weight(shape=(), initializer="zeros", name="log_sigma", autocast=False)

    @property
    def sigma(self) -> Any:
        """The log-normal prior's standard deviation (``None`` for the log-uniform prior)."""
        return ops.exp(self.log_sigma) if self.spec.prior == "log-normal" else None

    def build(self, input_shape: tuple) -> None:
        super().build(input_shape)  # `layer` and `norm`
        check_same_shape(self.layer.compute_output_shape(input_shape), _build(self.alpha_layer, input_shape))
        self._twin_maps = _twins(self.layer, self.alpha_layer)
        self._low_rank_maps = _low_rank_twins(self.layer, self.alpha_layer)

    def _maps(self, x: Any, skip_up: bool = False) -> tuple[Any, Any]:
        """``(norm(layer(x)), alpha_layer(x))``: one op on the concatenated kernels when they allow it.

        ``skip_up`` (the cheap branch only): ``(norm(layer(x)), down(x))``, for the caller to apply ``up``.
        """
        x = tensor(x)
        if getattr(self, "_twin_maps", False):
            h, alpha_logits = _twin_call(self.layer, self.alpha_layer, x)
        elif getattr(self, "_low_rank_maps", False):
            h, alpha_logits = _low_rank_call(self.layer, self.alpha_layer, x, skip_up=skip_up)
        elif skip_up:
            h, alpha_logits = _plain_call(self.layer, x), _plain_call(self.alpha_layer.down, x)
        else:
            h, alpha_logits = _plain_call(self.layer, x), self.alpha_layer(x)
        if self.norm is not None:
            h = self.norm(h)
        return h, alpha_logits

    def call(self, x: Any, training: bool | None = None, noise: Any = None) -> Any:
        training = bool(training)
        probe = getattr(self, "_probe", None)  # set by kl_maps/alpha_stats/diagnostics for one pass
        if probe is not None and not in_symbolic_scope():  # not while Keras infers output shapes
            probe(self, x)
        # `sampling(model)` turns the noise on in inference calls; everything else keeps `training`.
        noisy = training or _sampling(self)
        if not noisy and not self.eval_kl:
            if not in_symbolic_scope():  # not while Keras infers output shapes
                self._kl_records.skip()  # no alpha branch, no KL, no metric update
            return self.activation_of(x)
        remat = noisy and self.recompute_alpha and isinstance(self.alpha_layer, LowRankAlpha)
        h, alpha_logits = self._maps(x, skip_up=remat)  # with remat: t = down(x), up is applied in the region
        if not remat:
            check_same_shape(h.shape, alpha_logits.shape)
        lognormal = self.spec.prior == "log-normal"
        batched = len(h.shape) > 1  # a 1-D input to Dense is one sample: a 0-d KL
        source = getattr(self, "_noise_source", None)  # set by mc_predict: per-sample seeded noise
        if noisy and noise is None and source is not None and not in_symbolic_scope():
            noise = source(self, tuple(h.shape), compute_dtype(h))
        if noisy:
            kl_dtype = compute_dtype(h)
            if noise is None:
                noise = kernel_noise(self.seed_generator, h)
            else:
                noise = tensor(noise, kl_dtype)
                with plain_errors():
                    check_noise("noise", noise, h.shape)
            prior = (ops.cast(self.mu, kl_dtype), ops.cast(self.sigma, kl_dtype)) if lognormal else ()
            kernel = _info_dropout_kernel(self.spec, kl_dtype, len(h.shape))
            if remat:
                up = functools.partial(_plain_call, self.alpha_layer.up)
                kernel = recomputed_kernel(kernel, up, self.spec, len(h.shape))
            z, kl = kernel(h, alpha_logits, noise, *prior)
        else:
            z, kl = info_dropout(
                _activation(self.activation, h, xp=xp),
                alpha_logits,
                **self.spec.kl_options,
                training=False,
                mu=self.mu if lognormal else None,
                sigma=self.sigma if lognormal else None,
            )
            kl = _per_sample_kl(kl, batched=batched, xp=xp)
        if not in_symbolic_scope():
            # Added while some tape may differentiate it (or in a trace); else it replaces the records.
            self._kl_records.record(kl, add=adds_records(noisy))
        if self.kl_metric is not None:
            self.kl_metric.update_state(kl)
        if training and self.beta is not None and self.n_train is not None:  # both or neither (__init__)
            self.add_loss(ops.cast(self._beta_now() * kl_term([kl], self.n_train), keras.config.floatx()))
        return z

    def _beta_now(self) -> Any:
        """``beta``, or the value of the schedule a ``BetaScheduler`` callback installed for ``fit``."""
        scheduled = getattr(self, "_beta_schedule", None)
        return self.beta if scheduled is None else scheduled()

    @property
    def kl(self) -> Any:  # type: ignore[override]  # NoisyMap's is a class attribute, None
        """The per-sample KL of the last call (``None`` before any, and after an evaluation call without it)."""
        return self._kl_records.latest

    def get_config(self) -> dict[str, Any]:
        s = self.spec
        return {
            **super().get_config(),
            "prior": s.prior,
            "max_alpha": s.max_alpha,
            "alpha_min": s.alpha_min,
            "mean_one": s.mean_one,
            "zero_units": s.zero_units,
            # The low-rank branch is rebuilt from `alpha_rank` (its weights load by their paths).
            "alpha_layer": None if self.alpha_rank else keras.saving.serialize_keras_object(self.alpha_layer),
            "alpha_rank": self.alpha_rank,
            "recompute_alpha": self.recompute_alpha,
            "beta": self.beta,
            "n_train": self.n_train,
            "eval_kl": self.eval_kl,
        }


@keras.saving.register_keras_serializable(package="idrop")
class BinaryDropout(NoisyMap):
    """Baseline: ``act(norm(layer(x)))`` then binary dropout with ``rate`` (``noise``: uniform draws)."""

    def __init__(
        self,
        layer: keras.Layer,
        *,
        activation: str = "relu",
        rate: float = 0.5,
        norm: keras.Layer | None = None,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(layer, activation=activation, norm=norm, seed=seed, **kwargs)
        self.rate = check_probability("rate", rate)

    def call(self, x: Any, training: bool | None = None, noise: Any = None) -> Any:
        f = self.activation_of(x)
        with plain_errors():
            return binary_dropout(
                f, self.rate, training=bool(training) or _sampling(self), noise=noise, seed=self.seed_generator
            )

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "rate": self.rate}


@keras.saving.register_keras_serializable(package="idrop")
class GaussianDropout(BinaryDropout):
    """Baseline: Gaussian dropout with the variance ``rate/(1-rate)`` of binary dropout."""

    def call(self, x: Any, training: bool | None = None, noise: Any = None) -> Any:
        f = self.activation_of(x)
        with plain_errors():
            return gaussian_dropout(
                f, self.rate, training=bool(training) or _sampling(self), noise=noise, seed=self.seed_generator
            )


@keras.saving.register_keras_serializable(package="idrop")
class LogNormalDropout(NoisyMap):
    """Baseline: log-normal dropout with one fixed ``alpha`` and no alpha branch."""

    def __init__(
        self,
        layer: keras.Layer,
        *,
        activation: str = "relu",
        alpha: float = 0.7,
        mean_one: bool = False,
        norm: keras.Layer | None = None,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(layer, activation=activation, norm=norm, seed=seed, **kwargs)
        self.alpha = check_alpha("alpha", alpha)
        self.mean_one = check_flag("mean_one", mean_one)

    def call(self, x: Any, training: bool | None = None, noise: Any = None) -> Any:
        f, seed = self.activation_of(x), self.seed_generator
        with plain_errors():
            return lognormal_dropout(
                f,
                self.alpha,
                mean_one=self.mean_one,
                training=bool(training) or _sampling(self),
                noise=noise,
                seed=seed,
            )

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "alpha": self.alpha, "mean_one": self.mean_one}
