"""Round float64 inputs to a tested dtype, so the reference sees what the backend sees."""

from __future__ import annotations

import numpy as np


def round_to(a: np.ndarray, dtype: str) -> np.ndarray:
    """``a`` rounded to ``dtype`` and returned as float64."""
    a = np.asarray(a, dtype=np.float64)
    if dtype == "float64":
        return a
    if dtype == "bfloat16":
        import ml_dtypes  # shipped with jax and tensorflow; in the `test` extra

        rounded, tiny = a.astype(ml_dtypes.bfloat16).astype(np.float64), float(ml_dtypes.finfo(ml_dtypes.bfloat16).tiny)
    else:
        rounded, tiny = a.astype(dtype).astype(np.float64), float(np.finfo(dtype).tiny)
    # A normal float64 can round to a subnormal of the tested dtype; XLA and oneDNN
    # flush those to zero (so `f > 0` flips), which is not what the suite tests.
    return np.where(np.abs(rounded) < tiny, 0.0, rounded)


def noise_dtype(dtype: str) -> str:
    """Noise is drawn and injected in float32 at least (never in half precision)."""
    return dtype if dtype in ("float64", "float32") else "float32"
