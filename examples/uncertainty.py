"""MNIST uncertainty with mc_predict: the mutual information rises on rotated and noised digits.

Trains a small MLP (784 -> 256 -> 256 -> 10, Information Dropout on both hidden layers, IB loss)
on the offline MNIST 5k subset in each backend, then runs ``mc_predict`` with the noise on over
held-out test digits: clean, rotated by 90 degrees, and with Gaussian pixel noise. The mutual
information (the epistemic part of the predictive entropy) should be lowest on clean digits.

    python examples/uncertainty.py --backend all --out results/uncertainty   # every backend, then the plot
    python examples/uncertainty.py --backend torch                            # one backend, print only

Each backend runs in its own process (``--backend all`` starts them one after the other).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

BACKENDS = ("torch", "tensorflow", "jax")
CONDITIONS = ("clean", "rotated 90", "noise 0.5", "noise 1.0")


def corrupt(x: np.ndarray, condition: str, seed: int) -> np.ndarray:
    """Test images [n, 784] in [0, 1] under ``condition`` (a rotation, or Gaussian pixel noise clipped to [0, 1])."""
    if condition == "clean":
        return x
    if condition.startswith("rotated"):
        k = int(condition.split()[1]) // 90
        return np.rot90(x.reshape(-1, 28, 28), k, axes=(1, 2)).reshape(-1, 784).copy()
    sigma = float(condition.split()[1])
    noise = np.random.default_rng(seed).normal(0.0, sigma, x.shape)
    return np.clip(x + noise, 0.0, 1.0).astype(np.float32)


def data(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from idrop.data import mnist_splits, stratified_subset

    x_train, y_train, x_test, y_test, _ = mnist_splits(args.data_dir)
    x_train, y_train = stratified_subset(x_train, y_train, args.limit)
    x_test, y_test = stratified_subset(x_test, y_test, args.n_test)
    return x_train, y_train, x_test, y_test


def batches(n: int, size: int, rng: np.random.Generator) -> list[np.ndarray]:
    return np.array_split(rng.permutation(n), max(1, n // size))


def run_torch(args, x_train, y_train, x_test):
    import torch
    import torch.nn.functional as F
    from torch import nn

    from idrop.backends.torch import InfoDropout, ib_loss, mc_predict

    torch.manual_seed(args.seed)
    model = nn.Sequential(InfoDropout(nn.Linear(784, 256)), InfoDropout(nn.Linear(256, 256)), nn.Linear(256, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    xt, yt, rng = torch.from_numpy(x_train), torch.from_numpy(y_train), np.random.default_rng(args.seed)
    for _ in range(args.epochs):
        model.train()
        for idx in batches(len(xt), 100, rng):
            loss = ib_loss(F.cross_entropy(model(xt[idx]), yt[idx]), model, args.beta, len(xt))
            opt.zero_grad()
            loss.backward()
            opt.step()
    return lambda x: mc_predict(model, torch.from_numpy(x), args.samples, chunk=args.chunk, seed=args.seed)


def run_tensorflow(args, x_train, y_train, x_test, package="idrop.backends.tensorflow"):
    import importlib

    import keras

    idrop_keras = importlib.import_module(package)
    InfoDropout, mc_predict = idrop_keras.InfoDropout, idrop_keras.mc_predict

    keras.utils.set_random_seed(args.seed)
    kw = dict(beta=args.beta, n_train=len(x_train))
    model = keras.Sequential(
        [
            keras.Input((784,)),
            InfoDropout(keras.layers.Dense(256), seed=args.seed, **kw),
            InfoDropout(keras.layers.Dense(256), seed=args.seed + 1, **kw),
            keras.layers.Dense(10),
        ]
    )
    model.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x_train, y_train, batch_size=100, epochs=args.epochs, shuffle=True, verbose=0)
    return lambda x: mc_predict(model, x, args.samples, chunk=args.chunk, seed=args.seed)


def run_keras(args, x_train, y_train, x_test):
    """The same Keras model on whichever Keras backend runs (KERAS_BACKEND)."""
    return run_tensorflow(args, x_train, y_train, x_test, package="idrop.backends.keras")


def run_jax(args, x_train, y_train, x_test):
    import jax.numpy as jnp
    import optax
    from flax import nnx

    from idrop.backends.jax import InfoDropout, ib_loss, mc_predict

    class MLP(nnx.Module):
        def __init__(self, rngs: nnx.Rngs) -> None:
            self.h1 = InfoDropout(nnx.Linear(784, 256, rngs=rngs), rngs=rngs)
            self.h2 = InfoDropout(nnx.Linear(256, 256, rngs=rngs), rngs=rngs)
            self.out = nnx.Linear(256, 10, rngs=rngs)

        def __call__(self, x):
            return self.out(self.h2(self.h1(x)))

    @nnx.jit(static_argnames=("n_train",))
    def step(model, opt, x, y, n_train):
        def loss_fn(model):
            task = optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()
            return ib_loss(task, model, args.beta, n_train)

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        opt.update(model, grads)
        return loss

    model = MLP(nnx.Rngs(params=args.seed, dropout=args.seed + 1))
    opt = nnx.Optimizer(model, optax.adam(1e-3), wrt=nnx.Param)
    rng = np.random.default_rng(args.seed)
    for _ in range(args.epochs):
        for idx in batches(len(x_train), 100, rng):
            step(model, opt, jnp.asarray(x_train[idx]), jnp.asarray(y_train[idx]), len(x_train))
    return lambda x: mc_predict(model, jnp.asarray(x), args.samples, chunk=args.chunk, seed=args.seed)


def one_backend(args: argparse.Namespace) -> dict:
    x_train, y_train, x_test, y_test = data(args)
    start = time.perf_counter()
    predict = {"torch": run_torch, "tensorflow": run_tensorflow, "jax": run_jax, "keras": run_keras}[args.backend](
        args, x_train, y_train, x_test
    )
    rows = {}
    for i, condition in enumerate(CONDITIONS):
        out = predict(corrupt(x_test, condition, seed=args.seed + i))
        mean, mi, h = (np.asarray(a, dtype=np.float64) for a in (out.mean, out.mutual_information, out.entropy))
        rows[condition] = {
            "mutual_information": float(mi.mean()),
            "mutual_information_sem": float(mi.std() / np.sqrt(len(mi))),
            "entropy": float(h.mean()),
            "error": float(np.mean(mean.argmax(-1) != y_test)),
        }
        print(
            f"{args.backend:10s} {condition:11s} MI {rows[condition]['mutual_information']:.4f} nats  "
            f"entropy {rows[condition]['entropy']:.3f}  error {100 * rows[condition]['error']:.1f}%"
        )
    return {"backend": args.backend, "seconds": round(time.perf_counter() - start, 1), "conditions": rows}


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.6))
    width = 0.8 / len(results)
    for j, res in enumerate(results):
        mi = [res["conditions"][c]["mutual_information"] for c in CONDITIONS]
        sem = [res["conditions"][c]["mutual_information_sem"] for c in CONDITIONS]
        ax.bar(
            np.arange(len(CONDITIONS)) + (j - (len(results) - 1) / 2) * width,
            mi,
            width,
            yerr=sem,
            label=res["backend"],
            capsize=2,
        )
    ax.set_xticks(np.arange(len(CONDITIONS)), CONDITIONS)
    ax.set_ylabel("mean mutual information (nats)")
    ax.set_title("MNIST test digits: epistemic uncertainty from mc_predict")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # "keras": the Keras layers on whichever Keras backend runs (KERAS_BACKEND); not part of "all",
    # whose tensorflow run is the same layers on Keras's TensorFlow backend.
    p.add_argument("--backend", choices=(*BACKENDS, "keras", "all"), default="all")
    p.add_argument("--data-dir", default=os.environ.get("IDROP_DATA_DIR"))
    p.add_argument("--out", default=None, help="folder for results.json, table.md and the plot (with --backend all)")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--limit", type=int, default=None, help="train on N images, equally many of each digit")
    p.add_argument("--n-test", type=int, default=500, help="test digits per condition")
    p.add_argument("--samples", type=int, default=30, help="stochastic forward passes per digit")
    p.add_argument("--chunk", type=int, default=10, help="passes per vectorised call")
    p.add_argument("--beta", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help=argparse.SUPPRESS)  # where a child process writes its row
    args = p.parse_args()

    if args.backend != "all":
        row = one_backend(args)
        if args.json:
            Path(args.json).write_text(json.dumps(row))
        return
    out = Path(args.out) if args.out else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
    results = []
    for backend in BACKENDS:
        child = [a for a in sys.argv[1:] if not a.startswith("--backend") and a not in (*BACKENDS, "all")]
        tmp = Path(out or ".") / f".{backend}.json"
        cmd = [sys.executable, __file__, "--backend", backend, "--json", str(tmp), *child]
        subprocess.run(cmd, check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
        results.append(json.loads(tmp.read_text()))
        tmp.unlink()
    ordered = all(
        r["conditions"]["clean"]["mutual_information"] < r["conditions"][c]["mutual_information"]
        for r in results
        for c in CONDITIONS[1:]
    )
    print(f"mutual information lowest on clean digits in every backend: {ordered}")
    if out:
        command = "python examples/uncertainty.py " + " ".join(sys.argv[1:])
        (out / "results.json").write_text(json.dumps({"command": command, "results": results}, indent=1) + "\n")
        lines = [
            f"Command: `{command}`",
            "",
            "| backend | "
            + " | ".join(f"MI {c}" for c in CONDITIONS)
            + " | error clean | error rotated | wall s (shared CPU) |",
            "|---" * (len(CONDITIONS) + 4) + "|",
        ]
        for r in results:
            c = r["conditions"]
            mi = " | ".join(f"{c[k]['mutual_information']:.4f}" for k in CONDITIONS)
            err = f"{100 * c['clean']['error']:.1f}% | {100 * c['rotated 90']['error']:.1f}%"
            lines.append(f"| {r['backend']} | {mi} | {err} | {r['seconds']} |")
        lines += ["", f"Mutual information lowest on clean digits in every backend: {ordered}."]
        (out / "table.md").write_text("\n".join(lines) + "\n")
        plot(results, out / "mutual_information.png")
        print(f"wrote {out}/results.json, table.md, mutual_information.png")


if __name__ == "__main__":
    main()
