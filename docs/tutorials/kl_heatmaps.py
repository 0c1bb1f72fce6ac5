# %% [markdown]
# # KL heat maps
#
# The KL divergence of a unit measures how much information about the input that unit lets
# through. Summed over the channels at each position of a convolutional layer, it gives a map
# of *where* the layer spends information: the paper's Fig. 2 shows such maps on Cluttered
# MNIST. This notebook trains a small convolutional network with Information Dropout on a
# small Cluttered MNIST in PyTorch for a few seconds and draws the maps. The budget is that of
# a CI job, so the network ends far from trained (around 30-40% test error); the point here is
# how to get the maps. `idrop reproduce cluttered --quick` trains the paper's network for real.
#
# It uses the **functional form**, `info_dropout(f, alpha_logits, ...)`, which returns the KL
# *per unit* (the shape of the activation), so the heat map is just a sum over channels. (The
# layers' `.kl` is the per-sample sum, for the loss.) At this CPU scale the maps follow the ink,
# clutter included, rather than the digit alone: see
# [Reproducing the paper](../reproducing.md#cluttered-mnist-quick-setting-fig-2).

# %%
import os

import matplotlib
import numpy as np
import torch

matplotlib.use("Agg")  # write files, open no window
import matplotlib.pyplot as plt

from idrop.backends.torch import info_dropout
from idrop.data import cluttered_mnist, mnist_splits

torch.manual_seed(0)
torch.set_num_threads(1)

x_train, y_train, x_test, y_test, _ = mnist_splits(os.environ.get("IDROP_DATA_DIR"))
train = cluttered_mnist(x_train, y_train, 3000, canvas=40, n_distractors=4, seed=0)
test = cluttered_mnist(x_test, y_test, 500, canvas=40, n_distractors=4, seed=1)
print(train.images.shape, train.boxes[:2])  # boxes: the digit's box in each canvas

# %% [markdown]
# ## A network built on the functional form
#
# Each block computes $f = \mathrm{ReLU}(\mathrm{BN}(\mathrm{conv}(x)))$ and the alpha branch's logits with a
# second convolution, and hands both to `info_dropout`, which returns the noisy output and the
# per-unit KL. The blocks return the KL so that the loss, and the heat maps, can use it.

# %%


class InfoConv(torch.nn.Module):
    def __init__(self, c_in, c_out):
        super().__init__()
        self.conv = torch.nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False)
        self.norm = torch.nn.BatchNorm2d(c_out)  # as in the paper's CNNs; the alpha branch has none
        self.alpha = torch.nn.Conv2d(c_in, c_out, 3, stride=2, padding=1)

    def forward(self, x):
        f = torch.relu(self.norm(self.conv(x)))
        # training=False gives z = f but still the KL: the functional form always returns it.
        return info_dropout(f, self.alpha(x), max_alpha=0.5, training=self.training)


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = torch.nn.ModuleList([InfoConv(1, 16), InfoConv(16, 32), InfoConv(32, 32)])
        self.head = torch.nn.Linear(32 * 5 * 5, 10)

    def forward(self, x):
        kls = []
        for block in self.blocks:
            x, kl = block(x)
            kls.append(kl)
        return self.head(x.flatten(1)), kls


model = Net()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)

# %% [markdown]
# ## Training on the Information Bottleneck loss
#
# The loss term is the one `ib_loss` computes for the layers: per-unit KL summed over the units
# of each sample, averaged over the batch, summed over layers, times $\beta / N$.

# %%
BETA, N_TRAIN = 0.1, len(train.images)
x = torch.from_numpy(train.images[:, None])
y = torch.from_numpy(train.labels)
rng = np.random.default_rng(0)
for epoch in range(6):
    model.train()
    for idx in np.array_split(rng.permutation(N_TRAIN), N_TRAIN // 100):
        logits, kls = model(x[idx])
        kl_term = sum(kl.flatten(1).sum(1).mean() for kl in kls) / N_TRAIN
        loss = torch.nn.functional.cross_entropy(logits, y[idx]) + BETA * kl_term
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        logits, _ = model(torch.from_numpy(test.images[:, None]))
    print(f"epoch {epoch + 1}: test error {100 * np.mean(logits.argmax(-1).numpy() != test.labels):.1f}%")

# %% [markdown]
# ## The heat maps
#
# In evaluation the functional form returns $z = f$ and the KL per unit; summing over channels
# gives one map per layer, at the layer's resolution (20x20, 10x10, 5x5). We also measure the
# share of each map inside the digit's box, beside the box's share of the canvas: a share above
# the box's means the KL concentrates on the digit's area.

# %%
model.eval()
with torch.no_grad():
    _, kls = model(torch.from_numpy(test.images[:, None]))
maps = [kl.sum(1).numpy() for kl in kls]  # [batch, H, W] per layer
assert all((m >= 0).all() for m in maps)  # the log-uniform KL is >= 0 (0 at the largest alpha)


def box_share(heat, boxes, canvas=40):
    scale = heat.shape[-1] / canvas
    shares = []
    for h, (top, left, bottom, right) in zip(heat, boxes):
        y0, x0 = int(top * scale), int(left * scale)
        y1, x1 = int(np.ceil(bottom * scale)), int(np.ceil(right * scale))
        shares.append(h[y0:y1, x0:x1].sum() / h.sum())
    return float(np.mean(shares))


area = np.mean([(y1 - y0) * (x1 - x0) / 40**2 for y0, x0, y1, x1 in test.boxes])
for i, m in enumerate(maps, start=1):
    print(f"layer {i} ({m.shape[1]}x{m.shape[2]}): KL share in the digit's box {box_share(m, test.boxes):.2f}")
print(f"the box's share of the canvas: {area:.2f}")

fig, axes = plt.subplots(4, 4, figsize=(8, 8))
for row in range(4):
    axes[row, 0].imshow(test.images[row], cmap="gray")
    for col, m in enumerate(maps, start=1):
        axes[row, col].imshow(m[row], cmap="Blues")
for ax, title in zip(axes[0], ["input", "KL layer 1", "KL layer 2", "KL layer 3"]):
    ax.set_title(title)
for ax in axes.flat:
    ax.axis("off")
fig.savefig("kl_heatmaps.png", bbox_inches="tight")
print("wrote kl_heatmaps.png")

# %% [markdown]
# In `kl_heatmaps.png`, layer 1's map follows the strokes (digit and clutter alike), and the
# deeper layers' maps are coarser blobs over where the strokes are. A bright edge or corner
# comes from the convolutions' zero padding: units at the border see zeros beyond the canvas,
# an input unlike any inside it. To compare such maps across `beta`, train the same network at
# several values (the Cluttered experiment does, with an untrained network as a control).
