"""The backend-neutral spec of Information Dropout (NumPy, float64; no framework).

Every formula of DESIGN.md section 1 lives here once, written over an array
namespace ``xp``; :mod:`idrop.core.reference` is its NumPy float64 instance.
"""

from . import reference as reference
from ._xp import relu as relu
from ._xp import sigmoid as sigmoid
from ._xp import softplus as softplus
from .diagnostics import AlphaStats as AlphaStats
from .diagnostics import IdropWarning as IdropWarning
from .functional import alpha_from_logits as alpha_from_logits
from .functional import info_dropout as info_dropout
from .functional import prior_for as prior_for
from .kl import KL_REGISTRY as KL_REGISTRY
from .kl import kl_divergence as kl_divergence
from .kl import register_kl as register_kl
from .loss import ib_loss as ib_loss
from .loss import kl_term as kl_term
from .loss import per_sample_kl as per_sample_kl
from .noise import NOISE_LAWS as NOISE_LAWS
from .noise import bernoulli_noise as bernoulli_noise
from .noise import constant_lognormal_noise as constant_lognormal_noise
from .noise import gaussian_noise as gaussian_noise
from .noise import lognormal_multiplier as lognormal_multiplier
from .noise import lognormal_noise as lognormal_noise
from .noise import register_noise as register_noise
from .priors import GaussianPosterior as GaussianPosterior
from .priors import LogNormalPosterior as LogNormalPosterior
from .priors import LogNormalPrior as LogNormalPrior
from .priors import LogUniformPrior as LogUniformPrior
from .priors import StandardNormalPrior as StandardNormalPrior
from .schedules import BetaSchedule as BetaSchedule
from .schedules import beta_schedule as beta_schedule
from .spec import InfoDropoutSpec as InfoDropoutSpec
from .spec import check_alpha_min as check_alpha_min
from .spec import check_beta as check_beta
from .spec import check_float_dtype as check_float_dtype
from .spec import check_max_alpha as check_max_alpha
from .spec import check_n_train as check_n_train
from .spec import check_nonnegative as check_nonnegative
from .spec import check_probability as check_probability
from .spec import check_same_shape as check_same_shape
from .uncertainty import MCPrediction as MCPrediction

__all__ = [
    "KL_REGISTRY",
    "NOISE_LAWS",
    "AlphaStats",
    "BetaSchedule",
    "GaussianPosterior",
    "IdropWarning",
    "InfoDropoutSpec",
    "LogNormalPosterior",
    "LogNormalPrior",
    "LogUniformPrior",
    "MCPrediction",
    "StandardNormalPrior",
    "alpha_from_logits",
    "bernoulli_noise",
    "beta_schedule",
    "check_alpha_min",
    "check_beta",
    "check_float_dtype",
    "check_max_alpha",
    "check_nonnegative",
    "check_n_train",
    "check_probability",
    "check_same_shape",
    "constant_lognormal_noise",
    "gaussian_noise",
    "ib_loss",
    "info_dropout",
    "kl_divergence",
    "kl_term",
    "lognormal_multiplier",
    "lognormal_noise",
    "per_sample_kl",
    "prior_for",
    "reference",
    "register_kl",
    "register_noise",
    "relu",
    "sigmoid",
    "softplus",
]
