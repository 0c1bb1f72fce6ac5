"""The checks of tests/distributed/test_jax_sharding.py, in a process started with 2 host devices.

Usage: XLA_FLAGS=--xla_force_host_platform_device_count=2 python _jax_worker.py OUT DATA_DIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from idrop import cli
from idrop.backends.jax import InfoDropout
from idrop.distributed import jax as djax
from idrop.experiments.mnist.jax import kl_per_example

sys.path.insert(0, str(Path(__file__).parents[1]))  # tests/: _mnist_data
from _mnist_data import mnist_args

B, N_TRAIN, BETA = 8, 50, 3.0


def step(mesh: jax.sharding.Mesh, x: np.ndarray, y: np.ndarray, eps: np.ndarray | None) -> tuple:
    """One SGD step of a 5 -> InfoDropout(6) -> 3 net on ``mesh``; noise injected or sampled."""
    rngs = nnx.Rngs(params=0, dropout=1)
    layer = InfoDropout(nnx.Linear(5, 6, rngs=rngs), activation="relu", rngs=rngs)
    model = nnx.Sequential(layer, nnx.Linear(6, 3, rngs=rngs))
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    params, rest = djax.replicate(mesh, (params, rest))
    xs, ys, ws = djax.shard_batch(mesh, x, y, np.ones(len(x), np.float32))
    es = None if eps is None else djax.shard_batch(mesh, eps)

    @jax.jit
    def run(params, rest, xs, ys, ws, es, key):
        def loss_fn(params):
            m = nnx.merge(graphdef, params, rest, copy=True)
            drop, out = m.layers
            z = drop(xs, noise=es, deterministic=False, rngs=key)
            task = djax.weighted_mean(optax.softmax_cross_entropy_with_integer_labels(out(z), ys), ws)
            kl = djax.weighted_mean(kl_per_example(m), ws)
            return task + BETA * kl / N_TRAIN, (kl, z)

        (loss, (kl, z)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        return loss, kl, z, jax.tree.map(lambda p, g: p - 0.1 * g, params, grads)

    loss, kl, z, new = run(params, rest, xs, ys, ws, es, jax.random.key(3))
    return float(loss), float(kl), np.asarray(z), [np.asarray(v) for v in jax.tree.leaves(new)], z.sharding


def main(out: Path, data_dir: Path) -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(B, 5)).astype(np.float32), rng.integers(0, 3, B)
    eps = rng.normal(size=(B, 6)).astype(np.float32)
    one, two = djax.data_mesh(1), djax.data_mesh(2)
    checks: dict = {"devices": len(jax.devices())}
    for name, noise in (("injected", eps), ("sampled", None)):
        l1, k1, z1, p1, _ = step(one, x, y, noise)
        l2, k2, z2, p2, sharding = step(two, x, y, noise)
        checks[name] = {
            "loss": [l1, l2],
            "kl": [k1, k2],
            "z_diff": float(np.abs(z1 - z2).max()),
            "param_diff": max(float(np.abs(a - b).max()) for a, b in zip(p1, p2)),
            "shards": len(sharding.device_set),
        }
    # The same example on both devices: the sampled noise must differ between the halves.
    _, _, z, _, _ = step(two, np.repeat(x[:1], B, 0), np.repeat(y[:1], B), None)
    checks["noise_differs"] = bool(np.abs(z[: B // 2] - z[B // 2 :]).max() > 1e-3)
    keys = djax.replica_keys(jax.random.key(0), 2)
    checks["replica_keys_differ"] = bool(
        not np.array_equal(jax.random.normal(keys[0], (4,)), jax.random.normal(keys[1], (4,)))
    )
    (out / "checks.json").write_text(json.dumps(checks))
    for n in ("1", "2"):
        status = cli.main(mnist_args("jax", data_dir, out / f"d{n}", "--devices", n))
        if status:
            raise SystemExit(status)


if __name__ == "__main__":
    jnp.zeros(())  # start JAX (the flag in XLA_FLAGS gives it 2 host devices)
    main(Path(sys.argv[1]), Path(sys.argv[2]))
