"""Progress display: tqdm on a terminal, plain lines otherwise, silence when disabled."""

from __future__ import annotations

import io

from idrop.experiments import EpochProgress, format_metrics


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_format_metrics_order_and_precision() -> None:
    shown = format_metrics({"lr": 0.001, "error": 0.123456, "loss": 2.0, "kl": 12345.678})
    assert list(shown) == ["loss", "kl", "error", "lr"]
    assert shown == {"loss": "2", "kl": "1.235e+04", "error": "0.1235", "lr": "0.001"}


def test_plain_lines_when_not_a_tty() -> None:
    out = io.StringIO()
    with EpochProgress(3, initial=1, desc="run", stream=out) as p:
        p.update({"loss": 1.0, "kl": 0.5, "error": 0.25})
        p.write("done")
    assert out.getvalue() == "run epoch 2/3 loss=1 kl=0.5 error=0.25\ndone\n"


def test_tqdm_bar_on_a_tty() -> None:
    out = FakeTTY()
    with EpochProgress(2, desc="run", stream=out) as p:
        p.update({"loss": 1.5, "kl": 0.5, "error": 0.25})
        p.update({"loss": 1.25, "kl": 0.5, "error": 0.125})
    text = out.getvalue()
    assert "2/2" in text and "loss=1.25" in text and "error=0.125" in text
    assert "\r" in text  # a live bar, not log lines


def test_disabled_is_silent() -> None:
    out = FakeTTY()
    with EpochProgress(2, stream=out, enable=False) as p:
        p.update({"loss": 1.0})
        p.write("x")
    assert out.getvalue() == ""
