"""MNIST with Information Dropout (Fig. 3a of Achille & Soatto 2016) in PyTorch.

784 -> 3 hidden ReLU layers with Information Dropout -> 10, trained on the IB loss
(cross-entropy + beta * KL / n_train) with Adam. ``--method binary`` swaps in binary dropout.
The network is :class:`idrop.experiments.nets.torch.MLP`, the one ``idrop reproduce mnist`` trains.

    python examples/torch/mnist.py --epochs 20
    python examples/torch/mnist.py --epochs 20 --method binary
"""

import argparse
import os
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F

from idrop.backends.torch import ib_loss
from idrop.data import mnist_splits, stratified_subset
from idrop.experiments.nets.torch import MLP  # the network of `idrop reproduce mnist`


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=os.environ.get("IDROP_DATA_DIR"))
    p.add_argument("--method", choices=("information", "binary"), default="information")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--limit", type=int, default=None, help="train on N images, equally many of each digit")
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--beta", type=float, default=1.0)
    p.add_argument("--max-alpha", type=float, default=0.7)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    torch.manual_seed(args.seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    x_train, y_train, x_test, y_test, _ = mnist_splits(args.data_dir)
    x_train, y_train = stratified_subset(x_train, y_train, args.limit)  # the offline file is sorted by label
    x_train, y_train = torch.tensor(x_train, device=device), torch.tensor(y_train, device=device)
    x_test, y_test = torch.tensor(x_test, device=device), torch.tensor(y_test, device=device)
    n_train = len(x_train)

    model = MLP(args.method, args.width, SimpleNamespace(max_alpha=args.max_alpha, dropout_rate=0.5)).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(args.seed)
    for epoch in range(args.epochs):
        model.train()
        for idx in np.array_split(rng.permutation(n_train), max(1, n_train // args.batch_size)):
            idx = torch.as_tensor(idx, device=device)
            logits = model(x_train[idx])
            loss = ib_loss(F.cross_entropy(logits, y_train[idx]), model, args.beta, n_train)
            opt.zero_grad()
            loss.backward()
            opt.step()
        print(f"epoch {epoch + 1}: train loss {loss.item():.4f}")

    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(xb).argmax(1) for xb in x_test.split(1000)])
    print(f"{args.method} dropout: test error {100 * (pred != y_test).float().mean().item():.2f}%")


if __name__ == "__main__":
    main()
