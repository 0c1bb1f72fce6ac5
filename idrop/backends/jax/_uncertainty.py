r"""Monte-Carlo prediction with Information Dropout's noise on, for Flax NNX: ``sampling`` and ``mc_predict``.

``mc_predict`` splits one key per sample and ``jax.vmap``-s a jitted forward pass over the keys of
each chunk. Inside it the model is merged from its state, every module is put in evaluation
(``deterministic=True``, ``use_running_average=True``) but the idrop noisy layers, and each noisy layer
draws from its own stream keyed by ``fold_in(sample key, layer index)``, so the result depends on the
seed and not on ``chunk``. The reduction is :mod:`idrop.core.uncertainty`.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from idrop.core import uncertainty as _mc
from idrop.core.spec import check_count, check_flag, check_input_type, check_seed

from ._layers import InfoDropout, _NoisyMap


def _set_modes(model: nnx.Module) -> list[tuple[Any, str, Any]]:
    """Evaluation everywhere but the idrop noisy layers; return what to restore."""
    saved = []
    for _, m in nnx.iter_modules(model):
        for attr, value in (("deterministic", not isinstance(m, _NoisyMap)), ("use_running_average", True)):
            if hasattr(m, attr):
                saved.append((m, attr, getattr(m, attr)))
                setattr(m, attr, value)
    return saved


@contextlib.contextmanager
def kept_records(model: nnx.Module) -> Iterator[None]:
    """Leave every InfoDropout's KL records (``.kl``, ``.kl_pending``) as they were before the block."""
    saved = [
        (m, m.kl.get_value(), m.kl_pending.get_value())
        for _, m in nnx.iter_modules(model)
        if isinstance(m, InfoDropout)
    ]
    try:
        yield
    finally:
        for m, kl, pending in saved:
            m.kl.set_value(kl)
            m.kl_pending.set_value(pending)


@contextlib.contextmanager
def sampling(model: nnx.Module) -> Iterator[nnx.Module]:
    """Evaluation mode with the noise of every idrop layer on, for hand-written MC loops.

    Inside the block every module with a ``deterministic`` attribute (``nnx.Dropout``...) is
    deterministic and batch norm uses its running averages, except the idrop noisy layers
    (``InfoDropout`` and the baselines), which draw from their ``"dropout"`` streams. The attributes,
    and the layers' KL records (what ``kl_loss`` collects), are restored on exit, also after an
    exception. Use it eagerly or around ``nnx.jit`` calls (the switch is a module attribute).

    Example:
        >>> from flax import nnx
        >>> import jax.numpy as jnp
        >>> from idrop.backends.jax import InfoDropout, sampling
        >>> layer = InfoDropout(nnx.Linear(4, 8, rngs=nnx.Rngs(0)), deterministic=True, rngs=nnx.Rngs(0))
        >>> with sampling(layer):
        ...     a, b = layer(jnp.ones((1, 4))), layer(jnp.ones((1, 4)))
        >>> bool((a != b).any()), layer.deterministic
        (True, True)
    """
    with kept_records(model):
        saved = _set_modes(model)
        try:
            yield model
        finally:
            for m, attr, value in reversed(saved):
                setattr(m, attr, value)


def _key_of(seed: Any) -> jax.Array:
    if isinstance(seed, jax.Array) and not isinstance(seed, jax.core.Tracer):
        if jnp.issubdtype(seed.dtype, jax.dtypes.prng_key) or (seed.dtype == jnp.uint32 and seed.shape == (2,)):
            return seed
    return jax.random.key(check_seed("seed", seed, allow_none=False))


@functools.partial(jax.jit, static_argnums=(0, 4))
def _chunk(graphdef: Any, state: Any, keys: jax.Array, x: jax.Array, from_logits: bool) -> jax.Array:
    """Probabilities ``[len(keys), batch, ...]``: one noisy forward pass per key, vmapped."""

    def one(key: jax.Array, state: Any, x: jax.Array) -> jax.Array:
        model = nnx.merge(graphdef, state)  # inside the vmap: the copy may record its KL there
        _set_modes(model)
        noisy = [m for _, m in nnx.iter_modules(model) if isinstance(m, _NoisyMap)]
        for i, m in enumerate(noisy):
            m.rngs = nnx.RngStream(jax.random.fold_in(key, i), tag=m.rng_collection)
        out = model(x)
        if from_logits:
            out = jax.nn.softmax(out.astype(jnp.promote_types(out.dtype, jnp.float32)), axis=-1)
        return out

    return jax.vmap(one, in_axes=(0, None, None))(keys, state, x)


def mc_predict(
    model: nnx.Module,
    x: jax.Array,
    n_samples: int,
    *,
    chunk: int | None = 16,
    seed: int | jax.Array = 0,
    from_logits: bool = True,
) -> _mc.MCPrediction:
    r"""Monte-Carlo prediction with the noise on: mean, std, predictive entropy and mutual information.

    Args:
        model: an NNX module mapping ``x`` to class logits (or probabilities), classes on the last axis.
        x: the model's input (a batch, or one example if the model takes it unbatched).
        n_samples: number of stochastic forward passes (an int >= 1).
        chunk: samples per vmapped pass (memory grows with it); ``None`` runs all at once. The result
            does not depend on it.
        seed: an int >= 0 or a PRNG key; the same seed gives the same result.
        from_logits: apply a softmax over the last axis (default); ``False`` when the model returns
            probabilities.

    Returns:
        :class:`~idrop.core.uncertainty.MCPrediction` ``(mean, std, entropy, mutual_information)``.
        The model itself is not mutated (its RNG streams do not advance).

    Example:
        >>> from flax import nnx
        >>> import jax.numpy as jnp
        >>> from idrop.backends.jax import InfoDropout, mc_predict
        >>> class Net(nnx.Module):
        ...     def __init__(self, rngs):
        ...         self.drop = InfoDropout(nnx.Linear(4, 8, rngs=rngs), rngs=rngs)
        ...         self.out = nnx.Linear(8, 3, rngs=rngs)
        ...     def __call__(self, x):
        ...         return self.out(self.drop(x))
        >>> out = mc_predict(Net(nnx.Rngs(0)), jnp.ones((5, 4)), n_samples=10)
        >>> out.mean.shape, out.mutual_information.shape
        ((5, 3), (5,))
    """
    check_input_type("x", x, isinstance(x, jax.Array))
    n_samples = check_count("n_samples", n_samples, "the number of stochastic forward passes")
    chunk = check_count("chunk", chunk, "samples per forward pass", allow_none=True)
    from_logits = check_flag("from_logits", from_logits)
    keys = jax.random.split(_key_of(seed), n_samples)
    graphdef, state = nnx.split(model)
    stats: _mc.ChunkStats | None = None
    for start, stop in _mc.chunk_bounds(n_samples, chunk):
        probs = _chunk(graphdef, state, keys[start:stop], x, from_logits)
        stats = _mc.merge_stats(stats, _mc.chunk_stats(probs, xp=jnp))
    assert stats is not None  # n_samples >= 1, so chunk_bounds gave at least one chunk
    return _mc.summary(stats, xp=jnp)
