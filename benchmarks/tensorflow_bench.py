"""TensorFlow/Keras 3 benchmarks: layer step (eager, ``tf.function(jit_compile=True)``), eval forward,
network throughput. Memory: on the CPU the bytes the backward pass keeps from the forward pass
(:func:`_kept_tensors`, through private ``tf.function`` gradient API; :data:`MEMORY_SKIP` when it
fails), on a GPU the allocator's peak.

Devices: the CPU always, plus the first GPU when TensorFlow sees one. Data layout NHWC.
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from benchmarks import ladder_mlp
from benchmarks._settings import THROUGHPUT_VARIANTS, Settings, row, skipped
from benchmarks._timing import compare
from benchmarks.naive_tensorflow import NaiveInfoDropout
from idrop.backends.tensorflow import InfoDropout, ib_loss
from idrop.experiments.nets.tensorflow import AllCNN32

BACKEND = "tensorflow"
N_TRAIN = 60_000
BETA = 1.0
#: Reason of the CPU memory row when the private ``tf.function`` gradient API it relies on fails.
MEMORY_SKIP = (
    "TensorFlow has no public counterpart of torch's saved_tensors_hooks, and the private tf.function "
    "gradient API the kept tensors are read from failed"
)


def devices() -> list[str]:
    return ["cpu"] + (["gpu"] if tf.config.list_physical_devices("GPU") else [])


def _tf_device(device: str) -> str:
    return "/GPU:0" if device == "gpu" else "/CPU:0"


def _sync(out: Any) -> None:
    loss = out[0] if isinstance(out, tuple) else out
    loss.numpy()


def _philox_normal(shape: tuple, seed_gen: keras.random.SeedGenerator) -> Any:
    """Standard normals from the Keras seed stream, drawn with the Philox algorithm.

    ``keras.random.normal`` (``tf.random.stateless_normal`` with ``alg="auto_select"``) is
    about 40x slower under XLA on the CPU than ``alg="philox"`` (169 vs 4.4 ms for 128x1024
    here); the floor must be the fastest draw the framework offers.
    """
    seed = tf.cast(tf.math.floormod(seed_gen.next(), tf.int32.max - 1), "int32")
    return tf.random.stateless_normal(shape, seed=seed, alg="philox")


def _problem(case: str, s: Settings) -> tuple[Callable[[int], keras.Layer], int, Any]:
    if case == "linear":
        return (lambda out: keras.layers.Dense(out)), s.lin_out, tf.random.normal((s.lin_batch, s.lin_in))
    return (
        (lambda out: keras.layers.Conv2D(out, 3, strides=2, padding="same")),
        s.conv_ch,
        tf.random.normal((s.conv_batch, s.conv_hw, s.conv_hw, s.conv_ch)),
    )


def _losses(case: str, s: Settings) -> tuple[dict[str, Callable], dict[str, list], Any]:
    """Forward-to-``(loss, aux)`` functions of the four variants, and their trainable variables."""
    keras.utils.set_random_seed(0)
    make, out, x = _problem(case, s)
    idrop = InfoDropout(make(out), activation="relu", seed=0)
    floor = make(2 * out)
    floor_seed = keras.random.SeedGenerator(0)
    naive = NaiveInfoDropout(make(out), make(out))
    binary, dropout = make(out), keras.layers.Dropout(0.5, seed=0)
    rank = s.mlp_alpha_rank if case == "linear" else s.cnn_alpha_rank
    cheap = InfoDropout(make(out), activation="relu", alpha_rank=rank, seed=0)
    cheap_remat = InfoDropout(make(out), activation="relu", alpha_rank=rank, recompute_alpha=True, seed=0)

    def information(layer: InfoDropout) -> Callable:
        def loss(x: Any) -> tuple[Any, Any]:
            z = layer(x, training=True)
            return ib_loss(tf.reduce_mean(z), layer, beta=BETA, n_train=N_TRAIN), ()

        return loss

    f_idrop = information(idrop)

    def f_floor(x: Any) -> tuple[Any, Any]:
        y = floor(x)
        eps = _philox_normal((*y.shape[:-1], out), floor_seed)
        return tf.reduce_mean(y), eps  # eps returned so XLA cannot drop the draw

    def f_naive(x: Any) -> tuple[Any, Any]:
        z, kl = naive(x, training=True)
        kl = tf.reduce_sum(tf.reshape(kl, (tf.shape(kl)[0], -1)), axis=1)
        return tf.reduce_mean(z) + BETA * tf.reduce_mean(kl) / N_TRAIN, ()

    def f_binary(x: Any) -> tuple[Any, Any]:
        return tf.reduce_mean(dropout(tf.nn.relu(binary(x)), training=True)), ()

    fns = {
        "idrop": f_idrop,
        "floor": f_floor,
        "naive": f_naive,
        "binary": f_binary,
        "cheap": information(cheap),
        "cheap_remat": information(cheap_remat),
    }
    for fn in fns.values():  # build every layer
        fn(x)
    variables = {
        "idrop": idrop.trainable_variables,
        "floor": floor.trainable_variables,
        "naive": naive.trainable_variables,
        "binary": binary.trainable_variables,
        "cheap": cheap.trainable_variables,
        "cheap_remat": cheap_remat.trainable_variables,
    }
    return fns, variables, x


def _step(loss_fn: Callable, variables: list, x: Any, compiled: bool) -> Callable[[], Any]:
    def go(x: Any) -> tuple[Any, Any, Any]:
        with tf.GradientTape() as tape:
            loss, aux = loss_fn(x)
        return loss, tape.gradient(loss, variables), aux

    fn = tf.function(go, jit_compile=True) if compiled else go
    return lambda: fn(x)


def layer_train(case: str, s: Settings, device: str, compiled: bool) -> dict[str, Any]:
    with tf.device(_tf_device(device)):
        fns, variables, x = _losses(case, s)
        steps = {k: _step(fn, variables[k], x, compiled) for k, fn in fns.items()}
        c = compare(steps, repeats=s.repeats, warmup=s.warmup, sync=_sync)
    return row(
        BACKEND,
        device,
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


def layer_eval(case: str, s: Settings, device: str, compiled: bool) -> dict[str, Any]:
    with tf.device(_tf_device(device)):
        keras.utils.set_random_seed(0)
        make, out, x = _problem(case, s)
        idrop, plain = InfoDropout(make(out), activation="relu", seed=0), make(out)

        def f_idrop(x: Any) -> Any:
            return idrop(x, training=False)

        def f_plain(x: Any) -> Any:
            return tf.nn.relu(plain(x))

        fns = {"idrop": f_idrop, "plain": f_plain}
        if compiled:
            fns = {k: tf.function(fn, jit_compile=True) for k, fn in fns.items()}
        c = compare({k: (lambda fn=fn: fn(x)) for k, fn in fns.items()}, repeats=s.repeats, warmup=s.warmup, sync=_sync)
    return row(
        BACKEND,
        device,
        "layer_eval",
        case,
        "compiled" if compiled else "eager",
        times_ms={k: c.median_ms(k) for k in fns},
        ratios={"idrop/plain": c.ratio("idrop", "plain")},
        spread={"idrop/plain": c.ratio_spread("idrop", "plain")},
    )


def _kept_tensors(loss_fn: Callable, x: Any) -> list[Any]:
    """The tensors the backward pass of ``tf.function(loss_fn)`` keeps from its forward pass, as values.

    Under one eager ``GradientTape`` (first order, as in :func:`_step`) a ``tf.function`` call runs a
    forward function whose extra outputs are the forward-graph tensors its backward function captures
    (``_FirstOrderTapeGradientFunctions``); the tape keeps exactly the backward function's captured
    inputs: those outputs (the input ``x`` and the function's own outputs among them when the backward
    needs them) and eager tensors it captured directly (variable handles, constants). This builds that
    pair (private API), runs the forward function once and returns the captured inputs as eager tensors.
    """
    from tensorflow.python.framework import ops
    from tensorflow.python.ops import gradients_util

    cf = tf.function(loss_fn).get_concrete_function(x)
    call = cf._select_forward_and_backward_functions(
        [x, *cf.captured_inputs], gradients_util.POSSIBLE_GRADIENT_TYPES_FIRST_ORDER, True
    )
    forward, forward_args = call.forward()
    outputs = forward.call_flat(*forward_args)
    functions = call._functions
    graph_outputs = functions._forward_graph.outputs
    if len(graph_outputs) != len(outputs):
        raise RuntimeError(f"forward function gave {len(outputs)} outputs for {len(graph_outputs)} graph outputs")
    values = {ops.tensor_id(t): v for t, v in zip(graph_outputs, outputs)}
    kept = [values.get(ops.tensor_id(c), c) for c in functions._backward.captured_inputs]
    stray = [t for t in kept if not isinstance(t, ops.EagerTensor)]
    if stray:
        raise RuntimeError(f"backward captures not mapped to forward outputs: {stray[:3]}")
    return kept


def _span(t: Any) -> tuple[int, int] | None:
    """``(start, end)`` address of a CPU tensor's data (``None`` for handles and empty tensors)."""
    if t.dtype in (tf.resource, tf.variant):
        return None
    a = np.asarray(t)  # zero-copy view of the tensor's buffer on the CPU
    start = a.__array_interface__["data"][0]
    return (start, start + a.nbytes) if a.nbytes else None


