"""What the normal draw of Information Dropout costs over binary dropout's draw, under ``jax.jit`` (issue 17).

``python -m benchmarks.draw_cost_jax`` times, round-robin in one process on one thread, the draws of
one noisy MLP layer (``[128, 1024]``: ``jax.random.normal`` for Information Dropout's ``eps``,
``jax.random.bernoulli`` for binary dropout's mask) beside the layer's forward matmul, and prints the
medians in ms. ``benchmarks/README.md`` ("MLP: what is left over binary dropout") quotes them.
"""

from __future__ import annotations

import os
import statistics
import time

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

ROUNDS = 30


def main() -> None:
    import jax
    import jax.numpy as jnp

    key = jax.random.key(0)
    x = jnp.ones((128, 1024), jnp.float32)
    w = jnp.full((1024, 1024), 0.01, jnp.float32)
    fns = {
        "normal draw [128, 1024]": jax.jit(lambda k: jax.random.normal(k, (128, 1024))),
        "bernoulli draw [128, 1024]": jax.jit(lambda k: jax.random.bernoulli(k, 0.5, (128, 1024))),
        "forward matmul 128x1024x1024": jax.jit(lambda k: x @ w),
    }
    for f in fns.values():  # compile first
        jax.block_until_ready(f(key))
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(ROUNDS):
        for name, f in fns.items():
            start = time.perf_counter()
            jax.block_until_ready(f(key))
            times[name].append(time.perf_counter() - start)
    for name, t in times.items():
        print(f"{name}: {1e3 * statistics.median(t):.3f} ms (median of {ROUNDS})")


if __name__ == "__main__":
    main()
