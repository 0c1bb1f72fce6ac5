"""PyTorch benchmarks: layer step (eager, torch.compile), eval forward, saved bytes, network throughput.

Devices: the CPU always, plus ``cuda`` when ``torch.cuda.is_available()``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks import ladder_mlp
from benchmarks._settings import THROUGHPUT_VARIANTS, Settings, row, skipped
from benchmarks._timing import compare
from benchmarks.naive_torch import NaiveInfoDropout
from idrop.backends.torch import InfoDropout, ib_loss
from idrop.experiments.nets.torch import AllCNN32

BACKEND = "torch"
N_TRAIN = 60_000  # the KL term's 1/N of eq. 5; its value does not change the cost
BETA = 1.0


def devices() -> list[str]:
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _sync_for(device: str) -> Callable[[Any], None]:
    if device == "cuda":
        return lambda _: torch.cuda.synchronize()
    return lambda _: None


def _problem(case: str, s: Settings, device: str) -> tuple[Callable[[int], nn.Module], int, torch.Tensor]:
    """``(make(out_features) -> map, out, x)`` for the Linear or the Conv2d case."""
    if case == "linear":
        return (
            (lambda out: nn.Linear(s.lin_in, out).to(device)),
            s.lin_out,
            torch.randn(s.lin_batch, s.lin_in, device=device),
        )
    return (
        (lambda out: nn.Conv2d(s.conv_ch, out, 3, stride=2, padding=1).to(device)),
        s.conv_ch,
        torch.randn(s.conv_batch, s.conv_ch, s.conv_hw, s.conv_hw, device=device),
    )


def _losses(case: str, s: Settings, device: str) -> tuple[dict[str, Callable], dict[str, nn.Module], torch.Tensor]:
    """Forward-to-loss functions of the four variants of the layer training step."""
    torch.manual_seed(0)
    make, out, x = _problem(case, s, device)
    rank = s.mlp_alpha_rank if case == "linear" else s.cnn_alpha_rank
    mods = {
        "idrop": InfoDropout(make(out), activation="relu"),
        "floor": make(2 * out),
        "naive": NaiveInfoDropout(make(out), make(out)),
        "binary": make(out),
        "cheap": InfoDropout(make(out), activation="relu", alpha_rank=rank),
        "cheap_remat": InfoDropout(make(out), activation="relu", alpha_rank=rank, recompute_alpha=True),
    }

    def information(key: str) -> Callable[[torch.Tensor], torch.Tensor]:
        def loss(x: torch.Tensor) -> torch.Tensor:
            z = mods[key](x)
            return ib_loss(z.mean(), mods[key], beta=BETA, n_train=N_TRAIN)

        return loss

    def floor(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = mods["floor"](x)
        eps = torch.randn((y.shape[0], out, *y.shape[2:]), device=y.device)
        return y.mean(), eps  # eps returned so a compiler cannot drop the draw

    def naive(x: torch.Tensor) -> torch.Tensor:
        z, kl = mods["naive"](x)
        return z.mean() + BETA * kl.flatten(1).sum(1).mean() / N_TRAIN

    def binary(x: torch.Tensor) -> torch.Tensor:
        return F.dropout(torch.relu(mods["binary"](x)), 0.5, training=True).mean()

    fns = {"idrop": information("idrop"), "floor": floor, "naive": naive, "binary": binary}
    return {**fns, "cheap": information("cheap"), "cheap_remat": information("cheap_remat")}, mods, x


def _compile(fn: Callable) -> Callable:
    """``torch.compile`` with static shapes, a clean cache and ATen's random numbers.

    Static, because the adapter's ``torch.randn(shape, generator=None, ...)`` fails under symbolic
    shapes (``dynamic=True``, or the automatic dynamic shapes a second input shape triggers):
    "SymIntArrayRef expected to contain only concrete integers". ``fallback_random``, because
    inductor's own CPU normals are about 12x slower than ATen's (15.5 vs 1.3 ms for 128x1024 on
    one thread here) and would swamp every variant alike.
    """
    import torch._inductor.config as inductor_config

    inductor_config.fallback_random = True
    torch._dynamo.reset()
    return torch.compile(fn, dynamic=False)


def _step(loss_fn: Callable, module: nn.Module, x: torch.Tensor) -> Callable[[], torch.Tensor]:
    params = list(module.parameters())

    def go() -> torch.Tensor:
        for p in params:
            p.grad = None
        out = loss_fn(x)
        loss = out[0] if isinstance(out, tuple) else out
        loss.backward()
        return loss

    return go


def layer_train(case: str, s: Settings, device: str, compiled: bool) -> dict[str, Any]:
    mode = "compiled" if compiled else "eager"
    losses, mods, x = _losses(case, s, device)
    if compiled:
        losses = {k: _compile(fn) for k, fn in losses.items()}
    steps = {k: _step(fn, mods[k], x) for k, fn in losses.items()}
    c = compare(steps, repeats=s.repeats, warmup=s.warmup, sync=_sync_for(device))
    return row(
        BACKEND,
        device,
        "layer_train",
        case,
        mode,
        times_ms={k: c.median_ms(k) for k in steps},
        ratios={
            **{f"idrop/{k}": c.ratio("idrop", k) for k in ("floor", "naive", "binary")},
            "cheap_remat/cheap": c.ratio("cheap_remat", "cheap"),
        },
        spread={
            **{f"idrop/{k}": c.ratio_spread("idrop", k) for k in ("floor", "naive", "binary")},
            "cheap_remat/cheap": c.ratio_spread("cheap_remat", "cheap"),
        },
    )


def layer_eval(case: str, s: Settings, device: str, compiled: bool) -> dict[str, Any]:
    mode = "compiled" if compiled else "eager"
    torch.manual_seed(0)
    make, out, x = _problem(case, s, device)
    idrop = InfoDropout(make(out), activation="relu").eval()
    plain = make(out)
    fns = {"idrop": lambda x: idrop(x), "plain": lambda x: torch.relu(plain(x))}
    if compiled:
        fns = {k: _compile(fn) for k, fn in fns.items()}

    def nograd(fn: Callable) -> Callable[[], torch.Tensor]:
        def go() -> torch.Tensor:
            with torch.no_grad():
                return fn(x)

        return go

    c = compare({k: nograd(fn) for k, fn in fns.items()}, repeats=s.repeats, warmup=s.warmup, sync=_sync_for(device))
    return row(
        BACKEND,
        device,
        "layer_eval",
        case,
        mode,
        times_ms={k: c.median_ms(k) for k in fns},
        ratios={"idrop/plain": c.ratio("idrop", "plain")},
        spread={"idrop/plain": c.ratio_spread("idrop", "plain")},
    )


def _saved_bytes(loss_fn: Callable, module: nn.Module, x: torch.Tensor) -> tuple[int, int]:
    """Bytes of the unique storages autograd saves for backward: ``(without parameters, with them)``."""
    param_ptrs = {p.untyped_storage().data_ptr() for p in module.parameters()}
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        st = t.untyped_storage()
        storages[st.data_ptr()] = st.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = loss_fn(x)
    (out[0] if isinstance(out, tuple) else out).backward()
    total = sum(storages.values())
    return total - sum(n for p, n in storages.items() if p in param_ptrs), total


def memory(case: str, s: Settings, device: str) -> list[dict[str, Any]]:
    losses, mods, x = _losses(case, s, device)
    saved = {k: _saved_bytes(fn, mods[k], x) for k, fn in losses.items()}
    rows = [
        row(
            BACKEND,
            device,
            "memory",
            case,
            "saved_tensors",
            bytes={k: v[0] for k, v in saved.items()},
            bytes_incl_params={k: v[1] for k, v in saved.items()},
            ratios={
                "idrop/naive": saved["idrop"][0] / saved["naive"][0],
                "idrop/floor": saved["idrop"][0] / saved["floor"][0],
                "cheap/naive": saved["cheap"][0] / saved["naive"][0],
                "cheap_remat/naive": saved["cheap_remat"][0] / saved["naive"][0],
            },
            note="unique storages saved by autograd in one training step, parameters excluded "
            "(torch.utils.checkpoint's kept inputs included: it saves them through the same hooks)",
        )
    ]
    if device == "cuda":
        peak = {}
        for k, fn in losses.items():
            step = _step(fn, mods[k], x)
            step()
            torch.cuda.synchronize()
            base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            step()
            torch.cuda.synchronize()
            peak[k] = torch.cuda.max_memory_allocated() - base
        rows.append(
            row(
                BACKEND,
                device,
                "memory",
                case,
                "cuda_peak",
                bytes=peak,
                ratios={"idrop/naive": peak["idrop"] / peak["naive"]},
                note="torch.cuda.max_memory_allocated over one step, above what was allocated before",
            )
        )
    return rows


# ---------------------------------------------------------------- networks --


def _hidden(method: str, layer: nn.Module, norm: nn.Module | None = None, rank: int = 0) -> list[nn.Module]:
    """``layer -> [norm] -> relu`` with the method's dropout (information: the layer wrapped;
    cheap: with the cheap alpha branch of ``rank``)."""
    if method in ("information", "cheap"):
        return [InfoDropout(layer, activation="relu", norm=norm, alpha_rank=rank if method == "cheap" else None)]
    mods = [layer] + ([norm] if norm is not None else []) + [nn.ReLU()]
    return mods + ([nn.Dropout(0.5)] if method == "binary" else [])


def mnist_mlp(method: str, s: Settings) -> nn.Module:
    """784-W-W-W-10 ReLU, dropout after every hidden layer."""
    w, layers, d = s.mlp_width, [], s.mlp_in
    for _ in range(3):
        layers += _hidden(method, nn.Linear(d, w), rank=s.mlp_alpha_rank)
        d = w
    return nn.Sequential(*layers, nn.Linear(w, 10))


def all_cnn_32(method: str, s: Settings) -> nn.Module:
    """All-CNN-32, the CIFAR-10 experiment's network (official cifar.py), at the settings' widths."""
    if method == "cheap":
        return AllCNN32("information", widths=(s.cnn_c1, s.cnn_c2), alpha_rank=s.cnn_alpha_rank)
    return AllCNN32(method, widths=(s.cnn_c1, s.cnn_c2))


def throughput(net: str, s: Settings, device: str, mixed: bool = False) -> dict[str, Any]:
    """Images per second of one training step with each dropout method.

    ``mixed``: the GPU target's setting, bfloat16 autocast with the forward and loss compiled
    (``torch.compile`` unless ``--no-compile``); otherwise eager float32.
    """
    torch.manual_seed(0)
    if net == "mlp":
        build, batch, x = mnist_mlp, s.mlp_batch, torch.randn(s.mlp_batch, s.mlp_in, device=device)
    else:
        build, batch = all_cnn_32, s.cnn_batch
        x = torch.randn(batch, 3, s.cnn_hw, s.cnn_hw, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    steps = {}
    for method in THROUGHPUT_VARIANTS:
        model = build(method, s).to(device).train()
        opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

        def forward(model: nn.Module = model) -> torch.Tensor:
            with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=mixed):
                return ib_loss(F.cross_entropy(model(x), y), model, beta=BETA, n_train=N_TRAIN)

        if mixed and s.compile:
            forward = _compile(forward)

        def step(forward: Callable = forward, opt: torch.optim.Optimizer = opt) -> torch.Tensor:
            opt.zero_grad(set_to_none=True)
            loss = forward()
            loss.backward()
            opt.step()
            return loss

        steps[method] = step
    c = compare(
        steps, repeats=s.throughput_repeats, warmup=s.throughput_warmup, sync=_sync_for(device), min_sample_s=0.0
    )
    mode = ("compiled-bf16" if s.compile else "eager-bf16") if mixed else "eager"
    return row(
        BACKEND,
        device,
        "throughput",
        net,
        mode,
        images_per_s={k: 1e3 * batch / c.median_ms(k) for k in steps},
        times_ms={k: c.median_ms(k) for k in steps},
        ratios={
            "information/none": c.ratio("information", "none"),
            "information/binary": c.ratio("information", "binary"),
            "cheap/binary": c.ratio("cheap", "binary"),
        },
        note="ratios are of step times (above 1: slower)",
    )


def run(s: Settings, log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    if s.threads:
        torch.set_num_threads(s.threads)
    rows: list[dict[str, Any]] = []
    for device in devices():
        for case in ("linear", "conv") if {"layer_train", "layer_eval", "memory"} & set(s.kinds) else ():
            for compiled in (False, True):
                mode = "compiled" if compiled else "eager"
                if compiled and not s.compile:
                    continue
                for kind, fn in (("layer_train", layer_train), ("layer_eval", layer_eval)):
                    if kind not in s.kinds:
                        continue
                    log(f"torch {device} {kind} {case} {mode}")
                    try:
                        rows.append(fn(case, s, device, compiled))
                    except Exception as err:  # a compiler failure must not lose the other rows
                        if not compiled:
                            raise
                        rows.append(skipped(BACKEND, device, kind, case, mode, f"{type(err).__name__}: {err}"[:300]))
            if "memory" in s.kinds:
                log(f"torch {device} memory {case}")
                rows.extend(memory(case, s, device))
        for net in ("mlp", "allcnn") if "throughput" in s.kinds else ():
            log(f"torch {device} throughput {net}")
            rows.append(throughput(net, s, device))
        if "throughput" in s.kinds and s.mixed_precision_row(device):
            log(f"torch {device} throughput allcnn bf16")
            rows.append(throughput("allcnn", s, device, mixed=True))
        if "ladder" in s.kinds:
            log(f"torch {device} ladder mlp")
            rows.append(ladder_mlp.torch_row(s, device))
    return rows


def info() -> dict[str, Any]:
    out: dict[str, Any] = {"versions": {"torch": torch.__version__}, "threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        out["gpu"] = torch.cuda.get_device_name(0)
    return out
