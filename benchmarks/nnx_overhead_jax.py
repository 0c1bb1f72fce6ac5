"""How much of the JAX MLP's cheap/binary throughput ratio is ``nnx.jit``'s per-call overhead? (issue 17)

``python -m benchmarks.nnx_overhead_jax [--repeats N]`` times the MLP 784-1024x3 training step of the
throughput rows (``benchmarks.jax_bench``: binary dropout 0.5 and Information Dropout with the cheap
alpha branch) two ways, round-robin in one process on one thread:

- ``nnx``: the suite's ``nnx.jit`` step (Flax flattens the module graph in Python on every call);
- ``pure``: ``jax.jit`` of a pure function of the ``nnx.split`` state (the same computation, no
  per-call graph walk), the pattern Flax recommends for hot loops.

and prints the step times and the two cheap/binary ratios. ``benchmarks/README.md`` ("MLP: what is
left over binary dropout") quotes them.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()

    import jax
    import optax
    from flax import nnx

    from benchmarks._settings import Settings
    from benchmarks._timing import compare
    from benchmarks.jax_bench import BETA, N_TRAIN, _sync, _train_step, mnist_mlp
    from idrop.backends.jax import ib_loss

    s = Settings()
    key = jax.random.key(1)
    x = jax.random.normal(key, (s.mlp_batch, s.mlp_in))
    y = jax.random.randint(key, (s.mlp_batch,), 0, 10)

    def pure_step(method: str):  # type: ignore[no-untyped-def]
        model = mnist_mlp(method, s)
        opt = nnx.Optimizer(model, optax.sgd(1e-3, momentum=0.9), wrt=nnx.Param)
        graphdef, state = nnx.split((model, opt))

        @jax.jit
        def step(state, x, y):  # type: ignore[no-untyped-def]
            model, opt = nnx.merge(graphdef, state)

            def loss_fn(model):  # type: ignore[no-untyped-def]
                task = optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()
                return ib_loss(task, model, beta=BETA, n_train=N_TRAIN)

            loss, grads = nnx.value_and_grad(loss_fn)(model)
            opt.update(model, grads)
            return loss, nnx.state((model, opt))

        holder = {"state": state}

        def run():  # type: ignore[no-untyped-def]
            loss, holder["state"] = step(holder["state"], x, y)
            return loss

        return run

    def nnx_step(method: str):  # type: ignore[no-untyped-def]
        model = mnist_mlp(method, s)
        opt = nnx.Optimizer(model, optax.sgd(1e-3, momentum=0.9), wrt=nnx.Param)
        return lambda: _train_step(model, opt, x, y)

    steps = {
        f"{way} {m}": make(m) for way, make in (("nnx", nnx_step), ("pure", pure_step)) for m in ("binary", "cheap")
    }
    c = compare(steps, repeats=args.repeats, warmup=3, sync=_sync, min_sample_s=0.0)
    for name in steps:
        print(f"{name}: {c.median_ms(name):.2f} ms")
    for way in ("nnx", "pure"):
        print(f"{way}: time cheap/binary = {c.ratio(f'{way} cheap', f'{way} binary'):.3f}")


if __name__ == "__main__":
    main()
