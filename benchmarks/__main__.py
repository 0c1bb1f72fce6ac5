"""``python -m benchmarks``: run the suite for the chosen backends and write ``latest.{json,md}``."""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import datetime
import importlib.util
import json
import math
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks._report import _loadavg, base_versions, machine, markdown
from benchmarks._settings import KINDS, Settings
from idrop.backends import BACKENDS, keras_label

DEFAULT_OUT = Path(__file__).resolve().parent / "results"
# --tiny proves the code runs: XLA's slow optimisation passes are not worth their compile time there.
TINY_XLA_FLAGS = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"


def _kinds(text: str) -> tuple[str, ...]:
    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    bad = [k for k in kinds if k not in KINDS]
    if not kinds or bad:
        raise argparse.ArgumentTypeError(f"expected kinds from {', '.join(KINDS)}; got {text!r}")
    return kinds


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    p.add_argument("--backend", choices=[*BACKENDS, "all"], default="all", help="default: all")
    p.add_argument("--tiny", action="store_true", help="tiny sizes, 1-2 rounds, no compilation (CI smoke test)")
    p.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="timing rounds of the layer benchmarks (throughput: half as many, at least 1)",
    )
    p.add_argument(
        "--no-compile",
        action="store_true",
        help="skip torch.compile and tf.function(jit_compile=True) (jax.jit always runs)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads per framework, 0 for the framework's default (default 1: stable ratios on a shared machine)",
    )
    p.add_argument(
        "--only",
        type=_kinds,
        default=None,
        metavar="KIND[,KIND]",
        help=f"measure only these kinds of rows ({', '.join(KINDS)}; default: all)",
    )
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    return p.parse_args(argv)


def settings_from(args: argparse.Namespace) -> Settings:
    s = Settings.tiny_settings() if args.tiny else Settings()
    if args.repeats is not None:
        s = dataclasses.replace(s, repeats=max(1, args.repeats), throughput_repeats=max(1, math.ceil(args.repeats / 2)))
    if args.threads is not None:
        s = dataclasses.replace(s, threads=max(0, args.threads))
    if args.no_compile:
        s = dataclasses.replace(s, compile=False)
    if args.only is not None:
        s = dataclasses.replace(s, kinds=args.only)
    return s


#: The Keras backends the ``keras`` rows run on, one worker each (Keras fixes its backend at import);
#: on TensorFlow the Keras layers are the ``tensorflow`` rows' classes, measured there.
KERAS_RUNS = ("jax", "torch")


def _workers(backend: str) -> list[str]:
    """The worker names of a ``--backend``: itself, or ``keras[jax]`` and ``keras[torch]`` for ``keras``."""
    return [keras_label(b) for b in KERAS_RUNS] if backend == "keras" else [backend]


def _installed(backend: str) -> bool:
    deps = {"torch": ["torch"], "tensorflow": ["tensorflow", "keras"], "jax": ["jax", "flax", "optax"]}
    deps |= {keras_label(b): ["keras", b] for b in KERAS_RUNS}
    return all(importlib.util.find_spec(d) is not None for d in deps[backend])


def run_backend(backend: str, s: Settings, tmp: Path) -> dict[str, Any]:
    """Run one backend in a subprocess; return its result or ``{"error": ...}``."""
    settings_path, out_path = tmp / f"{backend}_settings.json", tmp / f"{backend}.json"
    settings_path.write_text(json.dumps(s.as_dict()))
    keras_backend = backend[len("keras[") : -1] if backend.startswith("keras[") else "tensorflow"
    env = {**os.environ, "KERAS_BACKEND": keras_backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
    xla_flags = [env.get("XLA_FLAGS", "")] + ([TINY_XLA_FLAGS] if s.tiny else [])
    if s.threads:  # before the framework starts its thread pools (set again through each framework's API)
        env.update(OMP_NUM_THREADS=str(s.threads), MKL_NUM_THREADS=str(s.threads))
        xla_flags.append(f"--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads={s.threads}")
    env["XLA_FLAGS"] = " ".join(filter(None, xla_flags))
    root = Path(__file__).resolve().parent.parent
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    cmd = [sys.executable, "-m", "benchmarks._worker", backend, str(settings_path), str(out_path)]
    print(f"benchmarks: {backend} ...", file=sys.stderr)
    proc = subprocess.run(cmd, env=env, cwd=root, capture_output=True, text=True)
    for line in proc.stderr.splitlines():  # progress lines only; framework chatter stays out
        if line.startswith("[") and "s] " in line:
            print(f"{backend}: {line}", file=sys.stderr)
    if proc.returncode != 0 or not out_path.exists():
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        return {"error": f"worker exited with {proc.returncode}: {tail}"}
    return json.loads(out_path.read_text())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    s = settings_from(args)
    backends = [w for b in (BACKENDS if args.backend == "all" else [args.backend]) for w in _workers(b)]
    result: dict[str, Any] = {
        "command": shlex.join(
            [Path(sys.executable).name, "-m", "benchmarks", *(sys.argv[1:] if argv is None else argv)]
        ),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "versions": base_versions(),
        "settings": s.as_dict(),
        "backends": {},
        "gpus": {},
        "rows": [],
        "errors": {},
    }
    for backend in backends:
        if not _installed(backend):
            result["errors"][backend] = "not installed"
    todo = [b for b in backends if b not in result["errors"]]
    with tempfile.TemporaryDirectory() as tmp:
        if s.tiny:  # a smoke test: run the backends side by side, its numbers mean nothing anyway
            with concurrent.futures.ThreadPoolExecutor(len(todo) or 1) as pool:
                results = dict(zip(todo, pool.map(lambda b: run_backend(b, s, Path(tmp)), todo)))
        else:  # one after the other: a timing must never share the machine with another backend
            results = {b: run_backend(b, s, Path(tmp)) for b in todo}
        for backend, res in results.items():
            if "error" in res:
                result["errors"][backend] = res["error"]
                continue
            result["rows"].extend(res["rows"])
            result["versions"].update(res["info"]["versions"])
            result["backends"][backend] = {
                "import_s": round(res["import_s"], 2),
                "wall_s": round(res["wall_s"], 1),
                **{k: v for k, v in res["info"].items() if k not in ("versions", "gpu")},
            }
            if "gpu" in res["info"]:
                result["gpus"][backend] = res["info"]["gpu"]
    result["machine"]["loadavg_end"] = _loadavg()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest.json").write_text(json.dumps(result, indent=1) + "\n")
    (args.out / "latest.md").write_text(markdown(result))
    print(f"benchmarks: wrote {args.out / 'latest.md'} and latest.json", file=sys.stderr)
    return 1 if any(e != "not installed" for e in result["errors"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
