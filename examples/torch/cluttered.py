"""Where the information goes on Cluttered MNIST (Fig. 2 of Achille & Soatto 2016) in PyTorch.

A small All-CNN with Information Dropout after each strided convolution. After training,
the per-unit KL of the last noisy layer (the information it lets through) is mapped back
to the canvas: most of it should fall in the digit's box, far more than the box's area share.

    python examples/torch/cluttered.py --epochs 10
"""

import argparse
import os

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from idrop.backends.torch import InfoDropout, ib_loss, info_dropout
from idrop.data import cluttered_mnist, mnist_splits


def make_model(max_alpha: float) -> nn.Sequential:
    def block(n_in: int, n_out: int) -> InfoDropout:
        conv = nn.Conv2d(n_in, n_out, 3, stride=2, padding=1)
        return InfoDropout(conv, activation="relu", max_alpha=max_alpha)

    return nn.Sequential(
        block(1, 32), block(32, 64), block(64, 96), nn.Conv2d(96, 10, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten()
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=os.environ.get("IDROP_DATA_DIR"))
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--limit", type=int, default=None, help="train on the first N images")
    p.add_argument("--canvas", type=int, default=96)
    p.add_argument("--beta", type=float, default=1.0)
    p.add_argument("--max-alpha", type=float, default=0.7)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    torch.manual_seed(args.seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    x_train, y_train, x_test, y_test, _ = mnist_splits(args.data_dir)
    train = cluttered_mnist(x_train[: args.limit], y_train[: args.limit], canvas=args.canvas, seed=args.seed)
    test = cluttered_mnist(x_test[:1000], y_test[:1000], canvas=args.canvas, seed=args.seed + 1)
    x = torch.tensor(train.images[:, None], device=device)
    y = torch.tensor(train.labels, device=device)
    n_train = len(x)

    model = make_model(args.max_alpha).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(args.seed)
    for epoch in range(args.epochs):
        model.train()
        for idx in np.array_split(rng.permutation(n_train), max(1, n_train // args.batch_size)):
            idx = torch.as_tensor(idx, device=device)
            loss = ib_loss(F.cross_entropy(model(x[idx]), y[idx]), model, args.beta, n_train)
            opt.zero_grad()
            loss.backward()
            opt.step()
        print(f"epoch {epoch + 1}: train loss {loss.item():.4f}")

    model.eval()
    x_test = torch.tensor(test.images[:, None], device=device)
    with torch.no_grad():
        error = (model(x_test).argmax(1).cpu() != torch.tensor(test.labels)).float().mean().item()
        last = model[2]
        h = model[:2](x_test)  # the input of the last InfoDropout layer
        _, kl = info_dropout(F.relu(last.layer(h)), last.alpha_layer(h), max_alpha=args.max_alpha)
        kl_map = F.interpolate(kl.sum(1, keepdim=True), size=(args.canvas, args.canvas))[:, 0].cpu()
    mask = torch.zeros_like(kl_map)
    for i, (y0, x0, y1, x1) in enumerate(test.boxes):
        mask[i, y0:y1, x0:x1] = 1
    kl_share = ((kl_map * mask).sum() / kl_map.sum()).item()
    area_share = mask.mean().item()
    print(f"test error {100 * error:.2f}%")
    print(f"KL in digit box: {100 * kl_share:.1f}% of the total (box area: {100 * area_share:.1f}% of the canvas)")


if __name__ == "__main__":
    main()
