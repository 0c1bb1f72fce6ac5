"""Side-by-side timing: warm up, then time the variants round-robin and report medians and paired ratios.

Every comparison in the suite goes through :func:`compare`. The variants run in the
same process, one after the other inside each round, and the order rotates from round
to round, so slow phases of a shared, noisy machine hit every variant alike. A ratio
is the median over rounds of the per-round ratio (paired), which cancels drift that
a ratio of two overall medians would not.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
from collections.abc import Callable
from typing import Any


def _no_sync(result: Any) -> None:
    del result


@dataclasses.dataclass
class Comparison:
    """Seconds per call of each variant, one entry per round (``times[name][r]``)."""

    times: dict[str, list[float]]

    def median_ms(self, name: str) -> float:
        return 1e3 * statistics.median(self.times[name])

    def ratio(self, num: str, den: str) -> float:
        """Median over rounds of ``t_num / t_den`` measured in the same round."""
        return statistics.median(a / b for a, b in zip(self.times[num], self.times[den]))

    def ratio_spread(self, num: str, den: str) -> tuple[float, float]:
        """Lowest and highest per-round ratio, to show how noisy the machine was."""
        r = [a / b for a, b in zip(self.times[num], self.times[den])]
        return min(r), max(r)


def compare(
    fns: dict[str, Callable[[], Any]],
    *,
    repeats: int,
    warmup: int = 2,
    sync: Callable[[Any], None] = _no_sync,
    min_sample_s: float = 0.02,
) -> Comparison:
    """Time each zero-argument callable in ``fns``; return a :class:`Comparison`.

    Args:
        fns: variant name -> callable doing one unit of work (a training step, a forward pass).
        repeats: rounds; each round takes one sample of every variant.
        warmup: untimed calls of every variant first (JIT, caches, allocator); at least one.
        sync: called on each callable's result before the clock stops (GPU, async dispatch).
        min_sample_s: a sample repeats a fast callable until it lasts about this long (0: one call).
    """
    names = list(fns)
    for _ in range(max(warmup, 1)):
        for name in names:
            sync(fns[name]())
    inner = dict.fromkeys(names, 1)
    for name in names if min_sample_s > 0 else []:  # calibrate: how many calls make one sample of ~min_sample_s
        t0 = time.perf_counter()
        sync(fns[name]())
        dt = time.perf_counter() - t0
        inner[name] = max(1, min(1000, math.ceil(min_sample_s / max(dt, 1e-9))))
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(max(repeats, 1)):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            fn, n = fns[name], inner[name]
            t0 = time.perf_counter()
            for _ in range(n):
                out = fn()
            sync(out)
            times[name].append((time.perf_counter() - t0) / n)
    return Comparison(times)
