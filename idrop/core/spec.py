"""Validated options of an Information Dropout layer, shared by every backend.

Validation happens here once, so that every adapter raises the same exception
class with the same message for the same bad input (DESIGN.md section 2). The
wording follows Keras: name the argument, say what is expected, echo the value.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any, Literal, overload

ACTIVATIONS = ("relu", "softplus")
PRIORS = ("log-uniform", "log-normal")
ZERO_UNITS = ("count", "mask")

#: The prior the paper pairs with each activation (Propositions 1 and 2).
DEFAULT_PRIOR = {"relu": "log-uniform", "softplus": "log-normal"}


def invalid(name: str, expected: str, value: Any) -> ValueError:
    """Build the one error message used for every bad argument value.

    Example:
        >>> str(invalid("beta", "a float >= 0", -1))
        'Invalid value received for argument `beta`. Expected a float >= 0. Received: beta=-1'
    """
    return ValueError(f"Invalid value received for argument `{name}`. Expected {expected}. Received: {name}={value!r}")


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        allowed = ", ".join(repr(c) for c in choices)
        raise invalid(name, f"one of {allowed}", value)
    return value


def _check_real(name: str, value: Any) -> float:
    # numbers.Real admits NumPy scalars (np.float32(0.5), np.int64(3)) as well as Python numbers.
    if isinstance(value, (bool, _numpy_bool())) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"Invalid type received for argument `{name}`. "
            f"Expected a Python float. Received: {name}={value!r} "
            f"of type {type(value).__name__}"
        )
    value = float(value)
    if not math.isfinite(value):
        raise invalid(name, "a finite float", value)
    return value


#: Largest accepted ``max_alpha`` (and fixed ``alpha``): the paper's experiments use 0.5 and the
#: official code 0.7 to 1.0; above 1 the log-normal noise's variance exp(alpha^2) - 1 exceeds 1.7
#: and float32 training breaks down (docs/design-notes.md, "Bounds").
MAX_ALPHA_LIMIT = 1.0


def _numpy_bool() -> type:
    """``numpy.bool_`` when NumPy is imported (it always is with a framework), else ``bool``."""
    import sys

    np = sys.modules.get("numpy")
    return np.bool_ if np is not None else bool


def check_max_alpha(max_alpha: Any) -> float:
    """Return ``max_alpha`` as a float, or raise if it is not in ``(0, 1]``."""
    value = _check_real("max_alpha", max_alpha)
    if not 0 < value <= MAX_ALPHA_LIMIT:
        raise invalid("max_alpha", "a float in (0, 1] (the paper uses 0.5 to 1.0)", max_alpha)
    return value


def check_alpha_min(alpha_min: Any) -> float:
    """Return ``alpha_min`` as a float, or raise if it is not in ``(0, 1]``.

    0 is refused: the log-uniform KL is ``log(1/alpha)``, infinite where ``sigmoid(a)`` rounds to 0.
    """
    value = _check_real("alpha_min", alpha_min)
    if not 0 < value <= MAX_ALPHA_LIMIT:
        raise invalid("alpha_min", "a float in (0, 1] (default 1e-3; 0 makes the KL infinite)", alpha_min)
    return value


def check_alpha(name: str, value: Any) -> float:
    """Return a fixed noise scale (``LogNormalDropout``'s ``alpha``) in ``[0, 1]``, or raise."""
    v = _check_real(name, value)
    if not 0 <= v <= MAX_ALPHA_LIMIT:
        raise invalid(name, "a float in [0, 1]", value)
    return v


#: Accepted range of a Python ``sigma`` (the log-normal prior's scale): outside it ``1 / sigma**2``
#: or ``sigma**2`` leaves float32's range and the KL is inf or NaN.
PRIOR_SCALE_RANGE = (1e-6, 1e6)


def check_prior_scale(name: str, value: Any) -> float:
    """Return a Python prior scale (the functional ``sigma``) in ``[1e-6, 1e6]``, or raise."""
    v = _check_real(name, value)
    lo, hi = PRIOR_SCALE_RANGE
    if not lo <= v <= hi:
        raise invalid(name, f"a float in [{lo:g}, {hi:g}] (the prior's scale; float32 overflows outside it)", value)
    return v


@overload
def check_flag(name: str, value: Any, *, allow_none: Literal[False] = False) -> bool: ...
@overload
def check_flag(name: str, value: Any, *, allow_none: bool) -> bool | None: ...


def check_flag(name: str, value: Any, *, allow_none: bool = False) -> bool | None:
    """Return a bool flag (``mean_one``, ``eval_kl``, ``training``, ``deterministic``), or raise.

    Only ``True``/``False`` (and NumPy bools) are flags: a truthy string such as ``"false"`` would
    silently mean the opposite of what it says.
    """
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, _numpy_bool())):
        return bool(value)
    expected = "a bool (True or False) or None" if allow_none else "a bool (True or False)"
    raise invalid(name, expected, value)


