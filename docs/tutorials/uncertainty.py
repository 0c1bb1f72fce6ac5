# %% [markdown]
# # Uncertainty with `mc_predict`
#
# Information Dropout's noise is a learned, input-dependent multiplicative noise, so a network
# trained with it is also a Monte-Carlo ensemble: run it several times with the noise on and
# the spread of its predictions says how sure it is. `mc_predict` does exactly that, with every
# other layer (batch norm, plain dropout) in evaluation, and returns `MCPrediction(mean, std,
# entropy, mutual_information)`. The **mutual information** between the prediction and the
# noise is the epistemic part of the predictive entropy: it is high where the samples disagree.
#
# This notebook trains a small perceptron in PyTorch on 4,000 MNIST images for a few epochs,
# then compares the mutual information on clean test digits with that on rotated and on noisy
# ones. The same call in Keras and in JAX closes the notebook. `examples/uncertainty.py` runs
# the full comparison in every backend (its table is in the repository's `results/uncertainty/`).

# %%
import os

import numpy as np
import torch

from idrop.backends.torch import InfoDropout, ib_loss, mc_predict, sampling
from idrop.data import mnist_splits, stratified_subset

torch.manual_seed(0)
torch.set_num_threads(1)  # small matrices: one thread is fastest on a shared CPU

x_train, y_train, x_test, y_test, _ = mnist_splits(os.environ.get("IDROP_DATA_DIR"))
x_train, y_train = stratified_subset(x_train, y_train, 4000)
x_test, y_test = x_test[:1000], y_test[:1000]

# %% [markdown]
# ## A network trained with Information Dropout

# %%
model = torch.nn.Sequential(
    InfoDropout(torch.nn.Linear(784, 256), max_alpha=0.5),
    InfoDropout(torch.nn.Linear(256, 256), max_alpha=0.5),
    torch.nn.Linear(256, 10),
)
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
x, y = torch.from_numpy(x_train), torch.from_numpy(y_train)
rng = np.random.default_rng(0)
model.train()
for _ in range(5):
    for idx in np.array_split(rng.permutation(len(x)), len(x) // 100):
        loss = ib_loss(torch.nn.functional.cross_entropy(model(x[idx]), y[idx]), model, beta=1.0, n_train=len(x))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

# %% [markdown]
# ## Three test sets
#
# The clean test digits, the same digits rotated by 90 degrees (images the network has never
# seen in that pose), and the clean digits with Gaussian pixel noise.

# %%
rotated = np.rot90(x_test.reshape(-1, 28, 28), k=1, axes=(1, 2)).reshape(-1, 784).copy()
noisy = np.clip(x_test + np.random.default_rng(1).normal(0.0, 0.5, x_test.shape), 0, 1).astype(np.float32)
sets = {"clean": x_test, "rotated 90": rotated, "noise 0.5": noisy}

# %% [markdown]
# ## `mc_predict`
#
# 30 forward passes with the noise on, 10 at a time (`chunk` repeats the batch inside one call;
# it changes memory use, not the result). `mean` is the predictive distribution; the mutual
# information is per example. `mc_predict` leaves the model in the mode it found it in, and
# leaves the layers' KL records alone.

# %%
model.eval()
results = {}
for name, images in sets.items():
    out = mc_predict(model, torch.from_numpy(images), n_samples=30, chunk=10, seed=0)
    error = (out.mean.argmax(-1).numpy() != y_test).mean()
    results[name] = out
    print(
        f"{name:>10}: error {100 * error:5.1f}%  entropy {out.entropy.mean():.3f}"
        f"  mutual information {out.mutual_information.mean():.4f}"
    )
print(out.mean.shape, out.std.shape, out.entropy.shape, out.mutual_information.shape)
assert not model.training

mi = {name: float(out.mutual_information.mean()) for name, out in results.items()}
assert mi["clean"] < mi["rotated 90"] and mi["clean"] < mi["noise 0.5"]

# %% [markdown]
# The mutual information printed above is lowest on the clean digits and higher on both
# shifted sets (the `assert` checks it). Each sample's noise depends only on `(seed, sample)`,
# so another `chunk` gives the same numbers up to float32 rounding:

# %%
again = mc_predict(model, torch.from_numpy(x_test), n_samples=30, chunk=7, seed=0)
torch.testing.assert_close(again.mean, results["clean"].mean, rtol=1e-5, atol=1e-6)
print("chunk=7 gives the chunk=10 result")

# %% [markdown]
# The examples the network is least sure of, by mutual information, are a list to send to a
# person; here are the five clean test digits with the highest one and what the network said:

# %%
worst = torch.argsort(results["clean"].mutual_information, descending=True)[:5]
for i in worst.tolist():
    p = results["clean"].mean[i]
    mi_i = float(results["clean"].mutual_information[i])
    print(f"test digit {i}: label {y_test[i]}, predicted {int(p.argmax())} (p={float(p.max()):.2f}), MI {mi_i:.3f}")

# %% [markdown]
# `sampling(model)` is the switch `mc_predict` uses, for a loop of your own: inside it the
# model is in evaluation except Information Dropout's noise.

# %%
with torch.no_grad(), sampling(model):
    draws = torch.stack([model(torch.from_numpy(x_test[:4])).softmax(-1) for _ in range(5)])
print(draws.std(0).max(-1).values)  # the samples differ: the noise is on
with torch.no_grad():
    assert torch.equal(model(torch.from_numpy(x_test[:4])), model(torch.from_numpy(x_test[:4])))  # off again

# %% [markdown]
# ## The same call in Keras and JAX
#
# `mc_predict` has the same name, arguments and result in every backend. In Keras
# (`idrop.backends.keras` on any Keras backend, or `idrop.backends.tensorflow`) the batch is
# repeated `chunk` times as in torch; in JAX the keys of a chunk are `vmap`-ed, so any input the
# model takes works. Untrained networks here: the point is the call.

# %%
import keras  # noqa: E402

from idrop.backends.keras import InfoDropout as KerasInfoDropout  # noqa: E402
from idrop.backends.keras import mc_predict as keras_mc_predict  # noqa: E402

keras_model = keras.Sequential(
    [keras.Input((784,)), KerasInfoDropout(keras.layers.Dense(64), seed=0), keras.layers.Dense(10)]
)
out = keras_mc_predict(keras_model, x_test[:100], n_samples=20, seed=0)
print(keras.backend.backend(), out.mean.shape, float(np.mean(out.mutual_information)))

# %%
import jax.numpy as jnp  # noqa: E402
from flax import nnx  # noqa: E402

from idrop.backends.jax import InfoDropout as NNXInfoDropout  # noqa: E402
from idrop.backends.jax import mc_predict as jax_mc_predict  # noqa: E402


class Net(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.drop = NNXInfoDropout(nnx.Linear(784, 64, rngs=rngs), rngs=rngs)
        self.out = nnx.Linear(64, 10, rngs=rngs)

    def __call__(self, x):
        return self.out(self.drop(x))


out = jax_mc_predict(Net(nnx.Rngs(0)), jnp.asarray(x_test[:100]), n_samples=20, seed=0)
print(out.mean.shape, float(out.mutual_information.mean()))
