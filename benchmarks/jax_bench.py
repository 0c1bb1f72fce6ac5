"""JAX / Flax NNX benchmarks: layer step (eager, ``jax.jit`` of the split module), eval forward,
``jax.vjp`` residuals and XLA memory analysis, network throughput (``nnx.jit``).

Devices: the CPU always, plus the first GPU when JAX has one. Data layout NHWC.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from benchmarks import ladder_mlp
from benchmarks._settings import THROUGHPUT_VARIANTS, Settings, row, skipped
from benchmarks._timing import compare
from benchmarks.naive_jax import NaiveInfoDropout
from idrop.backends.jax import InfoDropout, ib_loss
from idrop.experiments.nets.jax import AllCNN32

BACKEND = "jax"
N_TRAIN = 60_000
BETA = 1.0


def devices() -> list[tuple[str, Any]]:
    out = [("cpu", jax.devices("cpu")[0])]
    try:
        gpus = jax.devices("gpu")
    except RuntimeError:
        gpus = []
    return out + ([("gpu", gpus[0])] if gpus else [])


def _sync(out: Any) -> None:
    jax.block_until_ready(out)


def _problem(case: str, s: Settings) -> tuple[Callable[[int, int], nnx.Module], int, jax.Array]:
    """``(make(out, seed) -> map, out, x)`` for the Linear or the Conv case."""
    key = jax.random.key(0)
    if case == "linear":
        return (
            (lambda out, seed: nnx.Linear(s.lin_in, out, rngs=nnx.Rngs(seed))),
            s.lin_out,
            jax.random.normal(key, (s.lin_batch, s.lin_in)),
        )
    return (
        (
            lambda out, seed: nnx.Conv(
                s.conv_ch, out, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)), rngs=nnx.Rngs(seed)
            )
        ),
        s.conv_ch,
        jax.random.normal(key, (s.conv_batch, s.conv_hw, s.conv_hw, s.conv_ch)),
    )


class _Floor(nnx.Module):
    """The stacked map (both weight matrices in one) plus as many normal draws as the noise needs."""

    def __init__(self, layer: nnx.Module, out: int) -> None:
        self.layer, self.out, self.rngs = layer, out, nnx.Rngs(dropout=2)

    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        y = self.layer(x)
        return y, jax.random.normal(self.rngs.dropout(), (*y.shape[:-1], self.out), y.dtype)


class _Binary(nnx.Module):
    def __init__(self, layer: nnx.Module) -> None:
        self.layer, self.dropout = layer, nnx.Dropout(0.5, rngs=nnx.Rngs(dropout=3))

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.dropout(jax.nn.relu(self.layer(x)))


def _models(case: str, s: Settings) -> tuple[dict[str, nnx.Module], dict[str, Callable], jax.Array]:
    """The four variants of the layer training step and their ``loss(model, x) -> (loss, aux)``."""
    make, out, x = _problem(case, s)
    models = {
        "idrop": InfoDropout(make(out, 0), activation="relu", rngs=nnx.Rngs(1, dropout=1)),
        "floor": _Floor(make(2 * out, 0), out),
        "naive": NaiveInfoDropout(make(out, 0), make(out, 1), rngs=nnx.Rngs(dropout=1)),
        "binary": _Binary(make(out, 0)),
    }
    rank = s.mlp_alpha_rank if case == "linear" else s.cnn_alpha_rank
    for key, remat in (("cheap", False), ("cheap_remat", True)):
        models[key] = InfoDropout(
            make(out, 0), activation="relu", alpha_rank=rank, recompute_alpha=remat, rngs=nnx.Rngs(1, dropout=1)
        )

    def f_idrop(m: nnx.Module, x: jax.Array) -> tuple[jax.Array, Any]:
        z = m(x)
        return ib_loss(jnp.mean(z), m, beta=BETA, n_train=N_TRAIN), None

    def f_floor(m: nnx.Module, x: jax.Array) -> tuple[jax.Array, Any]:
        y, eps = m(x)
        return jnp.mean(y), eps  # eps returned so XLA cannot drop the draw

    def f_naive(m: nnx.Module, x: jax.Array) -> tuple[jax.Array, Any]:
        z, kl = m(x)
        return jnp.mean(z) + BETA * jnp.mean(jnp.sum(kl.reshape(kl.shape[0], -1), axis=1)) / N_TRAIN, None

    def f_binary(m: nnx.Module, x: jax.Array) -> tuple[jax.Array, Any]:
        return jnp.mean(m(x)), None

    fns = {"idrop": f_idrop, "floor": f_floor, "naive": f_naive, "binary": f_binary}
    return models, {**fns, "cheap": f_idrop, "cheap_remat": f_idrop}, x


def _jitted(fn: Callable, model: nnx.Module) -> Callable[[jax.Array], Any]:
    """``x -> fn(model, x)`` compiled as Flax recommends for a hot loop: ``nnx.split`` once, ``jax.jit`` a pure
    function of the state, and carry the updated state (the Rngs' counters) from call to call.

    ``nnx.jit`` would flatten the module graph in Python on every call, about 1.2 ms for one ``nnx.Linear``
    plus more per node here: a per-call dispatch cost that grows with the module tree, not the computation
    the benchmark compares (the compiled HLO of ``InfoDropout`` in evaluation is the plain map's).
    """
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    # Flat lists of arrays cross the jit boundary (flattening nnx.State pytrees on every call costs ~0.1 ms).
    p_leaves, p_def = jax.tree.flatten(params)
    r_leaves, r_def = jax.tree.flatten(rest)
    defs = {"rest": r_def}

    @jax.jit
    def pure(p_leaves: list, r_leaves: list, x: jax.Array) -> tuple[Any, list]:
        m = nnx.merge(graphdef, jax.tree.unflatten(p_def, p_leaves), jax.tree.unflatten(defs["rest"], r_leaves))
        out = fn(m, x)
        new_leaves, defs["new_rest"] = jax.tree.flatten(nnx.state(m, nnx.Not(nnx.Param)))  # no parameter copies
        return out, new_leaves

    def call(x: jax.Array) -> Any:
        nonlocal r_leaves
        out, r_leaves = pure(p_leaves, r_leaves, x)
        defs["rest"] = defs["new_rest"]  # the KL intermediate appears after the first training call
        return out

    return call


def _step(loss_fn: Callable, model: nnx.Module, x: jax.Array, compiled: bool) -> Callable[[], Any]:
    def go(m: nnx.Module, x: jax.Array) -> Any:
        return nnx.value_and_grad(loss_fn, has_aux=True)(m, x)

    if compiled:
        fn = _jitted(go, model)
        return lambda: fn(x)
    return lambda: go(model, x)


def layer_train(case: str, s: Settings, device: tuple[str, Any], compiled: bool) -> dict[str, Any]:
    name, dev = device
    with jax.default_device(dev):
        models, losses, x = _models(case, s)
        steps = {k: _step(fn, models[k], x, compiled) for k, fn in losses.items()}
        c = compare(steps, repeats=s.repeats, warmup=s.warmup, sync=_sync)
    return row(
        BACKEND,
        name,
        "layer_train",
        case,
        "compiled" if compiled else "eager",
        times_ms={k: c.median_ms(k) for k in steps},
        ratios={
            **{f"idrop/{k}": c.ratio("idrop", k) for k in ("floor", "naive", "binary")},
            "cheap_remat/cheap": c.ratio("cheap_remat", "cheap"),
        },
        spread={
            **{f"idrop/{k}": c.ratio_spread("idrop", k) for k in ("floor", "naive", "binary")},
            "cheap_remat/cheap": c.ratio_spread("cheap_remat", "cheap"),
        },
    )


def layer_eval(case: str, s: Settings, device: tuple[str, Any], compiled: bool) -> dict[str, Any]:
    name, dev = device
    with jax.default_device(dev):
        make, out, x = _problem(case, s)
        idrop = InfoDropout(make(out, 0), activation="relu", deterministic=True, rngs=nnx.Rngs(1, dropout=1))
        plain = make(out, 0)

        def f_idrop(m: nnx.Module, x: jax.Array) -> jax.Array:
            return m(x)

        def f_plain(m: nnx.Module, x: jax.Array) -> jax.Array:
            return jax.nn.relu(m(x))

        fns = {"idrop": (f_idrop, idrop), "plain": (f_plain, plain)}
        calls = {}
        for k, (f, m) in fns.items():
            if compiled:
                jitted = _jitted(f, m)
                calls[k] = lambda g=jitted: g(x)
            else:
                calls[k] = lambda f=f, m=m: f(m, x)
        c = compare(calls, repeats=s.repeats, warmup=s.warmup, sync=_sync)
    return row(
        BACKEND,
        name,
        "layer_eval",
        case,
        "compiled" if compiled else "eager",
        times_ms={k: c.median_ms(k) for k in calls},
        ratios={"idrop/plain": c.ratio("idrop", "plain")},
        spread={"idrop/plain": c.ratio_spread("idrop", "plain")},
    )


def _buffer(a: jax.Array) -> int:
    """The address of ``a``'s device buffer (``id(a)`` when it has no single one, e.g. sharded)."""
    try:
        return a.unsafe_buffer_pointer()
    except Exception:  # multi-device or otherwise opaque arrays
        return id(a)


def _residual_bytes(loss_fn: Callable, model: nnx.Module, x: jax.Array) -> tuple[int, int, list[str]]:
    """Bytes of the unique buffers ``jax.vjp`` keeps for the backward pass: ``(without parameters, with them,
    non-array leaves)``.

    The JAX counterpart of torch's ``saved_tensors_hooks`` count (``torch_bench._saved_bytes``), same rules:
    unique buffers (deduplicated by address), ``nbytes`` each, ``nnx.Param`` buffers excluded, the input
    ``x`` (closed over, no gradient, like torch's ``x``) counted when it is kept. ``jax.vjp`` runs eagerly, so
    the residuals are concrete arrays; in JAX 0.10 the returned ``VJP`` is a pytree whose leaves are exactly
    its residuals (``args_res``: the primal inputs it keeps, ``opaque_residuals``: everything else; its
    linear jaxpr has no other constants), a ``custom_vjp``'s ``fwd`` residuals among them.
    """
    graphdef, state = nnx.split(model)  # the whole state: the Rngs' counters advance inside the trace
    params = {_buffer(a) for a in jax.tree_util.tree_leaves(nnx.state(model, nnx.Param))}

    def loss(state: Any) -> tuple[jax.Array, Any]:
        return loss_fn(nnx.merge(graphdef, state), x)

    _, vjp_fn, _ = jax.vjp(loss, state, has_aux=True)
    buffers: dict[int, int] = {}
    other = []
    for leaf in jax.tree_util.tree_leaves(vjp_fn):
        if isinstance(leaf, jax.Array):
            key = _buffer(leaf)
            buffers[key] = max(buffers.get(key, 0), leaf.nbytes)
        else:
            other.append(type(leaf).__name__)
    total = sum(buffers.values())
    return total - sum(n for b, n in buffers.items() if b in params), total, other


def memory(case: str, s: Settings, device: tuple[str, Any]) -> list[dict[str, Any]]:
    """The residuals ``jax.vjp`` keeps for the backward pass (the target's measure), then XLA's scratch."""
    return [residuals(case, s, device), xla_temp(case, s, device)]


def residuals(case: str, s: Settings, device: tuple[str, Any]) -> dict[str, Any]:
    """Bytes kept for the backward pass of one eager training step (torch: ``saved_tensors``)."""
    name, dev = device
    with jax.default_device(dev):
        models, losses, x = _models(case, s)
        kept = {k: _residual_bytes(fn, models[k], x) for k, fn in losses.items()}
    other = sorted({t for v in kept.values() for t in v[2]})
    if other:
        return skipped(BACKEND, name, "memory", case, "residuals", f"jax.vjp kept non-array residuals: {other}")
    b = {k: v[0] for k, v in kept.items()}
    return row(
        BACKEND,
        name,
        "memory",
        case,
        "residuals",
        bytes=b,
        bytes_incl_params={k: v[1] for k, v in kept.items()},
        ratios={
            "idrop/naive": b["idrop"] / b["naive"],
            "idrop/floor": b["idrop"] / b["floor"],
            "cheap/naive": b["cheap"] / b["naive"],
            "cheap_remat/naive": b["cheap_remat"] / b["naive"],
        },
        note="unique buffers among the residuals of an eager jax.vjp of the loss (the leaves of the VJP "
        "pytree), nnx.Param excluded, the input x included: the counterpart of torch's saved_tensors",
    )


def xla_temp(case: str, s: Settings, device: tuple[str, Any]) -> dict[str, Any]:
    """XLA's own accounting of the compiled training step (``memory_analysis()``), for information."""
    name, dev = device
    with jax.default_device(dev):
        models, losses, x = _models(case, s)
        temp, args = {}, {}
        for k, fn in losses.items():
            graphdef, state = nnx.split(models[k])

            def pure(state: Any, x: jax.Array, graphdef: Any = graphdef, fn: Callable = fn) -> Any:
                m = nnx.merge(graphdef, state)
                return nnx.value_and_grad(fn, has_aux=True)(m, x)

            stats = jax.jit(pure).lower(state, x).compile().memory_analysis()
            if stats is None:
                return skipped(BACKEND, name, "memory", case, "xla_temp", "memory_analysis() is not available here")
            temp[k], args[k] = stats.temp_size_in_bytes, stats.argument_size_in_bytes
    if min(temp.values()) <= 0:
        return skipped(BACKEND, name, "memory", case, "xla_temp", f"XLA reported no temporaries: {temp}")
    # Ratio keys prefixed "temp " so that the memory target (on "idrop/naive", the residuals row) does not apply.
    return row(
        BACKEND,
        name,
        "memory",
        case,
        "xla_temp",
        bytes=temp,
        argument_bytes=args,
        ratios={"temp idrop/naive": temp["idrop"] / temp["naive"], "temp idrop/floor": temp["idrop"] / temp["floor"]},
        note="temp_size_in_bytes (XLA memory_analysis) of the jitted value_and_grad step: XLA's scratch of "
        "the whole compiled step (forward and backward intermediates; arguments and outputs excluded), "
        "not the bytes kept for the backward pass; reported for information, no target",
    )


# ---------------------------------------------------------------- networks --


def _hidden(method: str, layer: nnx.Module, seed: int, norm: nnx.Module | None = None, rank: int = 0) -> list[Callable]:
    if method in ("information", "cheap"):
        rank_or_none = rank if method == "cheap" else None
        rngs = nnx.Rngs(seed, dropout=seed)
        return [InfoDropout(layer, activation="relu", norm=norm, alpha_rank=rank_or_none, rngs=rngs)]
    mods: list[Callable] = [layer] + ([norm] if norm is not None else []) + [jax.nn.relu]
    return mods + ([nnx.Dropout(0.5, rngs=nnx.Rngs(dropout=seed))] if method == "binary" else [])


def mnist_mlp(method: str, s: Settings) -> nnx.Module:
    layers: list[Callable] = []
    d = s.mlp_in
    for i in range(3):
        layers += _hidden(method, nnx.Linear(d, s.mlp_width, rngs=nnx.Rngs(i)), seed=100 + i, rank=s.mlp_alpha_rank)
        d = s.mlp_width
    return nnx.Sequential(*layers, nnx.Linear(d, 10, rngs=nnx.Rngs(9)))


def all_cnn_32(method: str, s: Settings, dtype: Any = None) -> nnx.Module:
    """All-CNN-32, the CIFAR-10 experiment's network (official cifar.py), at the settings' widths;
    ``dtype=jnp.bfloat16`` computes in bfloat16 with float32 parameters."""
    rank = s.cnn_alpha_rank if method == "cheap" else None
    method = "information" if method == "cheap" else method
    return AllCNN32(method, widths=(s.cnn_c1, s.cnn_c2), dtype=dtype, alpha_rank=rank, rngs=nnx.Rngs(0, dropout=1))


@nnx.jit
def _train_step(model: nnx.Module, opt: nnx.Optimizer, x: jax.Array, y: jax.Array) -> jax.Array:
    def loss_fn(model: nnx.Module) -> jax.Array:
        task = optax.softmax_cross_entropy_with_integer_labels(model(x).astype(jnp.float32), y).mean()
        return ib_loss(task, model, beta=BETA, n_train=N_TRAIN)

    loss, grads = nnx.value_and_grad(loss_fn)(model)
    opt.update(model, grads)
    return loss


def throughput(net: str, s: Settings, device: tuple[str, Any], mixed: bool = False) -> dict[str, Any]:
    """Images per second of one jitted training step with each dropout method (``mixed``: All-CNN-32
    computing in bfloat16 with float32 parameters, the GPU target's setting)."""
    name, dev = device
    with jax.default_device(dev):
        key = jax.random.key(1)
        if net == "mlp":
            build, batch, x = mnist_mlp, s.mlp_batch, jax.random.normal(key, (s.mlp_batch, s.mlp_in))
        else:
            build, batch = functools.partial(all_cnn_32, dtype=jnp.bfloat16 if mixed else None), s.cnn_batch
            x = jax.random.normal(key, (batch, s.cnn_hw, s.cnn_hw, 3))
        y = jax.random.randint(key, (batch,), 0, 10)
        steps = {}
        for method in THROUGHPUT_VARIANTS:
            model = build(method, s)
            opt = nnx.Optimizer(model, optax.sgd(1e-3, momentum=0.9), wrt=nnx.Param)
            steps[method] = lambda model=model, opt=opt: _train_step(model, opt, x, y)
        c = compare(steps, repeats=s.throughput_repeats, warmup=s.throughput_warmup, sync=_sync, min_sample_s=0.0)
    return row(
        BACKEND,
        name,
        "throughput",
        net,
        "compiled-bf16" if mixed else "compiled",
        images_per_s={k: 1e3 * batch / c.median_ms(k) for k in steps},
        times_ms={k: c.median_ms(k) for k in steps},
        ratios={
            "information/none": c.ratio("information", "none"),
            "information/binary": c.ratio("information", "binary"),
            "cheap/binary": c.ratio("cheap", "binary"),
        },
        note="nnx.jit train step; ratios are of step times (above 1: slower)",
    )


def run(s: Settings, log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for device in devices():
        for case in ("linear", "conv") if {"layer_train", "layer_eval", "memory"} & set(s.kinds) else ():
            # jax.jit is not optional in JAX: it runs under --no-compile too (eager JAX is op-by-op dispatch).
            for compiled in (False, True):
                mode = "compiled" if compiled else "eager"
                for kind, fn in (("layer_train", layer_train), ("layer_eval", layer_eval)):
                    if kind not in s.kinds:
                        continue
                    log(f"jax {device[0]} {kind} {case} {mode}")
                    rows.append(fn(case, s, device, compiled))
            if "memory" in s.kinds:
                log(f"jax {device[0]} memory {case}")
                rows.extend(memory(case, s, device))
        for net in ("mlp", "allcnn") if "throughput" in s.kinds else ():
            log(f"jax {device[0]} throughput {net}")
            rows.append(throughput(net, s, device))
        if "throughput" in s.kinds and s.mixed_precision_row(device[0]):
            log(f"jax {device[0]} throughput allcnn bf16")
            rows.append(throughput("allcnn", s, device, mixed=True))
        if "ladder" in s.kinds:
            log(f"jax {device[0]} ladder mlp")
            rows.append(ladder_mlp.jax_row(s, device))
    return rows


def info() -> dict[str, Any]:
    import flax
    import jaxlib

    out: dict[str, Any] = {
        "versions": {
            "jax": jax.__version__,
            "jaxlib": jaxlib.__version__,
            "flax": flax.__version__,
            "optax": optax.__version__,
        }
    }
    gpu = [d for name, d in devices() if name == "gpu"]
    if gpu:
        out["gpu"] = gpu[0].device_kind
    return out