def _union_bytes(spans: list[tuple[int, int]]) -> int:
    """Bytes covered by the address ranges, each byte counted once."""
    total, end = 0, 0
    for lo, hi in sorted(spans):
        if hi > end:
            total += hi - max(lo, end)
            end = hi
    return total


def _saved_bytes(loss_fn: Callable, variables: list, x: Any) -> tuple[int, int]:
    """Bytes of the unique buffers the backward pass keeps: ``(without variables, with them)``.

    torch's rules (``benchmarks/torch_bench._saved_bytes``): a buffer shared by several kept tensors
    (the input and a reshape of it, a variable and its read) counts once, variable buffers are left
    out of the first number, the input ``x`` is in both. Resource handles are not data and count nowhere.
    """
    var_spans = [s for s in (_span(tf.convert_to_tensor(v)) for v in variables) if s]
    spans = [s for s in (_span(t) for t in _kept_tensors(loss_fn, x)) if s]
    own = [s for s in spans if not any(lo <= s[0] and s[1] <= hi for lo, hi in var_spans)]
    return _union_bytes(own), _union_bytes(spans)


def memory(case: str, s: Settings, device: str) -> dict[str, Any]:
    if device != "gpu":
        try:
            with tf.device(_tf_device(device)):
                fns, variables, x = _losses(case, s)
                saved = {k: _saved_bytes(fn, variables[k], x) for k, fn in fns.items()}
        except Exception as err:  # private API: a TensorFlow release may change it
            return skipped(
                BACKEND, device, "memory", case, "saved_tensors", f"{MEMORY_SKIP}: {type(err).__name__}: {err}"[:300]
            )
        return row(
            BACKEND,
            device,
            "memory",
            case,
            "saved_tensors",
            bytes={k: v[0] for k, v in saved.items()},
            bytes_incl_params={k: v[1] for k, v in saved.items()},
            ratios={
                "idrop/naive": saved["idrop"][0] / saved["naive"][0],
                "idrop/floor": saved["idrop"][0] / saved["floor"][0],
                "cheap/naive": saved["cheap"][0] / saved["naive"][0],
                "cheap_remat/naive": saved["cheap_remat"][0] / saved["naive"][0],
            },
            note="tensorflow: unique buffers of the tensors that the backward function of tf.function(loss) "
            "takes from its forward function under one eager GradientTape (TF's first-order "
            "forward/backward pair, built through private ConcreteFunction API and run once; graph "
            "gradient rules, static shapes), variables excluded, input included",
        )
    with tf.device(_tf_device(device)):
        fns, variables, x = _losses(case, s)
        peak = {}
        for k, fn in fns.items():
            step = _step(fn, variables[k], x, compiled=False)
            _sync(step())
            base = tf.config.experimental.get_memory_info("GPU:0")["current"]
            tf.config.experimental.reset_memory_stats("GPU:0")
            _sync(step())
            peak[k] = tf.config.experimental.get_memory_info("GPU:0")["peak"] - base
    return row(
        BACKEND,
        device,
        "memory",
        case,
        "gpu_peak",
        bytes=peak,
        ratios={"idrop/naive": peak["idrop"] / peak["naive"]},
        note="tf.config.experimental.get_memory_info peak over one eager step, above the memory in use before",
    )