def check_nonnegative(name: str, value: Any) -> float:
    """Return ``value`` as a float, or raise if it is negative (e.g. a fixed ``alpha``)."""
    v = _check_real(name, value)
    if v < 0:
        raise invalid(name, "a float >= 0", value)
    return v


def check_beta(beta: Any) -> float:
    """Return ``beta`` as a float, or raise if it is negative."""
    value = _check_real("beta", beta)
    if value < 0:
        raise invalid("beta", "a float >= 0", beta)
    return value


def check_n_train(n_train: Any) -> int:
    """Return ``n_train`` (the training-set size) as an int, or raise if < 1.

    NumPy integers (``len(np_array)``-style sizes, ``x.shape[0]`` of a NumPy array) are ints.
    """
    if isinstance(n_train, (bool, _numpy_bool())):
        raise invalid("n_train", "an int >= 1 (the training-set size)", n_train)
    if not isinstance(n_train, numbers.Integral):
        if isinstance(n_train, numbers.Real) and math.isfinite(n_train) and float(n_train).is_integer():
            n_train = int(float(n_train))
        else:
            raise invalid("n_train", "an int >= 1 (the training-set size)", n_train)
    if n_train < 1:
        raise invalid("n_train", "an int >= 1 (the training-set size)", n_train)
    return int(n_train)


# Overloads: a count or seed checked with allow_none=False is an int for the type checker (no None).
@overload
def check_count(name: str, value: Any, what: str, *, allow_none: Literal[False] = False) -> int: ...
@overload
def check_count(name: str, value: Any, what: str, *, allow_none: bool) -> int | None: ...


def check_count(name: str, value: Any, what: str, *, allow_none: bool = False) -> int | None:
    """Return a positive count (``n_samples``, ``chunk``) as an int, or raise; ``what`` says what it counts.

    Example:
        >>> check_count("n_samples", 8, "the number of stochastic forward passes")
        8
    """
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, _numpy_bool())) or not isinstance(value, numbers.Integral) or value < 1:
        expected = f"an int >= 1 ({what})" + (" or None" if allow_none else "")
        raise invalid(name, expected, value)
    return int(value)


@overload
def check_seed(name: str, value: Any, *, allow_none: Literal[False]) -> int: ...
@overload
def check_seed(name: str, value: Any, *, allow_none: bool = True) -> int | None: ...


def check_seed(name: str, value: Any, *, allow_none: bool = True) -> int | None:
    """Return an int seed ``>= 0`` (or ``None`` when allowed), or raise."""
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, _numpy_bool())) or not isinstance(value, numbers.Integral) or value < 0:
        raise invalid(name, "an int >= 0" + (" or None" if allow_none else ""), value)
    return int(value)


def not_a_layer(name: str, value: Any, expected: str) -> TypeError:
    """The error for a diagnostic asked of something that is not an Information Dropout layer."""
    return TypeError(
        f"Invalid type received for argument `{name}`. Expected {expected}. "
        f"Received: {name} of type {type(value).__name__}"
    )


def no_info_dropout(name: str) -> ValueError:
    """The error for a model without any Information Dropout layer where one is needed."""
    return ValueError(
        f"Invalid value received for argument `{name}`. Expected a model holding at least one InfoDropout layer "
        "(wrap a layer with InfoDropout first). Received: a model without one"
    )


