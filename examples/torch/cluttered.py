"""Where the information goes on Cluttered MNIST (Fig. 2 of Achille & Soatto 2016) in PyTorch.

Trains the experiment's All-CNN (``idrop.experiments.cluttered.torch.ClutteredCNN``: ReLU,
log-uniform prior, an alpha conv with a bias, Nesterov momentum as the official code) on a
small Cluttered MNIST, then asks whether the KL of the first Information Dropout layer falls
on the digit *more than the digit's ink does*: the ratio (KL share in the digit's box) /
(ink share in the box) is 1 when the KL just follows the ink.

    python examples/torch/cluttered.py --epochs 8
"""

import argparse
import dataclasses
import os

import numpy as np
import torch
import torch.nn.functional as F

from idrop.backends.torch import InfoDropout, kl_loss, kl_map
from idrop.data import cluttered_mnist, mnist_splits
from idrop.experiments._torch_common import refresh_batch_norm
from idrop.experiments.cluttered import QUICK
from idrop.experiments.cluttered._measure import localisation
from idrop.experiments.cluttered.torch import ClutteredCNN


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=os.environ.get("IDROP_DATA_DIR"))
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--limit", type=int, default=None, help="train on N images (default: the quick setting's)")
    p.add_argument("--canvas", type=int, default=QUICK.canvas)
    p.add_argument("--beta", type=float, default=0.5)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    cfg = {**dataclasses.asdict(QUICK), "canvas": args.canvas}
    torch.manual_seed(args.seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    x_train, y_train, x_test, y_test, _ = mnist_splits(args.data_dir)
    kw = {"canvas": args.canvas, "n_distractors": cfg["distractors"]}
    train = cluttered_mnist(x_train, y_train, args.limit or cfg["n_train"], seed=args.seed, **kw)
    test = cluttered_mnist(x_test[:1000], y_test[:1000], seed=args.seed + 1, **kw)
    x, y = torch.tensor(train.images[:, None], device=device), torch.tensor(train.labels, device=device)
    n_train = len(x)

    model = ClutteredCNN(cfg).to(device)
    opt = torch.optim.SGD([q for q in model.parameters() if q.requires_grad], lr=0.01, momentum=0.9, nesterov=True)
    rng = np.random.default_rng(args.seed)
    for epoch in range(args.epochs):
        model.train()
        for idx in np.array_split(rng.permutation(n_train), max(1, n_train // cfg["batch_size"])):
            idx = torch.as_tensor(idx, device=device)
            loss = F.cross_entropy(model(x[idx]), y[idx]) + args.beta * kl_loss(model, n_train)
            opt.zero_grad()
            loss.backward()
            opt.step()
        print(f"epoch {epoch + 1}: train loss {loss.item():.4f}")

    # Noiseless KL and activation energy of the first Information Dropout layer, per position.
    first = next(m for m in model.modules() if isinstance(m, InfoDropout))
    seen = {}
    refresh_batch_norm(model, x, cfg["batch_size"], torch.device(device))  # BN statistics without noise
    handle = first.register_forward_pre_hook(lambda mod, inp: seen.update(x=inp[0]))
    with torch.no_grad():
        x_test_t = torch.tensor(test.images[:, None], device=device)
        error = (model(x_test_t).argmax(1).cpu() != torch.tensor(test.labels)).float().mean().item()
        kl = kl_map(first, seen["x"]).sum(1).cpu().numpy()
        energy = first.activation_of(seen["x"]).square().sum(1).cpu().numpy()
    handle.remove()
    out = localisation(kl, energy, test.images, test.boxes, args.canvas)
    print(f"test error {100 * error:.2f}%")
    print(
        f"KL in digit box: {100 * out['kl_share']:.1f}% of the total; ink in box: {100 * out['ink_share']:.1f}%; "
        f"KL/ink = {out['kl_over_ink']:.2f}, KL/activation energy = {out['kl_over_energy']:.2f} (1 = follows the ink)"
    )


if __name__ == "__main__":
    main()
