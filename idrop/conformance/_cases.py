"""The table of conformance cases (TFP ``TestCase`` style) and bounded strategies.

Each :class:`Case` names one configuration of the layer; each :class:`NoiseCase`
one baseline noise law. The guard test (``test_guard.py``) proves every noise
law in :data:`idrop.core.NOISE_LAWS` and every prior and KL pair in
:data:`idrop.core.KL_REGISTRY` appears here.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp


@dataclasses.dataclass(frozen=True)
class Case:
    """One Information Dropout configuration; ``options`` are the shared keyword options."""

    name: str
    options: dict[str, Any]
    law: str = "information"

    @property
    def prior(self) -> str:
        from idrop.core import InfoDropoutSpec

        return InfoDropoutSpec(**self.options).prior


CASES = (
    Case("relu-loguniform", {"activation": "relu"}),
    Case("relu-loguniform-mask", {"activation": "relu", "zero_units": "mask"}),
    Case("relu-loguniform-meanone", {"activation": "relu", "mean_one": True}),
    Case("relu-loguniform-cap0.5", {"activation": "relu", "max_alpha": 0.5}),
    # alpha_min must be in (0, 1] (0 makes the KL infinite); 1e-6 is the smallest floor anyone would use.
    Case("relu-loguniform-cap1-floor1e-6", {"activation": "relu", "max_alpha": 1.0, "alpha_min": 1e-6}),
    Case("softplus-lognormal", {"activation": "softplus"}),
    Case("softplus-lognormal-meanone", {"activation": "softplus", "mean_one": True}),
    Case("relu-lognormal", {"activation": "relu", "prior": "log-normal"}),
)


@dataclasses.dataclass(frozen=True)
class NoiseCase:
    """A baseline noise law with fixed parameters."""

    name: str
    law: str
    params: dict[str, Any]


NOISE_CASES = (
    NoiseCase("binary-0.5", "binary", {"rate": 0.5}),
    NoiseCase("binary-0.2", "binary", {"rate": 0.2}),
    NoiseCase("gaussian-0.5", "gaussian", {"rate": 0.5}),
    NoiseCase("lognormal-0.7", "lognormal", {"alpha": 0.7}),
    NoiseCase("lognormal-0.5-meanone", "lognormal", {"alpha": 0.5, "mean_one": True}),
)

#: Cases of the VAE's Gaussian latent KL, by name (posterior, prior) pair.
GAUSSIAN_KL_CASES = ("gaussian-standardnormal",)

# --- strategies: bounded sizes and magnitudes, no subnormals (array-api-tests) ---

#: A fixed menu of shapes rather than arbitrary ones: the formulas are elementwise, so
#: size matters only through broadcasting and the per-sample sum, which these cover
#: (a single unit, odd and even sizes, a batch of one, an NCHW map). Frameworks that
#: compile per shape (XLA) then compile a handful of programs, not one per example.
SHAPES = ((1, 1), (2, 3), (4, 6), (1, 5), (3, 1), (2, 3, 2, 2), (1, 2, 3, 3))
shapes = st.sampled_from(SHAPES)


def arrays(shape: tuple[int, ...], lo: float, hi: float) -> st.SearchStrategy[np.ndarray]:
    """Float64 arrays with elements in ``[lo, hi]``, no NaN, no infinities, no subnormals."""
    return hnp.arrays(np.float64, shape, elements=st.floats(lo, hi, allow_subnormal=False, width=64))


#: The log-normal KL's floor on ``f`` (DESIGN.md section 1): below it the KL is flat in ``f``.
LOG_FLOOR = 1e-4


def activations(shape: tuple[int, ...], positive: bool = False) -> st.SearchStrategy[np.ndarray]:
    """``f(x) >= 0`` with exact zeros (what a ReLU produces) and values below the log-normal
    KL's floor mixed in, so both kinks are crossed in the forward tests; or strictly > 0."""
    values = arrays(shape, 1e-2 if positive else 0.0, 5.0)
    if positive:
        return values
    tiny = arrays(shape, 0.0, LOG_FLOOR * 0.99)
    which = hnp.arrays(np.int8, shape, elements=st.integers(0, 2))  # 0: value, 1: zero, 2: below the floor
    return st.tuples(values, tiny, which).map(lambda t: np.select([t[2] == 1, t[2] == 2], [0.0, t[1]], t[0]))


def logits(shape: tuple[int, ...]) -> st.SearchStrategy[np.ndarray]:
    """Alpha-branch pre-activations; |a| <= 8 keeps sigmoid's float32 tail meaningful."""
    return arrays(shape, -8.0, 8.0)


def normals(shape: tuple[int, ...]) -> st.SearchStrategy[np.ndarray]:
    """Injected standard-normal noise, bounded to 4 standard deviations."""
    return arrays(shape, -4.0, 4.0)


prior_mu = st.floats(-1.0, 1.0, allow_subnormal=False)
prior_sigma = st.floats(0.5, 2.0, allow_subnormal=False)
