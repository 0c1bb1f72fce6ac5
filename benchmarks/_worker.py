"""One backend's benchmarks in a process of its own: ``python -m benchmarks._worker BACKEND SETTINGS.json OUT.json``.

Each backend runs in a fresh process so that one framework's thread pools, compiler
workers and allocator never run beside another's timings. Progress goes to stderr.
"""

from __future__ import annotations

import importlib
import json
import sys
import time

from benchmarks._settings import Settings

MODULES = {
    "torch": "benchmarks.torch_bench",
    "tensorflow": "benchmarks.tensorflow_bench",
    "jax": "benchmarks.jax_bench",
    "keras": "benchmarks.keras_bench",  # on the Keras backend of KERAS_BACKEND
}


def main(argv: list[str]) -> int:
    backend, settings_path, out_path = argv
    with open(settings_path) as fh:
        settings = Settings(**json.load(fh))
    t0 = time.perf_counter()
    mod = importlib.import_module(MODULES[backend.split("[")[0]])  # keras[jax] -> keras
    import_s = time.perf_counter() - t0

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t0:7.1f}s] {msg}", file=sys.stderr, flush=True)

    rows = mod.run(settings, log=log)
    result = {"rows": rows, "info": mod.info(), "import_s": import_s, "wall_s": time.perf_counter() - t0}
    with open(out_path, "w") as fh:
        json.dump(result, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
