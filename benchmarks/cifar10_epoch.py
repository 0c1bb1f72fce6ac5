"""Seconds per CIFAR-10 epoch of the full All-CNN-32 setting, measured on a few batches and extrapolated.

CIFAR-10 cannot be downloaded on the project's offline machines, so the full setting
(filter percentage 1, batch 100, Information Dropout) is timed on random inputs of the real
shape: ``--steps`` training steps after ``--warmup`` untimed ones, and as many noiseless
forward passes. One epoch is then 500 training steps (50,000 / 100), plus the batch-norm dry
run (500 forward passes) and the test pass (100 forward passes) before each evaluation::

    epoch_s = 500 * step_s            (training)
    eval_s  = 600 * forward_s         (dry run over the training set + test set)
    run_s   = 200 * epoch_s + eval_s  (the official 200 epochs, one final evaluation)

Usage: ``python -m benchmarks.cifar10_epoch [--device cuda] [--steps 5]`` (PyTorch; the three backends
build the same network, see ``tests/experiments``).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

TRAIN_STEPS, EVAL_FORWARDS, EPOCHS = 500, 600, 200


def _torch(device: str, steps: int, warmup: int, filters: float) -> tuple[tuple[float, float], tuple[float, float]]:
    """(wall, CPU) seconds of one training step and of one noiseless forward pass, batch 100."""
    import torch
    import torch.nn.functional as F

    from idrop.backends.torch import ib_loss
    from idrop.experiments.nets import all_cnn_widths
    from idrop.experiments.nets.torch import AllCNN32

    dev = torch.device(device)
    model = AllCNN32("information", widths=all_cnn_widths(filters)).to(dev)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.05, momentum=0.9, nesterov=True)
    x, y = torch.randn(100, 3, 32, 32, device=dev), torch.randint(0, 10, (100,), device=dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    def step() -> None:
        loss = ib_loss(F.cross_entropy(model(x), y), model, beta=3.0, n_train=50000)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def forward() -> None:
        with torch.no_grad():
            model(x)

    train = _time(step, steps, warmup, sync)
    model.eval()
    return train, _time(forward, steps, warmup, sync)


def _time(fn: Callable[[], None], steps: int, warmup: int, sync: Callable[[], None]) -> tuple[float, float]:
    """``(wall seconds, CPU seconds of this process)`` per call of ``fn``, after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    sync()
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(steps):
        fn()
    sync()
    return (time.perf_counter() - t0) / steps, (time.process_time() - c0) / steps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--backend", choices=("torch",), default="torch")
    p.add_argument("--device", default="cpu")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--filter-percentage", type=float, default=1.0)
    args = p.parse_args()
    (step_s, step_cpu), (forward_s, forward_cpu) = _torch(args.device, args.steps, args.warmup, args.filter_percentage)
    out = {
        "backend": args.backend,
        "device": args.device,
        "filter_percentage": args.filter_percentage,
        "timed_steps": args.steps,
        "step_wall_s": round(step_s, 4),
        "step_cpu_s": round(step_cpu, 4),
        "forward_wall_s": round(forward_s, 4),
        "forward_cpu_s": round(forward_cpu, 4),
        "epoch_wall_s": round(TRAIN_STEPS * step_s, 1),
        "epoch_cpu_s": round(TRAIN_STEPS * step_cpu, 1),
        "eval_wall_s": round(EVAL_FORWARDS * forward_s, 1),
        "eval_cpu_s": round(EVAL_FORWARDS * forward_cpu, 1),
        "run_200_epochs_wall_h": round((EPOCHS * TRAIN_STEPS * step_s + EVAL_FORWARDS * forward_s) / 3600, 2),
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
