"""Machine description and the Markdown rendering of ``latest.json``."""

from __future__ import annotations

import itertools
import os
import platform
import sys
from importlib import metadata
from typing import Any

from benchmarks._settings import CHEAP_TARGETS, GPU_TARGETS, TARGETS, THROUGHPUT_VARIANTS
from benchmarks.ladder_mlp import ADDS as LADDER_ADDS
from benchmarks.ladder_mlp import VARIANTS as LADDER_VARIANTS


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _loadavg() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def machine() -> dict[str, Any]:
    cores = os.cpu_count()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    return {
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpu": _cpu_model(),
        "cores": cores,
        "usable_cores": usable,
        "loadavg_start": _loadavg(),
    }


def base_versions() -> dict[str, str]:
    out = {}
    for dist in ("idrop", "numpy"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


NOTES = (
    "CPU runs use `--threads` threads per framework (default 1): on a shared, oversubscribed machine "
    "multi-threaded OpenMP regions stall at barriers whenever a sibling thread is descheduled.",
    "torch `compiled`: `torch.compile(dynamic=False)` with `torch._inductor.config.fallback_random = True` "
    "(inductor's own CPU normals are ~12x slower than ATen's and would swamp every variant alike); static "
    "shapes because the adapter's `torch.randn(shape, generator=None, ...)` fails under symbolic shapes.",
    "tensorflow floor: `tf.random.stateless_normal(alg='philox')` seeded from a Keras SeedGenerator; the "
    "default `keras.random.normal` (alg auto_select), which the adapter and Keras' Dropout use, is ~40x "
    "slower under XLA on the CPU.",
    "jax `eager`: op-by-op dispatch (no jit), for completeness; `compiled` is `jax.jit` of a pure function of "
    "the `nnx.split` state (Flax's hot-loop pattern; `nnx.jit` adds Python graph flattening on every call, "
    "more for bigger module trees). Networks: `nnx.jit` "
    "(jax), `tf.function(jit_compile=True)` (tensorflow unless --no-compile), eager (torch).",
)


def _f(v: float, digits: int = 2) -> str:
    return f"{v:.{digits}f}"


def _ratio(r: dict[str, Any], key: str) -> str:
    """``1.23`` with a mark when the ratio has a target: ok or MISS."""
    if key not in r.get("ratios", {}):
        return "-"
    text = _f(r["ratios"][key])
    if key in r.get("met", {}):
        text += " ok" if r["met"][key] else " **MISS**"
    return text


#: The variants of the memory table, in its column order.
MEMORY_VARIANTS = ("idrop", "naive", "floor", "cheap", "cheap_remat")


def _mem_key(r: dict[str, Any], key: str) -> str:
    """``key``, or its ``"temp "`` form (XLA scratch rows, reported without a target) when only that is there."""
    return key if key in r.get("ratios", {}) or f"temp {key}" not in r.get("ratios", {}) else f"temp {key}"


def _table(header: list[str], lines: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return out + ["| " + " | ".join(line) + " |" for line in lines]


def _where(r: dict[str, Any]) -> list[str]:
    return [r["backend"], r["device"], r["case"], r["mode"]]


def markdown(result: dict[str, Any]) -> str:
    rows = [r for r in result["rows"] if "skipped" not in r]
    by_kind = {k: [r for r in rows if r["kind"] == k] for k in ("layer_train", "layer_eval", "memory", "throughput")}
    by_kind["keras_train"] = [r for r in rows if r["kind"] == "keras_train"]
    m = result["machine"]
    t, g = TARGETS, GPU_TARGETS
    out = [
        "# idrop benchmarks",
        "",
        f"Command: `{result['command']}`  ",
        f"Date: {result['date']}  ",
        f"Machine: {m['cpu']}, {m['cores']} cores ({m['usable_cores']} usable), {m['platform']}, "
        f"Python {m['python']}; load average at start {m['loadavg_start']}, at end {m.get('loadavg_end')}  ",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in result["versions"].items()) + "  ",
        f"GPUs: {result.get('gpus') or 'none'}  ",
        "Settings: " + ", ".join(f"{k}={v}" for k, v in result["settings"].items()),
        "",
        "Times are medians over rounds; every ratio is the median of per-round ratios of variants timed "
        "round-robin in the same process (`benchmarks/_timing.py`). Targets (CPU): "
        f"train idrop/floor <= {t['layer_train']['idrop/floor']} and idrop/naive <= "
        f"{t['layer_train']['idrop/naive']}; eval idrop/plain <= {t['layer_eval']['idrop/plain']}; "
        f"memory idrop/naive <= {t['memory']['idrop/naive']}. Targets (GPU): train idrop/floor <= "
        f"{g['layer_train']['idrop/floor']} and idrop/naive <= {g['layer_train']['idrop/naive']} (1.5x faster); "
        f"All-CNN-32 under bfloat16 and compilation (`*-bf16` rows), time information/binary <= "
        f"{g['throughput']['information/binary']}.",
        "",
        *[f"- {n}" for n in NOTES],
        "",
        "## Layer training step (forward + backward, KL in the loss)",
        "",
        "floor: one map with both weight matrices stacked + the same number of normal draws; naive: "
        "two layers and eager element-wise ops (`benchmarks/naive_*.py`); binary: the map + the framework's "
        "dropout.",
        "",
    ]
    out += _table(
        [
            "backend",
            "device",
            "layer",
            "mode",
            "idrop ms",
            "floor ms",
            "naive ms",
            "binary ms",
            "idrop/floor",
            "idrop/naive",
            "idrop/binary",
            "cheap_remat/cheap",
        ],
        [
            _where(r)
            + [_f(r["times_ms"][k]) for k in ("idrop", "floor", "naive", "binary")]
            + [_ratio(r, k if "/" in k else f"idrop/{k}") for k in ("floor", "naive", "binary", "cheap_remat/cheap")]
            for r in by_kind["layer_train"]
        ],
    )
    out += ["", "## Evaluation forward pass (against the plain map + activation)", ""]
    out += _table(
        ["backend", "device", "layer", "mode", "idrop ms", "plain ms", "idrop/plain"],
        [
            [*_where(r), _f(r["times_ms"]["idrop"], 3), _f(r["times_ms"]["plain"], 3), _ratio(r, "idrop/plain")]
            for r in by_kind["layer_eval"]
        ],
    )
    out += ["", "## Memory of one training step", ""]
    out += _table(
        [
            "backend",
            "device",
            "layer",
            "measure",
            "idrop KiB",
            "naive KiB",
            "floor KiB",
            "cheap KiB",
            "cheap_remat KiB",
            "idrop/naive",
            "idrop/floor",
            "cheap/naive",
            "cheap_remat/naive",
        ],
        [
            _where(r)
            + [_f(r["bytes"][k] / 1024, 1) if k in r["bytes"] else "-" for k in MEMORY_VARIANTS]
            + [_ratio(r, _mem_key(r, k)) for k in ("idrop/naive", "idrop/floor", "cheap/naive", "cheap_remat/naive")]
            for r in by_kind["memory"]
        ],
    )
    out += [
        "",
        "cheap: `InfoDropout(alpha_rank=r)`; cheap_remat: the same with `recompute_alpha=True` (`up` and the "
        "kernel recomputed in backward; r = mlp_alpha_rank for the linear layer, cnn_alpha_rank for the conv).",
    ]
    notes = sorted({f"`{r['mode']}`: {r['note']}" for r in by_kind["memory"] if "note" in r})
    out += [""] + [f"- {n}" for n in notes]
    out += ["", "## Training throughput (images/s, whole network, optimiser step included)", ""]
    out += _table(
        [
            "backend",
            "device",
            "network",
            "mode",
            "none",
            "binary 0.5",
            "information",
            "cheap alpha",
            "time information/none",
            "time information/binary",
            "time cheap/binary",
        ],
        [
            _where(r)
            + [_f(r["images_per_s"][k], 1) if k in r["images_per_s"] else "-" for k in THROUGHPUT_VARIANTS]
            + [_ratio(r, "information/none"), _ratio(r, "information/binary"), _ratio(r, "cheap/binary")]
            for r in by_kind["throughput"]
        ],
    )
    if by_kind["keras_train"]:
        out += ["", "## Keras training step on the JAX and torch Keras backends (`idrop.backends.keras`)", ""]
        out += [
            "`model.train_on_batch` (forward, loss with the KL via `add_loss`, gradient, SGD update); floor: the "
            f"map at twice its units + `keras.layers.GaussianDropout`. Target: idrop/floor <= "
            f"{t['keras_train']['idrop/floor']}.",
            "",
        ]
        out += _table(
            ["backend", "device", "layer", "mode", "idrop ms", "floor ms", "idrop/floor"],
            [
                [*_where(r), _f(r["times_ms"]["idrop"]), _f(r["times_ms"]["floor"]), _ratio(r, "idrop/floor")]
                for r in by_kind["keras_train"]
            ],
        )
    ladder = [r for r in rows if r["kind"] == "ladder"]
    if ladder:
        out += ["", "## Where the MLP's cheap/binary time goes (`ladder`)", ""]
        out += [
            "The throughput rows' MLP with variants that add one piece at a time (`benchmarks/ladder_mlp.py`): "
            + "; ".join(f"{v}: {LADDER_ADDS[v]}" for v in LADDER_VARIANTS[1:])
            + ". Each column is the step time over the column before it (binary: ms).",
            "",
        ]
        out += _table(
            ["backend", "device", "network", "mode", "binary ms", *LADDER_VARIANTS[1:], "cheap/binary"],
            [
                [*_where(r), _f(r["times_ms"]["binary"])]
                + [_f(r["ratios"][f"{v}/{a}"], 3) for a, v in itertools.pairwise(LADDER_VARIANTS)]
                + [_f(r["ratios"]["cheap/binary"], 3)]
                for r in ladder
            ],
        )
    out += [
        "",
        f"cheap alpha: Information Dropout with the low-rank alpha branch, `InfoDropout(alpha_rank=r)` "
        f"(r = {result['settings'].get('mlp_alpha_rank')} in the MLP, {result['settings'].get('cnn_alpha_rank')} "
        "in All-CNN-32). Targets: time cheap/binary <= "
        + ", ".join(f"{v['cheap/binary']} ({k})" for k, v in CHEAP_TARGETS.items())
        + ".",
    ]
    skipped = [r for r in result["rows"] if "skipped" in r]
    if skipped or result.get("errors"):
        out += ["", "## Not measured", ""]
        out += [f"- `{r['id']}`: {r['skipped']}" for r in skipped]
        out += [f"- backend `{b}`: {e}" for b, e in result.get("errors", {}).items()]
    misses = [
        f"`{r['id']}` {k} = {r['ratios'][k]:.2f} (target <= {r['targets'][k]})"
        for r in rows
        for k, ok in r.get("met", {}).items()
        if not ok
    ]
    out += ["", "## Targets missed", ""] + ([f"- {x}" for x in misses] or ["- none"])
    return "\n".join(out) + "\n"
