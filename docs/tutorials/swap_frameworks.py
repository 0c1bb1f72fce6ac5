# %% [markdown]
# # Swapping frameworks mid-project
#
# The three backends compute the same function from the same weights: the conformance suite
# proves it layer by layer. This notebook shows what that buys you: train a network in PyTorch,
# move its weights into the TensorFlow / Keras and the JAX / Flax NNX versions of the same
# network, and check that all three give the same outputs, in evaluation and in training, KL
# included.
#
# Random streams differ between frameworks by design, so to compare training outputs we pass
# the same standard-normal noise `eps` to every backend with `noise=`: then $z = f\,e^{\alpha\epsilon}$
# and the KL are deterministic functions of the weights and the input.

# %%
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import jax.numpy as jnp
import keras
import numpy as np
import torch
from flax import nnx

import idrop.backends.jax as idj
import idrop.backends.tensorflow as idtf
import idrop.backends.torch as idt
from idrop.data import mnist_splits, stratified_subset

torch.manual_seed(0)
torch.set_num_threads(1)
x_train, y_train, x_test, y_test, _ = mnist_splits(os.environ.get("IDROP_DATA_DIR"))
x_train, y_train = stratified_subset(x_train, y_train, 2000)
x = x_test[:64]  # the batch we compare on

# %% [markdown]
# ## Train in PyTorch
#
# Two Information Dropout layers, one with each prior: ReLU with the log-uniform prior, Softplus
# with the log-normal prior (which has two learnable scalars, `mu` and `log_sigma`).

# %%
SIZES = [(784, 128, "relu"), (128, 64, "softplus")]
N_TRAIN = len(x_train)

