r"""Monte-Carlo prediction with Information Dropout's noise on: ``sampling`` and ``mc_predict``.

``mc_predict`` repeats the batch ``chunk`` times, runs one forward pass per chunk with every idrop
noisy layer in training mode and everything else (batch norm...) in evaluation, and reduces the
probabilities with :mod:`idrop.core.uncertainty` (mean, std, predictive entropy, mutual information).
Each sample's Information Dropout noise is drawn from its own generator, seeded from
``(seed, sample, layer call)``, so the result depends on ``seed`` and not on ``chunk``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from idrop.core import uncertainty as _mc
from idrop.core.spec import check_count, check_flag, check_input_rank, check_input_type, check_seed

from ._layers import InfoDropout, _NoisyMap
from ._losses import KLRecords
from ._namespace import xp

_HALF = (torch.float16, torch.bfloat16)


@contextlib.contextmanager
def kept_records(model: nn.Module) -> Iterator[None]:
    """Leave the KL records (``.kl`` and what ``kl_loss`` collects) of every layer as they were before the block."""
    saved = [
        (m, m.kl, list(m._kl_records), getattr(m, "_kl_inert", False))
        for m in model.modules()
        if isinstance(m, KLRecords)
    ]
    try:
        yield
    finally:
        for m, kl, records, inert in saved:
            m.kl, m._kl_records, m._kl_inert = kl, records, inert


@contextlib.contextmanager
def sampling(model: nn.Module) -> Iterator[nn.Module]:
    """Evaluation mode with the noise of every idrop layer on, for hand-written MC loops.

    Inside the block ``model`` is in evaluation mode (batch norm uses its running statistics, plain
    ``nn.Dropout`` is off) except the idrop noisy layers themselves (``InfoDropout`` and the baselines),
    whose ``training`` flag alone is set: the maps they wrap, and their ``norm``, stay in evaluation.
    Every module's mode, and every layer's KL records (``.kl``, what ``kl_loss`` collects), are
    restored on exit, also after an exception: sampling leaves no trace in the training loss.

    Example:
        >>> import torch
        >>> from idrop.backends.torch import InfoDropout, sampling
        >>> model = torch.nn.Sequential(InfoDropout(torch.nn.Linear(4, 8)), torch.nn.Linear(8, 3))
        >>> with sampling(model):
        ...     a, b = model(torch.ones(1, 4)), model(torch.ones(1, 4))
        >>> bool((a != b).any()), model.training
        (True, True)
    """
    modes = [(m, m.training) for m in model.modules()]
    with kept_records(model):
        try:
            model.eval()
            for m in model.modules():
                if isinstance(m, _NoisyMap):
                    m.training = True  # not .train(): that would also put its norm in training mode
            yield model
        finally:
            for m, mode in modes:
                m.training = mode


class _SeededNoise:
    """The noise source of one chunk: sample ``s`` of layer call ``j`` draws from generator ``(seed, s, j)``."""

    def __init__(self, seed: int, first: int, count: int) -> None:
        self.seed, self.first, self.count, self.calls = seed, first, count, 0

    def __call__(self, layer: nn.Module, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        call, self.calls = self.calls, self.calls + 1
        dtype = torch.float32 if like.dtype in _HALF else like.dtype
        if not shape or shape[0] % self.count:
            # The layer does not see the repeated batch on its leading axis: one seeded draw for the chunk
            # (reproducible for a given chunk, no longer independent of it).
            g = torch.Generator(device=like.device).manual_seed(
                _mc.sample_seed(self.seed, self.first, call, joint=True)
            )
            return torch.randn(shape, generator=g, device=like.device, dtype=dtype)
        per_sample = (shape[0] // self.count, *shape[1:])
        draws = []
        for s in range(self.first, self.first + self.count):
            g = torch.Generator(device=like.device).manual_seed(_mc.sample_seed(self.seed, s, call))
            draws.append(torch.randn(per_sample, generator=g, device=like.device, dtype=dtype))
        return torch.cat(draws)


@contextlib.contextmanager
def _noise_sources(model: nn.Module, source: Any) -> Iterator[None]:
    layers = [m for m in model.modules() if isinstance(m, InfoDropout)]
    try:
        for m in layers:
            m._noise_source = source
        yield
    finally:
        for m in layers:
            m._noise_source = None


@torch.no_grad()
def mc_predict(
    model: nn.Module,
    x: torch.Tensor,
    n_samples: int,
    *,
    chunk: int | None = 16,
    seed: int | None = 0,
    from_logits: bool = True,
) -> _mc.MCPrediction:
    r"""Monte-Carlo prediction with the noise on: mean, std, predictive entropy and mutual information.

    Args:
        model: a module mapping a batch ``x`` to class logits (or probabilities) ``[batch, classes]``.
        x: a batch (the leading axis is the batch; pass ``x[None]`` for one example).
        n_samples: number of stochastic forward passes (an int >= 1).
        chunk: samples per forward pass (the batch is repeated ``chunk`` times; memory grows with it);
            ``None`` runs all at once. The result does not depend on it when every InfoDropout sees the
            batch on its leading axis (else each chunk's noise is one seeded draw).
        seed: seed of the noise (an int >= 0): the same seed gives the same result. ``None`` draws
            one from torch's global generator.
        from_logits: apply a softmax over the last axis to the model's outputs (default); ``False``
            when the model already returns probabilities.

    Returns:
        :class:`~idrop.core.uncertainty.MCPrediction` ``(mean, std, entropy, mutual_information)``.
        Baseline layers (``BinaryDropout``...) draw from torch's RNG, forked and seeded from ``seed``.

    Example:
        >>> import torch
        >>> from idrop.backends.torch import InfoDropout, mc_predict
        >>> model = torch.nn.Sequential(InfoDropout(torch.nn.Linear(4, 8)), torch.nn.Linear(8, 3))
        >>> out = mc_predict(model, torch.ones(5, 4), n_samples=10)
        >>> tuple(out.mean.shape), tuple(out.mutual_information.shape)
        ((5, 3), (5,))
    """
    check_input_type("x", x, isinstance(x, torch.Tensor))
    check_input_rank("x", tuple(x.shape))
    n_samples = check_count("n_samples", n_samples, "the number of stochastic forward passes")
    chunk = check_count("chunk", chunk, "samples per forward pass", allow_none=True)
    seed = check_seed("seed", seed)
    from_logits = check_flag("from_logits", from_logits)
    if seed is None:
        seed = int(torch.randint(0, 2**31 - 1, ()).item())
    devices = [x.device] if x.device.type == "cuda" else []
    stats: _mc.ChunkStats | None = None
    with torch.random.fork_rng(devices=devices), sampling(model):
        torch.manual_seed(seed)
        for start, stop in _mc.chunk_bounds(n_samples, chunk):
            k = stop - start
            with _noise_sources(model, _SeededNoise(seed, start, k)):
                out = model(x.repeat(k, *([1] * (x.dim() - 1))))
            out = out.reshape(k, x.shape[0], *out.shape[1:])
            probs = torch.softmax(out.float() if out.dtype in _HALF else out, dim=-1) if from_logits else out
            stats = _mc.merge_stats(stats, _mc.chunk_stats(probs, xp=xp))
    assert stats is not None  # n_samples >= 1, so chunk_bounds gave at least one chunk
    return _mc.summary(stats, xp=xp)
