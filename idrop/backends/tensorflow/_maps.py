"""The wrapped map and the alpha map: :mod:`idrop.backends.keras._maps`, one module for every Keras backend.

Its private helpers are re-exported too, for code written against this module before the move.
"""

from idrop.backends.keras._maps import _MAPS as _MAPS
from idrop.backends.keras._maps import _STACK as _STACK
from idrop.backends.keras._maps import LowRankAlpha as LowRankAlpha
from idrop.backends.keras._maps import NoisyMap as NoisyMap
from idrop.backends.keras._maps import _build as _build
from idrop.backends.keras._maps import _direct as _direct
from idrop.backends.keras._maps import _fresh_copy as _fresh_copy
from idrop.backends.keras._maps import _linear_map as _linear_map
from idrop.backends.keras._maps import _low_rank_call as _low_rank_call
from idrop.backends.keras._maps import _low_rank_copy as _low_rank_copy
from idrop.backends.keras._maps import _low_rank_twins as _low_rank_twins
from idrop.backends.keras._maps import _map_call as _map_call
from idrop.backends.keras._maps import _twin_call as _twin_call
from idrop.backends.keras._maps import _twins as _twins
from idrop.backends.keras._maps import plain_errors as plain_errors