# ---------------------------------------------------------------- networks --


def _hidden(method: str, layer: keras.Layer, norm: keras.Layer | None = None, rank: int = 0) -> list[keras.Layer]:
    if method in ("information", "cheap"):
        rank_or_none = rank if method == "cheap" else None
        return [InfoDropout(layer, activation="relu", norm=norm, seed=0, alpha_rank=rank_or_none)]
    mods = [layer] + ([norm] if norm is not None else []) + [keras.layers.ReLU()]
    return mods + ([keras.layers.Dropout(0.5, seed=0)] if method == "binary" else [])


def mnist_mlp(method: str, s: Settings) -> keras.Model:
    layers: list[keras.Layer] = []
    for _ in range(3):
        layers += _hidden(method, keras.layers.Dense(s.mlp_width), rank=s.mlp_alpha_rank)
    return keras.Sequential([keras.Input((s.mlp_in,)), *layers, keras.layers.Dense(10)])


def all_cnn_32(method: str, s: Settings) -> keras.Model:
    """All-CNN-32, the CIFAR-10 experiment's network (official cifar.py), at the settings' widths; built."""
    if method == "cheap":
        model = AllCNN32("information", widths=(s.cnn_c1, s.cnn_c2), alpha_rank=s.cnn_alpha_rank)
    else:
        model = AllCNN32(method, widths=(s.cnn_c1, s.cnn_c2))
    model(tf.zeros((1, s.cnn_hw, s.cnn_hw, 3)), training=False)
    return model


