"""Per-run progress: a tqdm bar on a terminal, one plain line per epoch in a log.

tqdm is imported only when a bar is shown, so a batch job (stderr not a TTY) or a
machine without tqdm gets readable log lines instead of carriage-return noise.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any, TextIO

# Shown first, in this order; any other metric follows.
_FIRST = ("loss", "kl", "error", "train_error", "test_error")


def format_metrics(metrics: Mapping[str, Any]) -> dict[str, str]:
    """The metrics as short strings (4 significant digits), loss, KL and error first."""
    keys = [k for k in _FIRST if k in metrics] + [k for k in metrics if k not in _FIRST]
    out = {}
    for k in keys:
        v = metrics[k]
        out[k] = f"{v:.4g}" if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v)
    return out


class EpochProgress:
    r"""Progress over the epochs of one run.

    Args:
        total: Number of epochs of the run.
        initial: Epochs already done (when resuming).
        desc: Label, such as the run's name.
        enable: False silences everything.
        stream: Where the bar goes (default ``sys.stderr``); plain lines go to
            ``sys.stdout`` unless a stream is given.

    Example:
        >>> import io
        >>> out = io.StringIO()
        >>> with EpochProgress(2, desc="vib_w1_s0", stream=out) as p:
        ...     p.update({"loss": 0.51234, "kl": 2.0, "error": 0.1})
        >>> out.getvalue()
        'vib_w1_s0 epoch 1/2 loss=0.5123 kl=2 error=0.1\n'
    """

    def __init__(
        self,
        total: int,
        *,
        initial: int = 0,
        desc: str = "",
        enable: bool = True,
        stream: TextIO | None = None,
    ) -> None:
        self.total, self.n, self.desc, self.enable = total, initial, desc, enable
        self._stream = stream
        self._bar = None
        bar_stream = stream if stream is not None else sys.stderr
        if enable and getattr(bar_stream, "isatty", lambda: False)():
            try:
                from tqdm import tqdm  # lazy: not needed for batch jobs
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self._bar = tqdm(
                    total=total,
                    initial=initial,
                    desc=desc,
                    file=bar_stream,
                    dynamic_ncols=True,
                    leave=True,
                )

    def update(self, metrics: Mapping[str, Any]) -> None:
        """Advance one epoch and show its metrics."""
        self.n += 1
        shown = format_metrics(metrics)
        if self._bar is not None:
            self._bar.set_postfix(shown, refresh=False)
            self._bar.update(1)
        elif self.enable:
            text = " ".join(f"{k}={v}" for k, v in shown.items())
            self.write(f"{self.desc} epoch {self.n}/{self.total} {text}".strip())

    def write(self, message: str) -> None:
        """Print a line without breaking the bar."""
        if not self.enable:
            return
        if self._bar is not None:
            self._bar.write(message, file=self._bar.fp)
        else:
            print(message, file=self._stream or sys.stdout, flush=True)

    def close(self) -> None:
        """Close the bar (if any)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> EpochProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
