"""One torchrun rank of tests/distributed/test_torch_ddp.py: checks, then the tiny MNIST run.

Usage: python -m torch.distributed.run --nproc_per_node 2 _torch_worker.py OUT DATA_DIR
Rank 0 writes OUT/checks.json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from idrop import cli
from idrop.backends.torch import InfoDropout, ib_loss
from idrop.distributed import torch as dtorch
from idrop.experiments.mnist.torch import sum_loss

sys.path.insert(0, str(Path(__file__).parents[1]))  # tests/: _mnist_data
from _mnist_data import mnist_args

B, N_TRAIN, BETA = 7, 50, 3.0  # odd batch: shards of 4 and 3


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.drop = InfoDropout(nn.Linear(5, 6), activation="relu")
        self.out = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor, eps: torch.Tensor | None = None) -> torch.Tensor:
        return self.out(self.drop(x, noise=eps))


def make() -> tuple[Net, torch.optim.Optimizer]:
    torch.manual_seed(0)
    net = Net().double()
    return net, torch.optim.SGD(net.parameters(), lr=0.1)


def main(out: Path, data_dir: Path) -> None:
    ctx = dtorch.setup("cpu")
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(B, 5, generator=g, dtype=torch.float64), torch.randint(0, 3, (B,), generator=g)
    eps = torch.randn(B, 6, generator=g, dtype=torch.float64)

    # N ranks, each its shard of the global batch, injected noise.
    net, opt = make()
    ddp = dtorch.wrap(net, ctx)
    idx = dtorch.shard_indices(torch.arange(B).numpy())
    logits = ddp(x[idx], eps[idx])
    loss_sum, kl_sum = sum_loss(logits, y[idx], net, BETA, N_TRAIN)
    dtorch.global_mean(loss_sum, B).backward()
    opt.step()
    stats = dtorch.all_reduce_sum(torch.stack([loss_sum.detach(), kl_sum.detach()])) / B

    # One process, the whole batch, the adapter's own mean-based loss.
    ref, ref_opt = make()
    logits = ref(x, eps)
    ref_loss = ib_loss(nn.functional.cross_entropy(logits, y), ref, BETA, N_TRAIN)
    ref_kl = ref.drop.kl.mean()
    ref_loss.backward()
    ref_opt.step()
    param_diff = max(float((a - b).detach().abs().max()) for a, b in zip(net.parameters(), ref.parameters()))

    # Sampled noise: the same input on every rank, each rank its own seed.
    torch.manual_seed(dtorch.noise_seed(123))
    probe = net.drop(torch.ones(4, 5, dtype=torch.float64)).detach()
    probes = [torch.zeros_like(probe) for _ in range(ctx.world_size)]
    dist.all_gather(probes, probe)

    if ctx.is_main:
        (out / "checks.json").write_text(
            json.dumps(
                {
                    "world": ctx.world_size,
                    "loss": float(stats[0]),
                    "ref_loss": float(ref_loss),
                    "kl": float(stats[1]),
                    "ref_kl": float(ref_kl),
                    "param_diff": param_diff,
                    "noise_differs": not torch.equal(probes[0], probes[1]),
                }
            )
        )
    dist.barrier()
    status = cli.main(mnist_args("torch", data_dir, out / "ddp"))
    if status:
        raise SystemExit(status)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
