"""The functional ops of the TensorFlow adapter: :mod:`idrop.backends.keras._functional`, written once.

On the TensorFlow backend that module computes with this adapter's namespace (:mod:`._namespace`):
plain ``tf`` ops and ``tf.random.stateless_*(alg="philox")`` draws.
"""

from idrop.backends.keras._functional import alpha_from_logits as alpha_from_logits
from idrop.backends.keras._functional import binary_dropout as binary_dropout
from idrop.backends.keras._functional import gaussian_dropout as gaussian_dropout
from idrop.backends.keras._functional import gaussian_kl as gaussian_kl
from idrop.backends.keras._functional import info_dropout as info_dropout
from idrop.backends.keras._functional import lognormal_dropout as lognormal_dropout
