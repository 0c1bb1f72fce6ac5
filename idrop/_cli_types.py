"""Argument types of the command line: every size, rate and fraction is checked at parse time.

A zero or negative size (``--batch-size 0``, ``--k -1``), a NaN learning rate or a
``max_alpha`` outside ``(0, 1]`` is refused by argparse as ``idrop: error: argument
--x: ...`` before anything is loaded or trained, rather than running and exiting 0 or
failing minutes later with a traceback.

Experiments add their own options; :data:`EXPERIMENT_OPTION_TYPES` gives the options they
share by name their checked types (:func:`check_option_types`), so every experiment that
defines ``--batch-size`` gets the same rule without repeating it.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any


def _parse(text: str, kind: type) -> Any:
    try:
        return kind(text)
    except ValueError:
        expected = "an integer" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None


def _checked(kind: type, ok: Callable[[Any], bool], expected: str, name: str) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        value = _parse(text, kind)
        if not (math.isfinite(value) and ok(value)):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    parse.__name__ = name  # argparse names the type in some messages
    return parse


positive_int = _checked(int, lambda v: v >= 1, "an integer >= 1", "positive_int")
nonnegative_int = _checked(int, lambda v: v >= 0, "an integer >= 0", "nonnegative_int")
positive_float = _checked(float, lambda v: v > 0, "a finite number > 0", "positive_float")
nonnegative_float = _checked(float, lambda v: v >= 0, "a finite number >= 0", "nonnegative_float")
# docs/design-notes.md section 1: max_alpha in (0, 1].
max_alpha = _checked(float, lambda v: 0 < v <= 1, "a number in (0, 1]", "max_alpha")


def int_in(low: int, high: int | None = None) -> Callable[[str], int]:
    """An integer in ``[low, high]`` (no upper bound when ``high`` is None)."""
    expected = f"an integer >= {low}" if high is None else f"an integer from {low} to {high}"
    return _checked(int, lambda v: v >= low and (high is None or v <= high), expected, f"int_in_{low}_{high}")


#: Checked types of the options experiments define themselves, by option string. A plain
#: ``int``/``float`` (or no) type is replaced; an experiment's own type function is kept.
EXPERIMENT_OPTION_TYPES: dict[str, Callable[[str], Any]] = {
    "--limit-train": positive_int,
    "--n-train": positive_int,
    "--n-test": positive_int,
    "--batch-size": positive_int,
    "--devices": positive_int,
    "--eval-samples": positive_int,
    "--convs-per-block": positive_int,
    "--threads": positive_int,
    "--show": positive_int,
    "--valid": positive_int,
    "--top-width": positive_int,
    "--lr": positive_float,
    "--k": positive_float,
    "--scale": positive_float,
    "--filter-percentage": positive_float,
    "--beta": nonnegative_float,
    "--betas": nonnegative_float,
    "--weight-decay": nonnegative_float,
    "--max-alpha": max_alpha,
    "--lr-drops": positive_int,  # epochs after which the lr is divided by 10 (cifar10, cluttered)
    "--distractors": nonnegative_int,
    "--canvas": int_in(28),  # an MNIST digit (28 x 28) must fit on the canvas
}


def check_option_types(parser: argparse.ArgumentParser) -> None:
    """Give the options of ``parser`` named in :data:`EXPERIMENT_OPTION_TYPES` their checked type."""
    for action in parser._actions:
        if action.type not in (None, int, float):
            continue
        for option in action.option_strings:
            if option in EXPERIMENT_OPTION_TYPES:
                action.type = EXPERIMENT_OPTION_TYPES[option]
