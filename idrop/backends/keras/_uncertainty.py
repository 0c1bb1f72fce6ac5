r"""Monte-Carlo prediction with Information Dropout's noise on, for Keras: ``sampling`` and ``mc_predict``.

Written on ``keras.ops`` only (any Keras backend). ``sampling(model)`` sets a plain flag on idrop's
noisy layers, which then draw noise in inference calls (``training=False``), so batch norm and every
other layer stay in inference. ``mc_predict`` repeats the batch ``chunk`` times per call; each sample's
Information Dropout noise is drawn with ``keras.random.normal`` at a seed derived from
``(seed, sample, layer call)``, so the result depends on ``seed`` and not on ``chunk``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import keras
from keras import ops

from idrop.core import uncertainty as _mc
from idrop.core.spec import check_count, check_flag, check_input_rank, check_seed

from ._keras_tools import as_tensor, is_info_dropout, is_noisy, kept_records, layers_of, xp


def _forget_compiled(model: Any) -> None:
    # A compiled predict function traced before the switch would keep the old mode.
    if getattr(model, "predict_function", None) is not None:
        model.predict_function = None


@contextlib.contextmanager
def sampling(model: keras.Layer) -> Iterator[keras.Layer]:
    """Inference mode with the noise of every idrop layer on, for hand-written MC loops.

    Inside the block idrop's noisy layers (``InfoDropout`` and the baselines) apply their noise in
    inference calls (``model(x)``, ``model(x, training=False)``, ``model.predict``); batch norm and
    every other layer behave as in inference. The flags are cleared, and the layers' KL records (what
    ``kl_loss`` collects) and KL metrics restored, on exit, also after an exception. A ``tf.function``
    of your own traced outside the block keeps the mode it was traced in: trace it inside.

    Example:
        >>> import numpy as np, keras
        >>> from idrop.backends.tensorflow import InfoDropout, sampling
        >>> model = keras.Sequential([InfoDropout(keras.layers.Dense(8), seed=0), keras.layers.Dense(3)])
        >>> x = np.ones((1, 4), "float32")
        >>> with sampling(model):
        ...     a, b = model(x), model(x)
        >>> bool((np.asarray(a) != np.asarray(b)).any())
        True
    """
    layers = [layer for _, layer in layers_of(model) if is_noisy(layer)]
    saved = [(layer, getattr(layer, "_sampling", False)) for layer in layers]
    with kept_records(model):
        try:
            for layer in layers:
                object.__setattr__(layer, "_sampling", True)  # a plain attribute: not tracked, never saved
            _forget_compiled(model)
            yield model
        finally:
            for layer, value in saved:
                object.__setattr__(layer, "_sampling", value)
            _forget_compiled(model)


class _SeededNoise:
    """The noise source of one chunk: sample ``s`` of layer call ``j`` is drawn at seed ``(seed, s, j)``."""

    def __init__(self, seed: int, first: int, count: int) -> None:
        self.seed, self.first, self.count, self.calls = seed, first, count, 0

    def __call__(self, layer: keras.Layer, shape: tuple[int, ...], dtype: str) -> Any:
        call, self.calls = self.calls, self.calls + 1
        if not shape or shape[0] is None or shape[0] % self.count:
            # The layer does not see the tiled batch on its leading axis: one seeded draw for the chunk.
            return keras.random.normal(
                shape, dtype=dtype, seed=_mc.sample_seed(self.seed, self.first, call, joint=True)
            )
        per_sample = (shape[0] // self.count, *shape[1:])
        draws = [
            keras.random.normal(per_sample, dtype=dtype, seed=_mc.sample_seed(self.seed, s, call))
            for s in range(self.first, self.first + self.count)
        ]
        return ops.concatenate(draws, axis=0)


@contextlib.contextmanager
def _noise_sources(model: keras.Layer, source: Any) -> Iterator[None]:
    layers = [layer for _, layer in layers_of(model) if is_info_dropout(layer)]
    try:
        for layer in layers:
            object.__setattr__(layer, "_noise_source", source)
        yield
    finally:
        for layer in layers:
            object.__setattr__(layer, "_noise_source", None)


def mc_predict(
    model: keras.Layer,
    x: Any,
    n_samples: int,
    *,
    chunk: int | None = 16,
    seed: int | None = 0,
    from_logits: bool = True,
) -> _mc.MCPrediction:
    r"""Monte-Carlo prediction with the noise on: mean, std, predictive entropy and mutual information.

    Args:
        model: a Keras model or layer mapping a batch ``x`` to class logits (or probabilities),
            classes on the last axis; called eagerly with ``training=False`` under :func:`sampling`.
        x: a batch (a tensor or NumPy array; the leading axis is the batch; ``x[None]`` for one example).
        n_samples: number of stochastic forward passes (an int >= 1).
        chunk: samples per call (the batch is tiled ``chunk`` times; memory grows with it); ``None``
            runs all at once. The result does not depend on it when every InfoDropout sees the batch on
            its leading axis (else each chunk's noise is one seeded draw).
        seed: seed of the noise (an int >= 0): the same seed gives the same result. ``None`` draws
            one from fresh OS entropy (a different result each call).
        from_logits: apply a softmax over the last axis (default); ``False`` when the model returns
            probabilities.

    Returns:
        :class:`~idrop.core.uncertainty.MCPrediction` ``(mean, std, entropy, mutual_information)``.
        Baseline layers (``BinaryDropout``...) draw from their own seed generators.

    Example:
        >>> import numpy as np, keras
        >>> from idrop.backends.tensorflow import InfoDropout, mc_predict
        >>> model = keras.Sequential([InfoDropout(keras.layers.Dense(8), seed=0), keras.layers.Dense(3)])
        >>> out = mc_predict(model, np.ones((5, 4), "float32"), n_samples=10)
        >>> tuple(out.mean.shape), tuple(out.mutual_information.shape)
        ((5, 3), (5,))
    """
    x = as_tensor("x", x)
    check_input_rank("x", tuple(x.shape))
    n_samples = check_count("n_samples", n_samples, "the number of stochastic forward passes")
    chunk = check_count("chunk", chunk, "samples per forward pass", allow_none=True)
    seed = check_seed("seed", seed)
    from_logits = check_flag("from_logits", from_logits)
    if seed is None:
        import numpy as np

        seed = int(np.random.default_rng().integers(2**31 - 1))
    batch = x.shape[0]
    stats: _mc.ChunkStats | None = None
    with sampling(model):
        for start, stop in _mc.chunk_bounds(n_samples, chunk):
            k = stop - start
            with _noise_sources(model, _SeededNoise(seed, start, k)):
                out = model(ops.tile(x, [k] + [1] * (len(x.shape) - 1)), training=False)
            out = ops.reshape(out, (k, batch, *out.shape[1:]))
            if from_logits:
                out = ops.softmax(ops.cast(out, "float32") if out.dtype in ("float16", "bfloat16") else out, axis=-1)
            stats = _mc.merge_stats(stats, _mc.chunk_stats(out, xp=xp))
    assert stats is not None  # n_samples >= 1, so chunk_bounds gave at least one chunk
    return _mc.summary(stats, xp=xp)