def check_probability(name: str, value: Any, *, allow_one: bool = False) -> float:
    """Return a dropout rate in ``[0, 1)`` (or ``[0, 1]``), or raise."""
    v = _check_real(name, value)
    upper_ok = v <= 1 if allow_one else v < 1
    if not (v >= 0 and upper_ok):
        interval = "[0, 1]" if allow_one else "[0, 1)"
        raise invalid(name, f"a float in {interval}", value)
    return v


def check_float_dtype(name: str, dtype_name: str, is_floating: bool) -> None:
    """Raise ``TypeError`` if an input tensor is not floating point.

    Adapters pass the framework's dtype name and whether it is a float type, so
    the message is the same everywhere.
    """
    if not is_floating:
        raise TypeError(
            f"Invalid dtype received for argument `{name}`. Expected a floating "
            f"point tensor (float16, bfloat16, float32 or float64); cast the input "
            f"to a float dtype first. Received: dtype={dtype_name}"
        )


def check_input_type(name: str, value: Any, is_array: bool) -> None:
    """Raise ``TypeError`` for an input that is not an array of the framework (a list, a number).

    Adapters pass whether the value is an array they accept, so the message is the same everywhere.
    """
    if not is_array:
        raise TypeError(
            f"Invalid type received for argument `{name}`. Expected a tensor (an array of the "
            f"framework in use); convert it first. Received: {name} of type {type(value).__name__}"
        )


def check_input_rank(name: str, shape: tuple) -> None:
    """Raise ``ValueError`` for a 0-d input: a layer needs at least one feature axis."""
    if len(tuple(shape)) == 0:
        raise invalid(name, "a tensor with at least 1 dimension (features, or batch and features)", "shape ()")


def check_input_dtype(name: str, dtype_name: str, compute_dtype_name: str) -> None:
    """Raise ``TypeError`` when a float input's dtype differs from the dtype the layer computes in.

    torch refuses such input, Keras casts it and Flax promotes it; idrop refuses it in every backend
    (docs/design-notes.md, "Input dtype"), so a float64 batch never silently runs in float32 or the
    reverse. Keras layers under a mixed-precision policy still autocast, as every Keras layer does.
    """
    if dtype_name != compute_dtype_name:
        raise TypeError(
            f"Invalid dtype received for argument `{name}`. Expected {compute_dtype_name}, the dtype "
            f"the layer computes in; cast the input (or build the layer in {dtype_name}) first. "
            f"Received: dtype={dtype_name}"
        )


def check_noise_shape(name: str, noise_shape: tuple, expected_shape: tuple) -> None:
    """Raise unless injected noise has exactly the shape of the activation (no broadcasting)."""
    if tuple(noise_shape) != tuple(expected_shape):
        raise invalid(
            name,
            f"a tensor of shape {tuple(expected_shape)}, the shape of the layer's output (one draw per unit)",
            f"shape {tuple(noise_shape)}",
        )


def check_scalar_shape(name: str, shape: tuple) -> None:
    """Raise unless a prior parameter (``mu``, ``sigma``) is a scalar: one value per layer."""
    if tuple(shape) not in ((), (1,)):
        raise invalid(name, "a scalar (one value per layer, as the learned prior has)", f"shape {tuple(shape)}")


def unexpected_keyword(owner: str, name: str) -> TypeError:
    """The error for an unknown keyword argument, worded as Python words it, the same in every backend."""
    return TypeError(f"{owner}() got an unexpected keyword argument '{name}'")


def check_no_activation(layer_name: str, activation_name: str | None) -> None:
    """Raise ``ValueError`` for a wrapped ``layer`` that applies an activation of its own.

    A Keras ``Dense(n, activation="relu")`` wrapped with ``activation="softplus"`` would compute
    ``softplus(relu(h))``, neither of the paper's forms; the wrapper applies ``activation`` itself
    (docs/design-notes.md, "Input"). ``activation_name`` ``None`` or ``"linear"`` passes.

    Example:
        >>> check_no_activation("Dense", "linear")
    """
    if activation_name not in (None, "linear"):
        raise ValueError(
            "Invalid value received for argument `layer`. Expected a layer without an activation of its own "
            "(activation=None or 'linear'); the wrapper applies `activation` after `layer` and `norm`. "
            f"Received: layer={layer_name} with activation={activation_name!r}"
        )


