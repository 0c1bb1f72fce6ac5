"""Sizes, repeats and targets of the suite, and the result rows every backend returns.

A result row is a plain dict (JSON-ready) with an ``id`` of the form
``backend/device/kind/case/mode``. ``kind`` is one of :data:`KINDS`. Numbers live under
``times_ms`` / ``bytes`` / ``images_per_s`` (per variant) and ``ratios``; ``targets``
holds the upper bounds the issue sets for some ratios. A row that could not be
measured has ``skipped`` (the reason) instead of numbers.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

#: ladder: the MLP step with dropout variants that add one piece at a time (benchmarks/ladder_mlp.py).
KINDS = ("layer_train", "layer_eval", "memory", "throughput", "keras_train", "ladder")

# Upper bounds on ratios (CPU targets of the issue "Speed and memory").
TARGETS = {
    "layer_train": {"idrop/floor": 1.10, "idrop/naive": 1.00},
    "layer_eval": {"idrop/plain": 1.05},
    # cheap_remat: InfoDropout(alpha_rank=r, recompute_alpha=True) (issue 17, "Conv memory"); the full
    # alpha map cannot reach 0.6 (x + h + a = 0.667x naive, benchmarks/README.md).
    "memory": {"idrop/naive": 0.60, "cheap_remat/naive": 0.60},
    # Issue "Keras 3 on every Keras backend": a Keras training step on the JAX and torch backends.
    "keras_train": {"idrop/floor": 1.30},
}
# GPU targets: layer step <= 1.15x the floor and >= 1.5x faster than naive; All-CNN-32 with
# Information Dropout <= 1.35x binary dropout under bfloat16 and compilation (the *-bf16 rows).
GPU_TARGETS = {
    "layer_train": {"idrop/floor": 1.15, "idrop/naive": round(1 / 1.5, 4)},
    "throughput": {"information/binary": 1.35},
}


# The cheap alpha branch (InfoDropout(alpha_rank=r), issue 17): whole-network step time against binary
# dropout, on every device: the MLP <= 1.25x, All-CNN-32 <= 1.10x.
CHEAP_TARGETS = {"mlp": {"cheap/binary": 1.25}, "allcnn": {"cheap/binary": 1.10}}
#: The throughput rows' variants: no dropout, binary dropout 0.5, Information Dropout with the
#: paper's full alpha map and with the cheap alpha branch.
THROUGHPUT_VARIANTS = ("none", "binary", "information", "cheap")


def targets_for(kind: str, device: str, case: str, mode: str) -> dict[str, float]:
    """The upper bounds that apply to a row (none for rows the issue sets no target for)."""
    cheap = CHEAP_TARGETS.get(case, {}) if kind == "throughput" else {}
    if device == "cpu":
        return {**TARGETS.get(kind, {}), **cheap}
    if kind == "throughput" and not (case == "allcnn" and mode.endswith("bf16")):
        return cheap
    return {**GPU_TARGETS.get(kind, {}), **cheap}


@dataclasses.dataclass(frozen=True)
class Settings:
    """Problem sizes and repeat counts; :meth:`tiny` gives the CI smoke-test version."""

    # InfoDropout(Linear in->out) at batch `lin_batch`.
    lin_batch: int = 128
    lin_in: int = 784
    lin_out: int = 1024
    # InfoDropout(Conv2d ch->ch, 3x3, stride 2, padding 1) on hw x hw inputs.
    conv_batch: int = 32
    conv_ch: int = 96
    conv_hw: int = 32
    # MNIST MLP 784-W-W-W-10 and All-CNN-32 (channel widths c1, c2).
    mlp_batch: int = 128
    mlp_in: int = 784
    mlp_width: int = 1024
    cnn_batch: int = 32
    cnn_hw: int = 32
    cnn_c1: int = 96
    cnn_c2: int = 192
    # Rank of the cheap alpha branch (the `cheap` variant of the throughput rows): 1/32 of the MLP's
    # width, 1/6 and 1/12 of All-CNN-32's two noisy convs.
    mlp_alpha_rank: int = 32
    cnn_alpha_rank: int = 16
    # Rounds of the round-robin timing (see _timing.compare).
    repeats: int = 11
    throughput_repeats: int = 5
    warmup: int = 3
    throughput_warmup: int = 2
    compile: bool = True
    tiny: bool = False
    # CPU threads per framework (0: the framework's default, all cores). One thread by default: on a
    # shared, oversubscribed machine multi-threaded OpenMP regions stall at their barriers whenever a
    # sibling thread is descheduled (a tiny conv step went from 0.2 ms to 60 ms), which swamps the ratios.
    threads: int = 1
    # Which kinds of rows to measure (`--only`): all of KINDS by default.
    kinds: tuple[str, ...] = KINDS

    @classmethod
    def tiny_settings(cls, **overrides: Any) -> Settings:
        small = {
            "lin_batch": 8,
            "lin_in": 32,
            "lin_out": 64,
            "conv_batch": 2,
            "conv_ch": 8,
            "conv_hw": 8,
            "mlp_batch": 8,
            "mlp_in": 32,
            "mlp_width": 32,
            "cnn_batch": 2,
            "cnn_hw": 8,
            "cnn_c1": 8,
            "cnn_c2": 16,
            "mlp_alpha_rank": 4,
            "cnn_alpha_rank": 4,
            "repeats": 2,
            "throughput_repeats": 1,
            "warmup": 1,
            "throughput_warmup": 1,
            "compile": False,
            "tiny": True,
        }
        return cls(**{**small, **overrides})

    def mixed_precision_row(self, device: str) -> bool:
        """Whether to measure the All-CNN-32 bfloat16 row (the GPU target's): on accelerators, and on
        the CPU only in the ``--tiny`` smoke test."""
        return device != "cpu" or self.tiny

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def row(backend: str, device: str, kind: str, case: str, mode: str, **fields: Any) -> dict[str, Any]:
    """A result row; ``ratios`` are checked against :func:`targets_for` into ``met``."""
    out = {
        "id": f"{backend}/{device}/{kind}/{case}/{mode}",
        "backend": backend,
        "device": device,
        "kind": kind,
        "case": case,
        "mode": mode,
        **fields,
    }
    targets = {k: v for k, v in targets_for(kind, device, case, mode).items() if k in fields.get("ratios", {})}
    if targets:
        out["targets"] = targets
        out["met"] = {k: bool(fields["ratios"][k] <= v) for k, v in targets.items()}
    return out


def skipped(backend: str, device: str, kind: str, case: str, mode: str, reason: str) -> dict[str, Any]:
    """A row that could not be measured, with the reason."""
    return {
        "id": f"{backend}/{device}/{kind}/{case}/{mode}",
        "backend": backend,
        "device": device,
        "kind": kind,
        "case": case,
        "mode": mode,
        "skipped": reason,
    }


def numbers(r: dict[str, Any]) -> list[float]:
    """Every measured number of a row (for checks: all must be finite and positive)."""
    vals: list[float] = []
    for key in ("times_ms", "bytes", "images_per_s", "ratios"):
        vals.extend(float(v) for v in r.get(key, {}).values())
    return vals


def all_finite_positive(r: dict[str, Any]) -> bool:
    vals = numbers(r)
    return bool(vals) and all(math.isfinite(v) and v > 0 for v in vals)
