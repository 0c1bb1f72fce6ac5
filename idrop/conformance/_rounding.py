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

        return a.astype(ml_dtypes.bfloat16).astype(np.float64)
    return a.astype(dtype).astype(np.float64)


def noise_dtype(dtype: str) -> str:
    """Noise is drawn and injected in float32 at least (never in half precision)."""
    return dtype if dtype in ("float64", "float32") else "float32"
