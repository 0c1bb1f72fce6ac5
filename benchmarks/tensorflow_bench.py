"""TensorFlow/Keras 3 benchmarks: layer step (eager, ``tf.function(jit_compile=True)``), eval forward,
network throughput. Memory: GPU peak only (see :data:`MEMORY_SKIP`).

Devices: the CPU always, plus the first GPU when TensorFlow sees one. Data layout NHWC.
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from collections.abc import Callable
from typing import Any

import keras
import tensorflow as tf

from benchmarks._settings import Settings, row, skipped
from benchmarks._timing import compare
from benchmarks.naive_tensorflow import NaiveInfoDropout
from idrop.backends.tensorflow import InfoDropout, ib_loss

BACKEND = "tensorflow"
N_TRAIN = 60_000
BETA = 1.0
MEMORY_SKIP = (
    "TensorFlow has no CPU counterpart of torch's saved_tensors_hooks: GradientTape keeps its tensors "
    "internally, and tf.config.experimental.get_memory_info works on GPUs only"
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
    return ((lambda out: keras.layers.Conv2D(out, 3, strides=2, padding="same")), s.conv_ch,
            tf.random.normal((s.conv_batch, s.conv_hw, s.conv_hw, s.conv_ch)))


def _losses(case: str, s: Settings) -> tuple[dict[str, Callable], dict[str, list], Any]:
    """Forward-to-``(loss, aux)`` functions of the four variants, and their trainable variables."""
    keras.utils.set_random_seed(0)
    make, out, x = _problem(case, s)
    idrop = InfoDropout(make(out), activation="relu", seed=0)
    floor = make(2 * out)
    floor_seed = keras.random.SeedGenerator(0)
    naive = NaiveInfoDropout(make(out), make(out))
    binary, dropout = make(out), keras.layers.Dropout(0.5, seed=0)

    def f_idrop(x: Any) -> tuple[Any, Any]:
        z = idrop(x, training=True)
        return ib_loss(tf.reduce_mean(z), idrop, beta=BETA, n_train=N_TRAIN), ()

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

    fns = {"idrop": f_idrop, "floor": f_floor, "naive": f_naive, "binary": f_binary}
    for fn in fns.values():  # build every layer
        fn(x)
    variables = {"idrop": idrop.trainable_variables, "floor": floor.trainable_variables,
                 "naive": naive.trainable_variables, "binary": binary.trainable_variables}
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
    return row(BACKEND, device, "layer_train", case, "compiled" if compiled else "eager",
               times_ms={k: c.median_ms(k) for k in steps},
               ratios={f"idrop/{k}": c.ratio("idrop", k) for k in ("floor", "naive", "binary")},
               spread={f"idrop/{k}": c.ratio_spread("idrop", k) for k in ("floor", "naive", "binary")})


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
        c = compare({k: (lambda fn=fn: fn(x)) for k, fn in fns.items()}, repeats=s.repeats, warmup=s.warmup,
                    sync=_sync)
    return row(BACKEND, device, "layer_eval", case, "compiled" if compiled else "eager",
               times_ms={k: c.median_ms(k) for k in fns},
               ratios={"idrop/plain": c.ratio("idrop", "plain")},
               spread={"idrop/plain": c.ratio_spread("idrop", "plain")})


def memory(case: str, s: Settings, device: str) -> dict[str, Any]:
    if device != "gpu":
        return skipped(BACKEND, device, "memory", case, "saved_tensors", MEMORY_SKIP)
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
    return row(BACKEND, device, "memory", case, "gpu_peak", bytes=peak,
               ratios={"idrop/naive": peak["idrop"] / peak["naive"]},
               note="tf.config.experimental.get_memory_info peak over one eager step, above the memory in use before")


# ---------------------------------------------------------------- networks --


def _hidden(method: str, layer: keras.Layer, norm: keras.Layer | None = None) -> list[keras.Layer]:
    if method == "information":
        return [InfoDropout(layer, activation="relu", norm=norm, seed=0)]
    mods = [layer] + ([norm] if norm is not None else []) + [keras.layers.ReLU()]
    return mods + ([keras.layers.Dropout(0.5, seed=0)] if method == "binary" else [])


def mnist_mlp(method: str, s: Settings) -> keras.Model:
    layers: list[keras.Layer] = []
    for _ in range(3):
        layers += _hidden(method, keras.layers.Dense(s.mlp_width))
    return keras.Sequential([keras.Input((s.mlp_in,)), *layers, keras.layers.Dense(10)])


def all_cnn_32(method: str, s: Settings) -> keras.Model:
    c1, c2 = s.cnn_c1, s.cnn_c2

    def conv(c: int, k: int = 3, stride: int = 1, drop: bool = False) -> list[keras.Layer]:
        layer = keras.layers.Conv2D(c, k, strides=stride, padding="same")
        return _hidden(method if drop else "none", layer, keras.layers.BatchNormalization())

    return keras.Sequential([
        keras.Input((s.cnn_hw, s.cnn_hw, 3)), *conv(c1), *conv(c1), *conv(c1, stride=2, drop=True),
        *conv(c2), *conv(c2), *conv(c2, stride=2, drop=True), *conv(c2), *conv(c2, k=1),
        keras.layers.Conv2D(10, 1), keras.layers.GlobalAveragePooling2D(),
    ])


def throughput(net: str, s: Settings, device: str, compiled: bool) -> dict[str, Any]:
    with tf.device(_tf_device(device)):
        keras.utils.set_random_seed(0)
        if net == "mlp":
            build, batch, x = mnist_mlp, s.mlp_batch, tf.random.normal((s.mlp_batch, s.mlp_in))
        else:
            build, batch = all_cnn_32, s.cnn_batch
            x = tf.random.normal((batch, s.cnn_hw, s.cnn_hw, 3))
        y = tf.random.uniform((batch,), 0, 10, dtype=tf.int32)
        steps = {}
        for method in ("none", "binary", "information"):
            model = build(method, s)
            opt = keras.optimizers.SGD(learning_rate=1e-3, momentum=0.9)
            opt.build(model.trainable_variables)

            def step(x: Any, y: Any, model: keras.Model = model, opt: keras.Optimizer = opt) -> Any:
                with tf.GradientTape() as tape:
                    logits = model(x, training=True)
                    task = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))
                    loss = ib_loss(task, model, beta=BETA, n_train=N_TRAIN)
                grads = tape.gradient(loss, model.trainable_variables)
                opt.apply_gradients(zip(grads, model.trainable_variables))
                return loss

            fn = tf.function(step, jit_compile=True) if compiled else step
            steps[method] = lambda fn=fn: fn(x, y)
        c = compare(steps, repeats=s.throughput_repeats, warmup=s.throughput_warmup, sync=_sync, min_sample_s=0.0)
    return row(BACKEND, device, "throughput", net, "compiled" if compiled else "eager",
               images_per_s={k: 1e3 * batch / c.median_ms(k) for k in steps},
               times_ms={k: c.median_ms(k) for k in steps},
               ratios={"information/none": c.ratio("information", "none"),
                       "information/binary": c.ratio("information", "binary")},
               note="ratios are of step times (above 1: slower)")


def run(s: Settings, log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    if s.threads:
        tf.config.threading.set_intra_op_parallelism_threads(s.threads)
        tf.config.threading.set_inter_op_parallelism_threads(s.threads)
    rows: list[dict[str, Any]] = []
    for device in devices():
        for case in ("linear", "conv"):
            for compiled in (False, True):
                mode = "compiled" if compiled else "eager"
                if compiled and not s.compile:
                    continue
                for kind, fn in (("layer_train", layer_train), ("layer_eval", layer_eval)):
                    log(f"tensorflow {device} {kind} {case} {mode}")
                    try:
                        rows.append(fn(case, s, device, compiled))
                    except Exception as err:  # an XLA failure must not lose the other rows
                        if not compiled:
                            raise
                        rows.append(skipped(BACKEND, device, kind, case, mode, f"{type(err).__name__}: {err}"[:300]))
            rows.append(memory(case, s, device))
        for net in ("mlp", "allcnn"):
            # Eager Keras training is not how TF is run for throughput; tf.function+XLA is (--no-compile: eager).
            log(f"tensorflow {device} throughput {net}")
            rows.append(throughput(net, s, device, compiled=s.compile))
    return rows


def info() -> dict[str, Any]:
    out: dict[str, Any] = {"versions": {"tensorflow": tf.__version__, "keras": keras.__version__},
                           "threads": tf.config.threading.get_intra_op_parallelism_threads() or "default"}
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        out["gpu"] = tf.config.experimental.get_device_details(gpus[0]).get("device_name", gpus[0].name)
    return out
