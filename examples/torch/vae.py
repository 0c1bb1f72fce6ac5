"""A VAE with an Information Dropout latent (Sec. 5 of Achille & Soatto 2016) in PyTorch.

The encoder's last layer is ``z = softplus(W h) * exp(alpha(h) * eps)`` with a log-normal
prior; with beta = 1 the IB loss is the negative ELBO of a Bernoulli decoder.

    python examples/torch/vae.py --epochs 20
"""

import argparse
import os

import numpy as np
import torch
import torch.nn.functional as F

from idrop.data import binarize, mnist_splits, stratified_subset
from idrop.experiments.nets.torch import VAE  # the network of `idrop reproduce vae`


def elbo(model: VAE, x: torch.Tensor) -> torch.Tensor:
    """One-sample ELBO per image, in nats (the model samples its latent: the bound needs the noise and the KL)."""
    logits, kl = model(x)
    return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(1) - kl


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=os.environ.get("IDROP_DATA_DIR"))
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--limit", type=int, default=None, help="train on N images, equally many of each digit")
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--latent", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    torch.manual_seed(args.seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    x_train, y_train, x_test, _, _ = mnist_splits(args.data_dir)
    x_train, _ = stratified_subset(x_train, y_train, args.limit)  # the offline file is sorted by label
    x_train = torch.tensor(binarize(x_train), device=device)
    x_test = torch.tensor(binarize(x_test), device=device)

    model = VAE("information", args.hidden, args.latent, max_alpha=1.0).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(args.seed)
    model.train()  # the ELBO is a noisy estimate: keep the latent's noise on at test time too
    for epoch in range(args.epochs):
        for idx in np.array_split(rng.permutation(len(x_train)), max(1, len(x_train) // args.batch_size)):
            loss = -elbo(model, x_train[torch.as_tensor(idx, device=device)]).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        print(f"epoch {epoch + 1}: train -ELBO {loss.item():.2f}")

    with torch.no_grad():
        test_elbo = torch.cat([elbo(model, xb) for xb in x_test.split(1000)]).mean().item()
    print(f"test ELBO {test_elbo:.2f} nats")


if __name__ == "__main__":
    main()
