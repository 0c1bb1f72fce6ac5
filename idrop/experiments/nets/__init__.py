"""The paper's networks, defined once per framework and shared by experiments, examples and benchmarks.

- ``MLP``: 784 -> three hidden layers of ``width`` ReLU units, each followed by the method's
  noise -> 10 (paper Sec. 6, Fig. 3a).
- ``AllCNN32``: All-CNN-32 of the paper's Table 2a as the official ``cifar.py`` builds it
  (input dropout 0.2; two blocks of three 3x3 convs whose third has stride 2 and carries the
  noise; conv 3x3, conv 1x1, conv10 1x1, each with batch norm and the activation; global
  mean; a final linear 10 -> 10). Batch norm as ``tf.contrib.layers.batch_norm``'s defaults
  there: a shift but no scale (gamma), epsilon 1e-3. Every alpha conv has a bias.
- ``VAE``: Kingma & Welling's MLP VAE with a Gaussian or an Information Dropout latent (Sec. 5).

Import ``idrop.experiments.nets.torch``, ``.tensorflow``, ``.jax`` or ``.keras`` (the MLP and the
VAE on any Keras backend, which ``.tensorflow`` re-exports); this package itself imports no framework.
"""

#: Channel widths of All-CNN-32 at ``filter_percentage`` 1 (official cifar.py:127 and :133).
ALL_CNN_WIDTHS = (96, 192)


def all_cnn_widths(filter_percentage: float) -> tuple[int, int]:
    """``(int(96 p), int(192 p))``: the official code truncates (cifar.py:127, :133), at least 1."""
    return tuple(max(1, int(w * filter_percentage)) for w in ALL_CNN_WIDTHS)  # type: ignore[return-value]
