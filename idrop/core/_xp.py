"""The small array protocol the core is written against, and helpers over it.

The core uses only these names of a namespace ``xp``: ``asarray``, ``astype``,
``exp``, ``expm1``, ``log``, ``log1p``, ``logaddexp``, ``maximum``, ``sqrt``,
``square``, ``where``, ``sum``, ``mean``, ``zeros_like``, ``ones_like``. NumPy >= 2.1,
``jax.numpy`` and ``array_api_strict`` provide them natively; the torch and Keras
adapters bring a shim of a few lines. ``tests/core/test_array_api_strict.py``
runs the core on ``array_api_strict`` so nothing outside this list creeps in.
Two optional names, ``sigmoid`` and ``relu``, let a shim pass a framework's fused
kernel for the same values (see :func:`sigmoid`, :func:`relu`).
"""

from __future__ import annotations

from typing import Any

Array = Any
Namespace = Any


def sigmoid(a: Array, *, xp: Namespace) -> Array:
    """Logistic function ``1 / (1 + exp(-a))`` without overflow.

    Written as ``exp(-softplus(-a))`` so large ``|a|`` neither overflows nor
    produces 0/0, and the gradient stays finite everywhere. A namespace may offer
    its own ``sigmoid`` (an optional name of the protocol): the adapters' shims
    pass the framework's fused, correctly rounded kernel, which is one pass over
    the data instead of three and agrees with this form to a few ulps.
    """
    native = getattr(xp, "sigmoid", None)
    if native is not None:
        return native(a)
    return xp.exp(-softplus(-a, xp=xp))


def softplus(a: Array, *, xp: Namespace) -> Array:
    """``log(1 + exp(a))`` via ``logaddexp(a, 0)``.

    Framework softplus kernels switch to the identity above a threshold (torch:
    20), which would break float64 agreement; ``logaddexp`` is exact everywhere.
    """
    return xp.logaddexp(a, xp.zeros_like(a))


def relu(a: Array, *, xp: Namespace) -> Array:
    """``max(a, 0)``, written as ``where(a > 0, a, 0)`` so its derivative at exactly 0 is 0.

    That is the derivative of the frameworks' own ReLU operators (``torch.relu``,
    ``tf.nn.relu``, ``jax.nn.relu``), which the contract adopts in every backend and mode
    (DESIGN.md section 1, "Derivatives at kinks"); ``maximum(a, 0)`` would split the tie and
    give 1/2. A namespace may offer its own ``relu`` (an optional name of the protocol) with
    these values and this derivative. :func:`idrop.core.vjp.activation_vjp` is the same rule
    for custom-gradient kernels.
    """
    native = getattr(xp, "relu", None)
    if native is not None:
        return native(a)
    return xp.where(a > 0, a, xp.zeros_like(a))


ACTIVATION_FUNCTIONS = {"relu": relu, "softplus": softplus}


def activation(name: str, a: Array, *, xp: Namespace) -> Array:
    """Apply the activation called ``name`` (``"relu"`` or ``"softplus"``)."""
    return ACTIVATION_FUNCTIONS[name](a, xp=xp)
