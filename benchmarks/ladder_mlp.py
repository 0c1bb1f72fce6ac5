"""Where the MLP's cheap/binary step time goes: the ``ladder`` rows (issue 17).

``python -m benchmarks --backend B --only ladder`` times the training step of the throughput rows'
MLP (784-W-W-W-10, batch and W of the settings, SGD with momentum, each backend's network mode:
``nnx.jit``, ``tf.function(jit_compile=True)`` unless ``--no-compile``, eager torch) with six dropout
variants that add one piece at a time, round-robin in one process (``benchmarks._timing.compare``):

==============  ============================================================  ======================
variant         what the three hidden layers do                               adds to the row above
==============  ============================================================  ======================
``binary``      the framework's own ``Dense -> ReLU -> Dropout(0.5)``         (the reference)
``idrop-bin``   idrop's ``BinaryDropout(Dense)``: the same law in idrop's      idrop's wrapper
                wrapper
``gaussian``    ``GaussianDropout(Dense)``: a normal draw, a multiply          a normal draw, not a
                                                                               uniform one
``lognormal``   ``LogNormalDropout(Dense, alpha=0.7)``: ``exp(alpha*eps)``     the exp of the noise
``cheap-task``  ``InfoDropout(Dense, alpha_rank=r)``, task loss only: the      the alpha branch, its
                alpha branch (down, up, sigmoid) and the kernel; the KL is      sigmoid, the KL forward
                recorded but not differentiated
``cheap``       the same with ``ib_loss`` (beta = 1): the throughput rows'      the KL's backward
                ``cheap`` variant
==============  ============================================================  ======================

The row's ratios: each variant over ``binary`` (``"<v>/binary"``) and over the variant above it
(``"<v>/<above>"``), medians of per-round ratios. ``benchmarks/README.md`` ("MLP: what is left over
binary dropout") quotes them.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from benchmarks._settings import Settings, row
from benchmarks._timing import compare

VARIANTS = ("binary", "idrop-bin", "gaussian", "lognormal", "cheap-task", "cheap")
ADDS = {
    "idrop-bin": "idrop's wrapper",
    "gaussian": "normal draw instead of uniform",
    "lognormal": "exp of the noise",
    "cheap-task": "alpha branch + KL forward",
    "cheap": "KL backward",
}
Steps = dict[str, Callable[[], Any]]


def measure(backend: str, device: str, mode: str, steps: Steps, sync: Callable[[Any], None], s: Settings) -> dict:
    """The ``ladder`` row of ``steps`` (one zero-argument training step per variant of :data:`VARIANTS`)."""
    # Three warm-up calls at least: a step that records KL state retraces on its second call (nnx.jit).
    c = compare(steps, repeats=s.throughput_repeats, warmup=max(3, s.throughput_warmup), sync=sync, min_sample_s=0.0)
    ratios = {f"{v}/binary": c.ratio(v, "binary") for v in VARIANTS[1:]}
    ratios |= {f"{v}/{above}": c.ratio(v, above) for above, v in itertools.pairwise(VARIANTS) if above != "binary"}
    return row(
        backend,
        device,
        "ladder",
        "mlp",
        mode,
        times_ms={v: c.median_ms(v) for v in VARIANTS},
        ratios=ratios,
        spread={f"{v}/{above}": c.ratio_spread(v, above) for above, v in itertools.pairwise(VARIANTS)},
        note=f"alpha_rank {s.mlp_alpha_rank}; ratios of step times",
    )


def jax_row(s: Settings, device: tuple[str, Any]) -> dict:
    """The JAX ladder: ``nnx.jit`` steps, as the throughput rows."""
    import jax
    import optax
    from flax import nnx

    from benchmarks.jax_bench import BETA, N_TRAIN, _sync
    from idrop.backends.jax import BinaryDropout, GaussianDropout, InfoDropout, LogNormalDropout, ib_loss

    def hidden(variant: str, d: int, i: int) -> list[Callable]:
        linear = nnx.Linear(d, s.mlp_width, rngs=nnx.Rngs(i))
        rngs = nnx.Rngs(100 + i, dropout=100 + i)
        if variant == "binary":
            return [linear, jax.nn.relu, nnx.Dropout(0.5, rngs=nnx.Rngs(dropout=100 + i))]
        if variant == "idrop-bin":
            return [BinaryDropout(linear, rate=0.5, rngs=rngs)]
        if variant == "gaussian":
            return [GaussianDropout(linear, rate=0.5, rngs=rngs)]
        if variant == "lognormal":
            return [LogNormalDropout(linear, alpha=0.7, rngs=rngs)]
        return [InfoDropout(linear, activation="relu", alpha_rank=s.mlp_alpha_rank, rngs=rngs)]

    def make(variant: str) -> Callable[[], Any]:
        layers: list[Callable] = []
        for i, d in enumerate((s.mlp_in, s.mlp_width, s.mlp_width)):
            layers += hidden(variant, d, i)
        model = nnx.Sequential(*layers, nnx.Linear(s.mlp_width, 10, rngs=nnx.Rngs(9)))
        opt = nnx.Optimizer(model, optax.sgd(1e-3, momentum=0.9), wrt=nnx.Param)
        with_kl = variant != "cheap-task"

        @nnx.jit
        def step(model: nnx.Module, opt: nnx.Optimizer, x: jax.Array, y: jax.Array) -> jax.Array:
            def loss_fn(model: nnx.Module) -> jax.Array:
                task = optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()
                return ib_loss(task, model, beta=BETA, n_train=N_TRAIN) if with_kl else task

            loss, grads = nnx.value_and_grad(loss_fn)(model)
            opt.update(model, grads)
            return loss

        return lambda: step(model, opt, x, y)

    name, dev = device
    with jax.default_device(dev):
        key = jax.random.key(1)
        x = jax.random.normal(key, (s.mlp_batch, s.mlp_in))
        y = jax.random.randint(key, (s.mlp_batch,), 0, 10)
        return measure("jax", name, "compiled", {v: make(v) for v in VARIANTS}, _sync, s)


def tensorflow_row(s: Settings, device: str, compiled: bool) -> dict:
    """The TensorFlow ladder: Keras models stepped by ``tf.function(jit_compile=True)`` (eager unless ``compiled``)."""
    import keras
    import tensorflow as tf

    from benchmarks.tensorflow_bench import BETA, N_TRAIN, _sync, _tf_device
    from idrop.backends.tensorflow import BinaryDropout, GaussianDropout, InfoDropout, LogNormalDropout, ib_loss

    def hidden(variant: str) -> list[keras.Layer]:
        dense = keras.layers.Dense(s.mlp_width)
        if variant == "binary":
            return [dense, keras.layers.ReLU(), keras.layers.Dropout(0.5, seed=0)]
        if variant == "idrop-bin":
            return [BinaryDropout(dense, rate=0.5, seed=0)]
        if variant == "gaussian":
            return [GaussianDropout(dense, rate=0.5, seed=0)]
        if variant == "lognormal":
            return [LogNormalDropout(dense, alpha=0.7, seed=0)]
        return [InfoDropout(dense, activation="relu", alpha_rank=s.mlp_alpha_rank, seed=0)]

    def make(variant: str) -> Callable[[], Any]:
        model = keras.Sequential(
            [keras.Input((s.mlp_in,)), *[m for _ in range(3) for m in hidden(variant)], keras.layers.Dense(10)]
        )
        opt = keras.optimizers.SGD(learning_rate=1e-3, momentum=0.9)
        opt.build(model.trainable_variables)
        with_kl = variant != "cheap-task"

        def step(x: Any, y: Any) -> Any:
            with tf.GradientTape() as tape:
                logits = model(x, training=True)
                task = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))
                loss = ib_loss(task, model, beta=BETA, n_train=N_TRAIN) if with_kl else task
            grads = tape.gradient(loss, model.trainable_variables)
            opt.apply_gradients(zip(grads, model.trainable_variables))
            return loss

        fn = tf.function(step, jit_compile=True) if compiled else step
        return lambda: fn(x, y)

    with tf.device(_tf_device(device)):
        keras.utils.set_random_seed(0)
        x = tf.random.normal((s.mlp_batch, s.mlp_in))
        y = tf.random.uniform((s.mlp_batch,), 0, 10, dtype=tf.int32)
        steps = {v: make(v) for v in VARIANTS}
        mode = "compiled" if compiled else "eager"
        return measure("tensorflow", device, mode, steps, _sync, s)


def torch_row(s: Settings, device: str) -> dict:
    """The torch ladder: eager steps, as the throughput rows."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    from benchmarks.torch_bench import BETA, N_TRAIN, _sync_for
    from idrop.backends.torch import BinaryDropout, GaussianDropout, InfoDropout, LogNormalDropout, ib_loss, kl_loss

    def hidden(variant: str, d: int) -> list[nn.Module]:
        linear = nn.Linear(d, s.mlp_width)
        if variant == "binary":
            return [linear, nn.ReLU(), nn.Dropout(0.5)]
        if variant == "idrop-bin":
            return [BinaryDropout(linear, rate=0.5)]
        if variant == "gaussian":
            return [GaussianDropout(linear, rate=0.5)]
        if variant == "lognormal":
            return [LogNormalDropout(linear, alpha=0.7)]
        return [InfoDropout(linear, activation="relu", alpha_rank=s.mlp_alpha_rank)]

    torch.manual_seed(0)
    x = torch.randn(s.mlp_batch, s.mlp_in, device=device)
    y = torch.randint(0, 10, (s.mlp_batch,), device=device)

    def make(variant: str) -> Callable[[], Any]:
        widths = (s.mlp_in, s.mlp_width, s.mlp_width)
        model = nn.Sequential(*[m for d in widths for m in hidden(variant, d)], nn.Linear(s.mlp_width, 10))
        model = model.to(device).train()
        opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
        with_kl = variant != "cheap-task"

        def step() -> torch.Tensor:
            opt.zero_grad(set_to_none=True)
            task = F.cross_entropy(model(x), y)
            if with_kl:
                loss = ib_loss(task, model, beta=BETA, n_train=N_TRAIN)
            else:
                loss = task
                kl_loss(model, n_train=N_TRAIN)  # collect the records, as a training loop that logs the KL would
            loss.backward()
            opt.step()
            return loss

        return step

    return measure("torch", device, "eager", {v: make(v) for v in VARIANTS}, _sync_for(device), s)
