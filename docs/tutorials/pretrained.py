# %% [markdown]
# # Into a pretrained model and out again
#
# You have a trained network with plain dropout and want Information Dropout in it, without
# retraining from scratch: `to_info_dropout` rewrites the model, `strip_info_dropout` takes it
# out again for deployment, and `export` writes the result as a graph. At each step this
# notebook checks that the evaluation outputs do not change.
#
# In PyTorch: a perceptron with `Dropout` trained for a few epochs on 4,000 MNIST images stands
# for the pretrained model. A short JAX section at the end does the same with `nnx.Sequential`.
# (Keras has the same three functions; see [Model surgery](../surgery.md).)

# %%
import os

import numpy as np
import torch

from idrop.backends.torch import InfoDropout, export, ib_loss, noise_shapes, strip_info_dropout, to_info_dropout
from idrop.data import mnist_splits, stratified_subset

torch.manual_seed(0)
torch.set_num_threads(1)

x_train, y_train, x_test, y_test, _ = mnist_splits(os.environ.get("IDROP_DATA_DIR"))
x_train, y_train = stratified_subset(x_train, y_train, 4000)
x, y = torch.from_numpy(x_train), torch.from_numpy(y_train)
x_test, y_test = torch.from_numpy(x_test[:2000]), torch.from_numpy(y_test[:2000])


def train(model, epochs, loss_of):
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    model.train()
    for _ in range(epochs):
        for idx in np.array_split(rng.permutation(len(x)), len(x) // 100):
            loss = loss_of(model, model(x[idx]), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()


def test_error(model):
    with torch.no_grad():
        return 100 * (model.eval()(x_test).argmax(-1) != y_test).float().mean().item()


# %% [markdown]
# ## The pretrained model

# %%
net = torch.nn.Sequential(
    torch.nn.Linear(784, 256),
    torch.nn.ReLU(),
    torch.nn.Dropout(0.3),
    torch.nn.Linear(256, 256),
    torch.nn.ReLU(),
    torch.nn.Dropout(0.3),
    torch.nn.Linear(256, 10),
)
net = train(net, 3, lambda model, logits, y: torch.nn.functional.cross_entropy(logits, y))
print(f"pretrained: test error {test_error(net):.1f}%")

# %% [markdown]
# ## In: `to_info_dropout`
#
# Each `Linear -> ReLU` block becomes an `InfoDropout` around the same `Linear`, with its
# trained weights; only the alpha branch is new. `replace="dropout"` takes the blocks followed
# by a dropout layer and removes that layer (the default, `replace="activations"`, takes every
# block with a ReLU or Softplus). Options such as `max_alpha` go to every new layer. The result
# is a copy: `net` is unchanged. In evaluation Information Dropout is the identity and dropout
# is off, so the outputs are those of the pretrained model.

# %%
model = to_info_dropout(net, replace="dropout", max_alpha=0.5)
print(model)
with torch.no_grad():
    torch.testing.assert_close(model(x_test), net(x_test))
print("same evaluation outputs as the pretrained model")
assert not any(isinstance(m, torch.nn.Dropout) for m in model.modules())

# %% [markdown]
# ## Fine-tuning on the Information Bottleneck loss
#
# A short fine-tuning teaches the new alpha branches; `ib_loss` adds the layers' KL.

# %%
n_train = len(x)
model = train(model, 2, lambda m, logits, y: ib_loss(torch.nn.functional.cross_entropy(logits, y), m, 1.0, n_train))
print(f"fine-tuned with Information Dropout: test error {test_error(model):.1f}%")

# %% [markdown]
# ## Out: `strip_info_dropout`
#
# Each `InfoDropout` becomes its map and activation again (`nn.Sequential(Linear, ReLU)`),
# with the fine-tuned weights. The alpha branches are dropped: in evaluation they are unused.

# %%
plain = strip_info_dropout(model)
print(plain)
with torch.no_grad():
    torch.testing.assert_close(plain(x_test), model(x_test))
assert not any(isinstance(m, InfoDropout) for m in plain.modules())
print("same evaluation outputs as the fine-tuned model")

# %% [markdown]
# ## Export
#
# `export(model, path, x)` writes the evaluation graph (`.pt2` with `torch.export`, or `.onnx`);
# `sampling=True` writes the sampling graph, whose inputs are `x` and the standard-normal noise
# of each `InfoDropout` call (shapes from `noise_shapes`), so a runtime without idrop can draw the
# samples for Monte-Carlo prediction. With zero noise the sampling graph gives the evaluation
# output, since the noise is $e^{\alpha \epsilon}$ (the default `mean_one=False`).

# %%
sample = x_test[:64]
export(model, "model.pt2", sample)
export(model, "sampling.pt2", sample, sampling=True)
with torch.no_grad():
    expected = model(sample)
    evaluation = torch.export.load("model.pt2").module()(sample)
    torch.testing.assert_close(evaluation, expected)
    sampler = torch.export.load("sampling.pt2").module()
    shapes = noise_shapes(model, sample)
    print("noise inputs:", shapes)
    zeros = [torch.zeros(s) for s in shapes]
    torch.testing.assert_close(sampler(sample, *zeros), expected)
    draws = torch.stack([sampler(sample, *[torch.randn(s) for s in shapes]) for _ in range(10)])
print("exported graphs agree with the model; spread of 10 noisy draws:", f"{draws.std(0).mean():.3f}")

# %% [markdown]
# ## The same in JAX
#
# Flax NNX finds blocks in `nnx.Sequential`; the new alpha branches need `rngs=`. `export`
# writes `jax.export`'s serialised form.

# %%
import jax  # noqa: E402
from flax import nnx  # noqa: E402

from idrop.backends.jax import export as jax_export  # noqa: E402
from idrop.backends.jax import strip_info_dropout as jax_strip  # noqa: E402
from idrop.backends.jax import to_info_dropout as jax_to_info_dropout  # noqa: E402

jnet = nnx.Sequential(nnx.Linear(784, 128, rngs=nnx.Rngs(0)), nnx.relu, nnx.Linear(128, 10, rngs=nnx.Rngs(1)))
jx = jax.numpy.asarray(x_test[:64].numpy())
jmodel = jax_to_info_dropout(jnet, rngs=nnx.Rngs(0, dropout=1), max_alpha=0.5)
jmodel.eval()
np.testing.assert_allclose(jmodel(jx), jnet(jx), rtol=1e-6, atol=1e-6)
np.testing.assert_allclose(jax_strip(jmodel)(jx), jnet(jx), rtol=1e-6, atol=1e-6)
jax_export(jmodel, "model.jax", jx)
with open("model.jax", "rb") as f:
    loaded = jax.export.deserialize(f.read())
np.testing.assert_allclose(loaded.call(jx), jnet(jx), rtol=1e-6, atol=1e-6)
print("JAX: in, out and exported, the same evaluation outputs")
