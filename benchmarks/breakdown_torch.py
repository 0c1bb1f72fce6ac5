"""Where a torch layer training step's time and saved bytes go, against the suite's floor (issue 17).

``python -m benchmarks.breakdown_torch [--repeats N] [--threads N]`` times, side by side in one process
(:func:`benchmarks._timing.compare`), for the Linear and the Conv case of the suite, eager and compiled:

- ``floor``: the suite's floor (one map with both weights stacked, then the same normal draws);
- ``map``: that stacked map alone (forward and backward, no draw);
- ``draw``: the normal draws alone;
- ``kernel``: ``info_dropout_kernel`` alone, forward and backward, on ``h`` and the alpha logits
  as leaves (the element-wise chain, its draw and its redraw in backward);
- ``idrop``: the layer's training step (as in the suite);
- ``cheap``: the layer with ``alpha_rank`` (32 for Linear, 16 for Conv);

and the bytes autograd saves for ``idrop``, ``cheap`` and the naive layer. ``idrop - map - kernel``
is what the layer spends outside its map and its element-wise kernel; ``kernel / draw`` shows the
element-wise passes that the floor does not count. Writes ``benchmarks/results/breakdown_torch.{json,md}``.
"""

from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from benchmarks._report import _loadavg
from benchmarks._settings import Settings
from benchmarks._timing import compare
from benchmarks.naive_torch import NaiveInfoDropout
from benchmarks.torch_bench import BETA, N_TRAIN, _compile, _saved_bytes, _step
from idrop.backends.torch import InfoDropout, ib_loss
from idrop.backends.torch._kernel import info_dropout_kernel

OUT = Path(__file__).resolve().parent / "results"
RANKS = {"linear": 32, "conv": 16}


def _make(case: str, s: Settings) -> tuple[Any, int, torch.Tensor]:
    if case == "linear":
        return (lambda out: nn.Linear(s.lin_in, out)), s.lin_out, torch.randn(s.lin_batch, s.lin_in)
    x = torch.randn(s.conv_batch, s.conv_ch, s.conv_hw, s.conv_hw)
    return (lambda out: nn.Conv2d(s.conv_ch, out, 3, stride=2, padding=1)), s.conv_ch, x


def variants(case: str, s: Settings) -> tuple[dict[str, Any], dict[str, nn.Module], torch.Tensor]:
    torch.manual_seed(0)
    make, out, x = _make(case, s)
    idrop, cheap = InfoDropout(make(out)), InfoDropout(make(out), alpha_rank=RANKS[case])
    mods = {"floor": make(2 * out), "map": make(2 * out), "idrop": idrop, "cheap": cheap}
    mods["naive"] = NaiveInfoDropout(make(out), make(out))
    with torch.no_grad():
        h, a = idrop.layer(x), idrop.alpha_layer(x)
    h, a = h.requires_grad_(), a.requires_grad_()
    leaves = nn.ParameterList([nn.Parameter(h), nn.Parameter(a)])
    mods["kernel"] = leaves
    mods["draw"] = nn.Linear(1, 1)  # no parameters used: a draw has no backward

    def floor(x: torch.Tensor) -> Any:
        y = mods["floor"](x)
        return y.mean(), torch.randn((y.shape[0], out, *y.shape[2:]))

    def map_only(x: torch.Tensor) -> Any:
        return mods["map"](x).mean()

    def draw(x: torch.Tensor) -> Any:
        return torch.randn(h.shape).mean().requires_grad_()

    def kernel(x: torch.Tensor) -> Any:
        z, kl = info_dropout_kernel(
            leaves[0],
            leaves[1],
            spec=idrop.spec,
            activation="relu",
            reduce=True,
            mu=None,
            sigma=None,
            noise=None,
            generator=None,
        )
        return z.mean() + BETA * kl.mean() / N_TRAIN

    def layer(name: str) -> Any:
        def fn(x: torch.Tensor) -> Any:
            return ib_loss(mods[name](x).mean(), mods[name], beta=BETA, n_train=N_TRAIN)

        return fn

    def naive(x: torch.Tensor) -> Any:
        z, kl = mods["naive"](x)
        return z.mean() + BETA * kl.flatten(1).sum(1).mean() / N_TRAIN

    fns = {
        "floor": floor,
        "map": map_only,
        "draw": draw,
        "kernel": kernel,
        "idrop": layer("idrop"),
        "cheap": layer("cheap"),
        "naive": naive,
    }
    return fns, mods, x


