"""Per-dtype tolerances: one table, both ``rtol`` and ``atol`` always (STYLE.md 4.7).

Comparisons are made in float64 against the reference computed from inputs
already rounded to the dtype under test, so these bound the backend's own
arithmetic, not the rounding of its inputs.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Tol:
    """An ``(rtol, atol)`` pair; ``reason`` is required for any override."""

    rtol: float
    atol: float
    reason: str = ""


#: kind -> dtype -> tolerance. Kinds: "elementwise" (z, alpha, per-unit KL),
#: "reduction" (per-sample KL sums), "gradient" (against finite differences).
TOLERANCES: dict[str, dict[str, Tol]] = {
    "elementwise": {
        # float64 catches formula bugs (a log(1+x) for log1p shows at 1e-6);
        # 1e-9 is still millions of ulps above libm/XLA differences.
        "float64": Tol(1e-9, 1e-12),
        # ~80 ulp: a chain of exp/log/logaddexp, the TFP cross-backend default.
        "float32": Tol(1e-5, 1e-6),
        # Half precision is a smoke test: dtype kept, values finite, loose match.
        "float16": Tol(5e-3, 1e-4),
        "bfloat16": Tol(4e-2, 1e-3),
    },
    "reduction": {
        "float64": Tol(1e-9, 1e-10),
        "float32": Tol(1e-4, 1e-5),
        # KL of half inputs is accumulated in float32 by contract.
        "float16": Tol(1e-3, 1e-4),
        "bfloat16": Tol(1e-3, 1e-4),
    },
    "gradient": {
        # Override of the 1e-8/1e-10 house value: the desired value is a 5-point
        # finite difference of a scalar loss L summed over every unit, whose
        # round-off is ~1e-16 * |L| / h with h = 1e-3 (|L| <= 1e3 here), i.e. 1e-10
        # absolute, plus O(h^4) truncation; 1e-7 leaves a 100x margin and still
        # catches a wrong factor or a missing term (errors of 1e-2 or more).
        "float64": Tol(1e-6, 1e-7, reason="finite-difference round-off, see comment"),
    },
    "layer-gradient": {
        # Layers are checked along random directions that move every weight at once;
        # through log(f) the 5-point stencil's O(h^4 f^-5) truncation reaches ~1e-6
        # relative at small f (TF found f = 0.0625 with all-zero weights: 1.13e-6).
        # 1e-5 keeps a 10x margin and still catches any wrong term (>= 1e-3).
        "float64": Tol(1e-5, 1e-7, reason="directional finite differences through log f"),
    },
}

#: Per-unit KL of half-precision inputs is computed in float32 from rounded
#: inputs, so it is held to float32's elementwise tolerance (not half's).
KL_DTYPE = {"float64": "float64", "float32": "float32", "float16": "float32", "bfloat16": "float32"}


def tol(kind: str, dtype: str) -> Tol:
    """The tolerance of ``kind`` for ``dtype``."""
    return TOLERANCES[kind][dtype]
