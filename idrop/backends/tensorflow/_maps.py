"""The wrapped map and the alpha map: :mod:`idrop.backends.keras._maps`, one module for every Keras backend."""

from idrop.backends.keras._maps import NoisyMap as NoisyMap
from idrop.backends.keras._maps import plain_errors as plain_errors