def _built(build: Callable, method: str, s: Settings, mixed: bool) -> keras.Model:
    """``build(method, s)``, under the ``mixed_bfloat16`` dtype policy when ``mixed``."""
    policy = keras.mixed_precision.global_policy()
    if mixed:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        return build(method, s)
    finally:
        keras.mixed_precision.set_global_policy(policy)


def throughput(net: str, s: Settings, device: str, compiled: bool, mixed: bool = False) -> dict[str, Any]:
    """Images per second of one training step with each dropout method (``mixed``: bfloat16 compute,
    float32 variables, the GPU target's setting)."""
    with tf.device(_tf_device(device)):
        keras.utils.set_random_seed(0)
        if net == "mlp":
            build, batch, x = mnist_mlp, s.mlp_batch, tf.random.normal((s.mlp_batch, s.mlp_in))
        else:
            build, batch = all_cnn_32, s.cnn_batch
            x = tf.random.normal((batch, s.cnn_hw, s.cnn_hw, 3))
        y = tf.random.uniform((batch,), 0, 10, dtype=tf.int32)
        steps = {}
        for method in THROUGHPUT_VARIANTS:
            model = _built(build, method, s, mixed)
            opt = keras.optimizers.SGD(learning_rate=1e-3, momentum=0.9)
            opt.build(model.trainable_variables)

            def step(x: Any, y: Any, model: keras.Model = model, opt: keras.Optimizer = opt) -> Any:
                with tf.GradientTape() as tape:
                    logits = model(x, training=True)
                    logits = tf.cast(logits, tf.float32)
                    task = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))
                    loss = ib_loss(task, model, beta=BETA, n_train=N_TRAIN)
                grads = tape.gradient(loss, model.trainable_variables)
                opt.apply_gradients(zip(grads, model.trainable_variables))
                return loss

            fn = tf.function(step, jit_compile=True) if compiled else step
            steps[method] = lambda fn=fn: fn(x, y)
        c = compare(steps, repeats=s.throughput_repeats, warmup=s.throughput_warmup, sync=_sync, min_sample_s=0.0)
    mode = ("compiled" if compiled else "eager") + ("-bf16" if mixed else "")
    return row(
        BACKEND,
        device,
        "throughput",
        net,
        mode,
        images_per_s={k: 1e3 * batch / c.median_ms(k) for k in steps},
        times_ms={k: c.median_ms(k) for k in steps},
        ratios={
            "information/none": c.ratio("information", "none"),
            "information/binary": c.ratio("information", "binary"),
            "cheap/binary": c.ratio("cheap", "binary"),
        },
        note="ratios are of step times (above 1: slower)",
    )


def run(s: Settings, log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    if s.threads:
        tf.config.threading.set_intra_op_parallelism_threads(s.threads)
        tf.config.threading.set_inter_op_parallelism_threads(s.threads)
    rows: list[dict[str, Any]] = []
    for device in devices():
        for case in ("linear", "conv") if {"layer_train", "layer_eval", "memory"} & set(s.kinds) else ():
            for compiled in (False, True):
                mode = "compiled" if compiled else "eager"
                if compiled and not s.compile:
                    continue
                for kind, fn in (("layer_train", layer_train), ("layer_eval", layer_eval)):
                    if kind not in s.kinds:
                        continue
                    log(f"tensorflow {device} {kind} {case} {mode}")
                    try:
                        rows.append(fn(case, s, device, compiled))
                    except Exception as err:  # an XLA failure must not lose the other rows
                        if not compiled:
                            raise
                        rows.append(skipped(BACKEND, device, kind, case, mode, f"{type(err).__name__}: {err}"[:300]))
            if "memory" in s.kinds:
                rows.append(memory(case, s, device))
        for net in ("mlp", "allcnn") if "throughput" in s.kinds else ():
            # Eager Keras training is not how TF is run for throughput; tf.function+XLA is (--no-compile: eager).
            log(f"tensorflow {device} throughput {net}")
            rows.append(throughput(net, s, device, compiled=s.compile))
        if "throughput" in s.kinds and s.mixed_precision_row(device):
            log(f"tensorflow {device} throughput allcnn bf16")
            rows.append(throughput("allcnn", s, device, compiled=s.compile, mixed=True))
        if "ladder" in s.kinds:
            log(f"tensorflow {device} ladder mlp")
            rows.append(ladder_mlp.tensorflow_row(s, device, compiled=s.compile))
    return rows


def info() -> dict[str, Any]:
    out: dict[str, Any] = {
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__},
        "threads": tf.config.threading.get_intra_op_parallelism_threads() or "default",
    }
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        out["gpu"] = tf.config.experimental.get_device_details(gpus[0]).get("device_name", gpus[0].name)
    return out