def kl_outside_its_trace(trace: str) -> RuntimeError:
    """The error for collecting a KL that a traced call recorded, outside that trace.

    A KL recorded while a function is traced (a ``tf.function`` or ``model.fit`` step, a ``jax.jit``)
    is a symbolic value of that trace: it has no value anywhere else (docs/design-notes.md section 3).
    """
    return RuntimeError(
        f"Invalid use of `kl_loss`/`ib_loss`: the KL was recorded inside {trace} and exists only there. "
        "Collect it in the same function as the forward pass, or run the forward pass again here."
    )


def check_replace(replace: Any) -> str:
    """``to_info_dropout``'s ``replace``: which blocks get Information Dropout (``idrop.core.surgery``)."""
    return _check_choice("replace", replace, ("activations", "dropout"))


def unmatched_layers(names: list[str], candidates: list[str]) -> ValueError:
    """``to_info_dropout(layers=[...])`` named layers that are not the map of a block it can wrap."""
    return invalid(
        "layers",
        "names of maps (Linear/Dense/Conv) each followed by a ReLU or Softplus, optionally with a batch norm "
        f"in between, inside a sequential container; such maps here: {candidates}",
        names,
    )


def unsupported_model(expected: str, model: Any) -> ValueError:
    """Surgery on a model the backend cannot rebuild (a subclassed Keras model)."""
    return invalid("model", expected, type(model).__name__)


def check_recompute_alpha(recompute_alpha: Any, *, alpha_rank: int | None) -> bool:
    """Return ``recompute_alpha`` (a bool), or raise; ``True`` needs the cheap branch (``alpha_rank``).

    ``recompute_alpha=True`` keeps ``t = down(x)`` (``r`` channels) for backward instead of the
    alpha logits ``up(t)``, and recomputes ``up`` and the fused kernel there with the framework's
    own recomputation (``torch.utils.checkpoint``, ``tf.recompute_grad``, ``jax.checkpoint``;
    docs/design-notes.md, "Cheap alpha branch"). Only the cheap branch has a ``t`` to keep.

    Example:
        >>> check_recompute_alpha(True, alpha_rank=16)
        True
    """
    value = check_flag("recompute_alpha", recompute_alpha)
    if value and alpha_rank is None:
        raise ValueError(
            "Invalid value received for argument `recompute_alpha`. Expected False when `alpha_rank` is None: "
            "only the cheap alpha branch (`alpha_rank=r`) is recomputed in backward; pass `alpha_rank` too. "
            f"Received: recompute_alpha={recompute_alpha!r} with alpha_rank=None"
        )
    return value


def check_alpha_rank(alpha_rank: Any, *, has_alpha_layer: bool = False) -> int | None:
    """Return ``alpha_rank`` (an int >= 1, or ``None`` for the paper's full alpha map), or raise.

    ``alpha_rank=r`` makes the default alpha branch a low-rank map ``in -> r -> out`` (a map of
    ``layer``'s kind with ``r`` outputs, then a dense/1x1 map to ``layer``'s outputs); it builds
    the alpha branch, so it cannot be combined with an explicit ``alpha_layer``
    (docs/design-notes.md, "Cheap alpha branch").

    Example:
        >>> check_alpha_rank(8)
        8
    """
    if alpha_rank is None:
        return None
    if isinstance(alpha_rank, (bool, _numpy_bool())) or not isinstance(alpha_rank, numbers.Integral):
        raise invalid("alpha_rank", "an int >= 1 (the rank of the alpha branch) or None (the full map)", alpha_rank)
    if alpha_rank < 1:
        raise invalid("alpha_rank", "an int >= 1 (the rank of the alpha branch) or None (the full map)", alpha_rank)
    if has_alpha_layer:
        raise ValueError(
            "Invalid value received for argument `alpha_rank`. Expected None when `alpha_layer` is given: "
            "`alpha_rank` builds the alpha branch itself; pass either `alpha_layer` or `alpha_rank`, not both. "
            f"Received: alpha_rank={alpha_rank!r} with an alpha_layer"
        )
    return int(alpha_rank)