torch_layers = torch.nn.ModuleList(
    [idt.InfoDropout(torch.nn.Linear(n_in, n_out), activation=act) for n_in, n_out, act in SIZES]
)
torch_head = torch.nn.Linear(64, 10)
torch_model = torch.nn.Sequential(*torch_layers, torch_head)
optimizer = torch.optim.Adam(torch_model.parameters(), lr=1e-3)
rng = np.random.default_rng(0)
for epoch in range(3):
    for idx in np.array_split(rng.permutation(N_TRAIN), N_TRAIN // 100):
        logits = torch_model(torch.from_numpy(x_train[idx]))
        task = torch.nn.functional.cross_entropy(logits, torch.from_numpy(y_train[idx]))
        loss = idt.ib_loss(task, torch_model, beta=1.0, n_train=N_TRAIN)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    print(f"epoch {epoch + 1}: loss {loss.item():.3f}")

# %% [markdown]
# ## The weights, as NumPy arrays
#
# A framework-neutral checkpoint: for each layer the map's and the alpha branch's weights, and
# the log-normal prior's scalars. PyTorch's `Linear` stores its weight as `[out, in]`; Keras's
# `Dense` and Flax's `nnx.Linear` store a kernel `[in, out]`, so we keep kernels `[in, out]`.

# %%


def linear_weights(linear):
    return {"kernel": linear.weight.detach().numpy().T.copy(), "bias": linear.bias.detach().numpy().copy()}


checkpoint = {
    "layers": [
        {
            "layer": linear_weights(layer.layer),
            "alpha_layer": linear_weights(layer.alpha_layer),
            **(
                {"mu": float(layer.mu.detach()), "log_sigma": float(layer.log_sigma.detach())}
                if hasattr(layer, "mu")
                else {}
            ),
        }
        for layer in torch_layers
    ],
    "head": linear_weights(torch_head),
}
print({k: v.shape for k, v in checkpoint["layers"][0]["layer"].items()}, checkpoint["layers"][1].get("mu"))

# %% [markdown]
# ## Load them into Keras
#
# Build each layer once (a call on a dummy batch creates its variables), then assign.

# %%
tf_layers = [idtf.InfoDropout(keras.layers.Dense(n_out), activation=act, seed=0) for _, n_out, act in SIZES]
tf_head = keras.layers.Dense(10)
h = np.zeros((1, 784), np.float32)
for layer in [*tf_layers, tf_head]:
    h = layer(h)

for layer, saved in zip(tf_layers, checkpoint["layers"]):
    for dense, name in ((layer.layer, "layer"), (layer.alpha_layer, "alpha_layer")):
        dense.kernel.assign(saved[name]["kernel"])
        dense.bias.assign(saved[name]["bias"])
    if "mu" in saved:
        layer.mu.assign(saved["mu"])
        layer.log_sigma.assign(saved["log_sigma"])
tf_head.kernel.assign(checkpoint["head"]["kernel"])
tf_head.bias.assign(checkpoint["head"]["bias"])

# %% [markdown]
# ## Load them into Flax NNX
#
# `nnx.Param` values are replaced with `[...] =`.

# %%
rngs = nnx.Rngs(0, dropout=1)
jax_layers = [
    idj.InfoDropout(nnx.Linear(n_in, n_out, rngs=rngs), activation=act, rngs=rngs) for n_in, n_out, act in SIZES
]
jax_head = nnx.Linear(64, 10, rngs=rngs)
for layer, saved in zip(jax_layers, checkpoint["layers"]):
    for linear, name in ((layer.layer, "layer"), (layer.alpha_layer, "alpha_layer")):
        linear.kernel[...] = jnp.asarray(saved[name]["kernel"])
        linear.bias[...] = jnp.asarray(saved[name]["bias"])
    if "mu" in saved:
        layer.mu[...] = jnp.asarray(saved["mu"], jnp.float32)
        layer.log_sigma[...] = jnp.asarray(saved["log_sigma"], jnp.float32)
jax_head.kernel[...] = jnp.asarray(checkpoint["head"]["kernel"])
jax_head.bias[...] = jnp.asarray(checkpoint["head"]["bias"])

# %% [markdown]
# ## Evaluation: the same predictions
#
# In evaluation every layer returns $f(x)$, so the three networks are the same deterministic
# function. float32 arithmetic in three libraries differs in the last bits (the order of the
# matmul's sums), so we compare with the conformance suite's float32 layer tolerance,
# `rtol=1e-4`, `atol=1e-5`.

# %%
RTOL, ATOL = 1e-4, 1e-5

torch_model.eval()
with torch.no_grad():
    out_torch = torch_model(torch.from_numpy(x)).numpy()

h = x
for layer in tf_layers:
    h = layer(h, training=False)
out_tf = keras.ops.convert_to_numpy(tf_head(h))

h = jnp.asarray(x)
for layer in jax_layers:
    h = layer(h, deterministic=True)
out_jax = np.asarray(jax_head(h))

np.testing.assert_allclose(out_tf, out_torch, rtol=RTOL, atol=ATOL)
np.testing.assert_allclose(out_jax, out_torch, rtol=RTOL, atol=ATOL)
print(
    "evaluation logits agree; largest difference:", np.abs(out_tf - out_torch).max(), np.abs(out_jax - out_torch).max()
)
print(
    "same predictions:",
    (out_torch.argmax(-1) == out_tf.argmax(-1)).all() and (out_torch.argmax(-1) == out_jax.argmax(-1)).all(),
)

# %% [markdown]
# ## Training mode: the same noisy outputs and the same KL
#
# One standard-normal draw per layer, made with NumPy, passed to all three. Each layer's output
# and its per-sample KL (`.kl`, shape `[batch]`) must agree.

# %%
noise_rng = np.random.default_rng(1)
eps = [noise_rng.standard_normal((len(x), n_out)).astype(np.float32) for _, n_out, _ in SIZES]

torch_model.train()
h_torch, h_tf, h_jax = torch.from_numpy(x), x, jnp.asarray(x)
for i, (lt, ltf, lj) in enumerate(zip(torch_layers, tf_layers, jax_layers), start=1):
    with torch.no_grad():
        h_torch = lt(h_torch, noise=torch.from_numpy(eps[i - 1]))
    h_tf = ltf(h_tf, training=True, noise=eps[i - 1])
    h_jax = lj(h_jax, noise=jnp.asarray(eps[i - 1]), deterministic=False)
    z = h_torch.numpy()
    np.testing.assert_allclose(keras.ops.convert_to_numpy(h_tf), z, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(np.asarray(h_jax), z, rtol=RTOL, atol=ATOL)
    kl = lt.kl.numpy()
    np.testing.assert_allclose(keras.ops.convert_to_numpy(ltf.kl), kl, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(np.asarray(lj.kl[...]), kl, rtol=RTOL, atol=ATOL)
    print(f"layer {i}: z and KL agree in the three backends (mean KL per sample {kl.mean():.2f} nats)")

# %% [markdown]
# You can now go on training in any of the three, for instance in JAX with `nnx.jit` on an
# accelerator, and move the weights back the same way. The [API reference](../api/index.md)
# lists the same names in every backend.
