"""The benchmark suite runs end to end (``python -m benchmarks --tiny``) and reports every row it promises."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

from idrop.conformance._backends import required

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # benchmarks/ is a folder of the repository, not part of the installed package
    sys.path.insert(0, str(ROOT))

from _hang import HANG_S  # noqa: E402

from benchmarks._settings import all_finite_positive  # noqa: E402
from benchmarks._timing import compare  # noqa: E402

CASES = ("linear", "conv")
NETS = ("mlp", "allcnn")
FRAMEWORKS = {
    "torch": ("torch",),
    "tensorflow": ("tensorflow", "keras"),
    "jax": ("jax", "flax", "optax"),
    "keras[jax]": ("keras", "jax"),  # idrop.backends.keras, one worker per Keras backend
    "keras[torch]": ("keras", "torch"),
}


def expected_ids(backend: str) -> set[str]:
    """Rows ``--tiny`` (no torch.compile, no XLA for TF; jax.jit always) must produce on the CPU."""
    if backend.startswith("keras["):  # the Keras training step against its floor; JAX jits, torch eager
        mode = "compiled" if backend == "keras[jax]" else "eager"
        return {f"{backend}/cpu/keras_train/{case}/{mode}" for case in CASES}
    layer_modes = ("eager", "compiled") if backend == "jax" else ("eager",)
    memory = {"torch": ("saved_tensors",), "tensorflow": ("saved_tensors",), "jax": ("residuals", "xla_temp")}[backend]
    net_mode = "compiled" if backend == "jax" else "eager"
    ids = {
        f"{backend}/cpu/{kind}/{case}/{mode}"
        for kind in ("layer_train", "layer_eval")
        for case in CASES
        for mode in layer_modes
    }
    ids |= {f"{backend}/cpu/memory/{case}/{m}" for case in CASES for m in memory}
    ids |= {f"{backend}/cpu/throughput/{net}/{net_mode}" for net in NETS}
    ids.add(f"{backend}/cpu/throughput/allcnn/{net_mode}-bf16")  # the GPU target's row, smoke-tested here
    ids.add(f"{backend}/cpu/ladder/mlp/{net_mode}")
    return ids


def installed(backend: str) -> bool:
    return all(importlib.util.find_spec(m) is not None for m in FRAMEWORKS[backend])


def test_tiny_run_has_every_row_and_writes_its_report(tmp_path: Path) -> None:
    """One test, not one per backend: under pytest-xdist a module fixture shared by several tests runs
    once on each worker that gets one of them, and this run takes minutes."""
    out = tmp_path / "bench"
    cmd = [sys.executable, "-m", "benchmarks", "--tiny", "--backend", "all", "--out", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=HANG_S)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((out / "latest.json").read_text())
    rows = {r["id"]: r for r in result["rows"]}
    for backend in FRAMEWORKS:
        if not installed(backend):
            assert backend not in required(), (
                f"backend {backend!r} is required (IDROP_REQUIRE_BACKENDS) but not installed"
            )
            assert result["errors"][backend] == "not installed"
            continue
        assert backend not in result["errors"], result["errors"].get(backend)
        missing = expected_ids(backend) - set(rows)
        assert not missing, f"rows missing: {sorted(missing)}"
        for rid in expected_ids(backend):
            r = rows[rid]
            assert "skipped" not in r, f"{rid}: {r.get('skipped')}"
            assert all_finite_positive(r), f"{rid}: {r}"
    for key in ("command", "machine", "versions", "settings"):
        assert result[key], key
    assert result["machine"]["cores"] >= 1 and result["machine"]["cpu"]
    assert result["settings"]["tiny"] is True and result["settings"]["compile"] is False
    md = (out / "latest.md").read_text()
    for heading in ("Layer training step", "Evaluation forward pass", "Memory", "Training throughput", "`ladder`"):
        assert heading in md


def test_compare_measures_ratio_of_paired_rounds() -> None:
    c = compare(
        {"slow": lambda: time.sleep(0.004), "fast": lambda: time.sleep(0.002)}, repeats=3, warmup=1, min_sample_s=0.0
    )
    assert len(c.times["slow"]) == len(c.times["fast"]) == 3
    assert 1.3 < c.ratio("slow", "fast") < 3.0