def no_low_rank_map(alpha_rank: int, layer_name: str, kinds: str) -> ValueError:
    """The error for ``alpha_rank`` on a ``layer`` the low-rank alpha branch cannot be built for."""
    return ValueError(
        "Invalid value received for argument `alpha_rank`. Expected None when `layer` is not "
        f"{kinds}: the low-rank alpha branch is built for those maps only; pass your own "
        f"`alpha_layer` instead. Received: alpha_rank={alpha_rank!r}, layer={layer_name}"
    )


def unsupported_export_format(fmt: Any, backend: str, formats: tuple[str, ...], why: str = "") -> ValueError:
    """An export ``format`` that Keras's ``model.export`` does not write on this Keras ``backend``.

    Example:
        >>> str(unsupported_export_format("tf_saved_model", "torch", ("onnx",)))
        "Invalid value received for argument `format`. Expected one of 'onnx' (the formats Keras's model.export writes on the torch backend). Received: format='tf_saved_model'"
    """  # noqa: E501
    allowed = ", ".join(repr(f) for f in formats)
    return invalid(
        "format", f"one of {allowed} (the formats Keras's model.export writes on the {backend} backend{why})", fmt
    )


def missing_exporter(fmt: str, backend: str, module: str) -> ImportError:
    """The package Keras's ``model.export`` needs for ``fmt`` on ``backend`` is not installed."""
    return ImportError(
        f"export(format={fmt!r}) on the Keras {backend} backend needs `{module}`, which Keras's model.export uses "
        f"there and which is not installed: pip install {module}"
    )


def check_same_shape(layer_shape: tuple, alpha_shape: tuple) -> None:
    """Raise if ``alpha_layer``'s output shape differs from ``layer``'s."""
    if tuple(layer_shape) != tuple(alpha_shape):
        raise ValueError(
            "Invalid value received for argument `alpha_layer`. Expected a layer "
            "whose output shape equals the output shape of `layer`. Received: "
            f"layer output shape={tuple(layer_shape)}, "
            f"alpha_layer output shape={tuple(alpha_shape)}"
        )


@dataclasses.dataclass(frozen=True)
class InfoDropoutSpec:
    """The validated, backend-neutral options of one Information Dropout layer.

    Args:
        activation: ``"relu"`` or ``"softplus"``, the nonlinearity of ``f(x)``.
        prior: ``"log-uniform"`` or ``"log-normal"``; ``None`` picks the paper's
            pairing (log-uniform for ReLU, Prop. 1; log-normal for Softplus, Prop. 2).
        max_alpha: largest noise scale; ``alpha = alpha_min + max_alpha * sigmoid(a)``.
        alpha_min: smallest noise scale, keeps ``log(alpha)`` finite.
        mean_one: use ``exp(alpha * eps - alpha**2 / 2)`` (mean 1) instead of the
            median-1 noise ``exp(alpha * eps)`` of the official code.
        zero_units: ``"count"`` keeps the log-uniform KL for units with
            ``f(x) == 0`` (official code); ``"mask"`` gives them 0.

    Raises:
        ValueError: for an unknown option or a value out of range.
        TypeError: for a non-numeric ``max_alpha`` or ``alpha_min``.

    Example:
        >>> InfoDropoutSpec(activation="softplus").prior
        'log-normal'
    """

    activation: str = "relu"
    prior: str | None = None
    max_alpha: float = 0.7
    alpha_min: float = 1e-3
    mean_one: bool = False
    zero_units: str = "count"

    def __post_init__(self) -> None:
        _check_choice("activation", self.activation, ACTIVATIONS)
        prior = DEFAULT_PRIOR[self.activation] if self.prior is None else self.prior
        object.__setattr__(self, "prior", _check_choice("prior", prior, PRIORS))
        object.__setattr__(self, "max_alpha", check_max_alpha(self.max_alpha))
        object.__setattr__(self, "alpha_min", check_alpha_min(self.alpha_min))
        object.__setattr__(self, "mean_one", check_flag("mean_one", self.mean_one))
        _check_choice("zero_units", self.zero_units, ZERO_UNITS)

    @property
    def kl_options(self) -> dict[str, Any]:
        """Keyword arguments that :func:`idrop.core.info_dropout` takes."""
        return {
            "prior": self.prior,
            "max_alpha": self.max_alpha,
            "alpha_min": self.alpha_min,
            "mean_one": self.mean_one,
            "zero_units": self.zero_units,
        }