def run(s: Settings, repeats: int) -> list[dict[str, Any]]:
    rows = []
    for case in ("linear", "conv"):
        fns, mods, x = variants(case, s)
        saved = {k: _saved_bytes(fns[k], mods[k], x)[0] for k in ("idrop", "cheap", "naive", "floor")}
        for mode in ("eager", "compiled"):
            timed = {k: (_compile(f) if mode == "compiled" else f) for k, f in fns.items() if k != "naive"}
            steps = {k: _step(f, mods[k], x) for k, f in timed.items()}
            c = compare(steps, repeats=repeats, warmup=2)
            ms = {k: c.median_ms(k) for k in steps}
            rows.append(
                {
                    "case": case,
                    "mode": mode,
                    "times_ms": ms,
                    "ratios": {
                        "idrop/floor": c.ratio("idrop", "floor"),
                        "cheap/floor": c.ratio("cheap", "floor"),
                        "(map+kernel)/floor": (ms["map"] + ms["kernel"]) / ms["floor"],
                        "kernel/draw": c.ratio("kernel", "draw"),
                    },
                    "saved_kib": {k: v / 1024 for k, v in saved.items()},
                }
            )
            print(case, mode, {k: round(v, 2) for k, v in ms.items()}, flush=True)
    return rows


def markdown(result: dict[str, Any]) -> str:
    out = [
        "# Where a torch layer step goes (issue 17)",
        "",
        f"Command: `{result['command']}`  ",
        f"Date: {result['date']}; load average at start {result['loadavg_start']}, at end {result['loadavg_end']}; "
        f"torch {torch.__version__}, {result['threads']} thread(s)",
        "",
        "| layer | mode | floor ms | map ms | draw ms | kernel ms | idrop ms | cheap ms | idrop/floor | "
        "(map+kernel)/floor | kernel/draw | cheap/floor |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        t, q = r["times_ms"], r["ratios"]
        out.append(
            f"| {r['case']} | {r['mode']} | "
            + " | ".join(f"{t[k]:.2f}" for k in ("floor", "map", "draw", "kernel", "idrop", "cheap"))
            + " | "
            + " | ".join(f"{q[k]:.2f}" for k in ("idrop/floor", "(map+kernel)/floor", "kernel/draw", "cheap/floor"))
            + " |"
        )
    out += ["", "Bytes autograd saves for one step (KiB, parameters excluded):", ""]
    out += [
        "| layer | idrop | cheap (alpha_rank) | naive | floor | idrop/naive | cheap/naive |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        if r["mode"] != "eager":
            continue
        b = r["saved_kib"]
        out.append(
            f"| {r['case']} | {b['idrop']:.0f} | {b['cheap']:.0f} | {b['naive']:.0f} | {b['floor']:.0f} | "
            f"{b['idrop'] / b['naive']:.2f} | {b['cheap'] / b['naive']:.2f} |"
        )
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.breakdown_torch", description=__doc__)
    p.add_argument("--repeats", type=int, default=11)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    start = _loadavg()
    rows = run(Settings(), args.repeats)
    result = {
        "command": "python -m benchmarks.breakdown_torch"
        + (f" --repeats {args.repeats}" if args.repeats != 11 else ""),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "loadavg_start": start,
        "loadavg_end": _loadavg(),
        "threads": args.threads,
        "rows": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "breakdown_torch.json").write_text(json.dumps(result, indent=1) + "\n")
    (args.out / "breakdown_torch.md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
