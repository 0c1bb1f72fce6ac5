"""The Keras 3 layers: :mod:`idrop.backends.keras._layers`, the same classes on every Keras backend.

On the TensorFlow backend they run this adapter's ``tf.custom_gradient`` kernel (:mod:`._kernel`)
and Philox draws (:mod:`._namespace`), and record their KL in :mod:`._losses`.
"""

from idrop.backends.keras._layers import BinaryDropout as BinaryDropout
from idrop.backends.keras._layers import GaussianDropout as GaussianDropout
from idrop.backends.keras._layers import InfoDropout as InfoDropout
from idrop.backends.keras._layers import LogNormalDropout as LogNormalDropout
