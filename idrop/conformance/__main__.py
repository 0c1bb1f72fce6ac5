"""``python -m idrop.conformance``: run the suite and print one row per case.

Columns: backend, framework version, case, examples run, result. Extra
arguments go to pytest (for example ``-x`` or ``-k gradients``). The exit code
is pytest's (the largest over the runs). The Keras adapter runs here on this process's Keras
backend and in one subprocess per other Keras backend (:mod:`._keras_runs`); the table names
them ``keras[tensorflow]``, ``keras[jax]``, ``keras[torch]``.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import pytest

from . import _report


class _Collector:
    """A pytest plugin that remembers the outcome and example count of each test."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str, int, str]] = []
        self._before = 0

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Any:
        self._before = sum(_report.EXAMPLES.values())
        return (yield)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo) -> Any:
        report = yield
        if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
            harness = getattr(item, "callspec", None) and item.callspec.params.get("harness")
            value = getattr(harness, "value", "core") if harness is not None else "core"
            case = item.name.replace(f"[{value}-", "[").replace(f"[{value}]", "")
            backend = _label(value)
            examples = sum(_report.EXAMPLES.values()) - self._before if report.when == "call" else 0
            self.rows.append(
                (backend, _version(backend), f"{item.module.__name__.split('.')[-1]}::{case}", examples, report.outcome)
            )
        return report


def _label(value: str) -> str:
    from . import _backends

    return value if value == "core" else _backends.label(value)


def _version(backend: str) -> str:
    from . import _backends

    if backend == "core":
        return "numpy reference"
    try:
        return _backends.load(_backends.Backend(backend.split("[")[0])).framework
    except (ImportError, ValueError):
        return "not installed"


def main(argv: list[str] | None = None) -> int:
    from . import _backends

    try:
        _backends.check_environment()  # a typo in a backend list must not pass silently
    except ValueError as err:
        print(f"python -m idrop.conformance: {err}", file=sys.stderr)
        return int(pytest.ExitCode.USAGE_ERROR)
    from . import _keras_runs

    collector = _Collector()
    args = ["--pyargs", "idrop.conformance", "-q", "-p", "no:cacheprovider", *(argv or [])]
    code = int(pytest.main(args, plugins=[collector]))
    rows_file = os.environ.get(_keras_runs.ROWS_VAR)
    if rows_file:  # a child run of another Keras backend: the parent prints the table
        with open(rows_file, "w") as fh:
            json.dump(collector.rows, fh)
        return code
    for keras_backend in _keras_runs.others():
        child_code, rows = _keras_runs.run(keras_backend, list(argv or []))
        collector.rows.extend(rows)
        code = max(code, child_code)
    widths = [17, 22, 64, 8, 7]
    header = ("backend", "version", "case", "examples", "result")
    print()
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    for row in sorted(collector.rows):
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths)))
    by_backend: dict[str, list[str]] = {}
    for backend, *_, outcome in collector.rows:
        by_backend.setdefault(backend, []).append(outcome)
    for backend, outcomes in sorted(by_backend.items()):
        counts = {o: outcomes.count(o) for o in sorted(set(outcomes))}
        print(f"{backend}: " + ", ".join(f"{n} {o}" for o, n in counts.items()))
    return int(code)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
