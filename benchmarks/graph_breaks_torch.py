"""Does ``torch.compile`` break the graph of an Information Dropout conv step? (issue 17)

``python -m benchmarks.graph_breaks_torch`` runs ``torch._dynamo.explain`` on the forward and loss of
``InfoDropout(Conv2d(96, 96, 3, stride=2, padding=1))`` with the full alpha map and with the cheap
branch (``alpha_rank=16``), and prints the number of graphs and graph breaks with their reasons.
``benchmarks/README.md`` ("torch compiled conv") quotes the result.
"""

from __future__ import annotations


def main() -> None:
    import torch
    from torch import nn

    from idrop.backends.torch import InfoDropout

    torch.manual_seed(0)
    x = torch.randn(4, 96, 32, 32)
    for rank in (None, 16):
        layer = InfoDropout(nn.Conv2d(96, 96, 3, stride=2, padding=1), alpha_rank=rank)

        def loss(x: torch.Tensor, layer: nn.Module = layer) -> torch.Tensor:
            return layer(x).sum() + layer.kl.sum()

        report = torch._dynamo.explain(loss)(x)
        print(f"alpha_rank={rank}: {report.graph_count} graph(s), {report.graph_break_count} break(s)")
        for reason in report.break_reasons:
            print(f"  {reason.reason}")


if __name__ == "__main__":
    main()
