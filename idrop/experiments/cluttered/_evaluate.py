"""What every backend does with its test-set maps, once they are NumPy arrays (framework-free)."""

from __future__ import annotations

from typing import Any

import numpy as np

from idrop.experiments import ResultDir, Run, RunKey, run_grid

from ._measure import localisation

#: Fig. 2 of the paper shows the first three Information Dropout layers.
N_LAYERS = 3


def run_keys(cfg: dict[str, Any]) -> tuple[dict[str, float], list[RunKey]]:
    """The run names (``beta<b>``) with their beta, and the registry keys in training order."""
    betas = {f"beta{b:g}": float(b) for b in cfg["betas"]}
    scale = float(cfg["widths"][0])  # the registry's "width" field: the first block's channels
    return betas, [RunKey(name, scale, s) for name in betas for s in cfg["seeds"]]


def evaluate_maps(
    preds: np.ndarray,
    kls: list[np.ndarray],
    energies: list[np.ndarray],
    cfg: dict[str, Any],
    data: dict[str, np.ndarray],
    results: Any,
    name: str,
) -> dict[str, Any]:
    """Test error and, for layers 1-3, the localisation figures; save the shown images' maps.

    Args:
        preds: ``[n_test]`` predicted classes.
        kls: Per Information Dropout layer, ``[n_test, h, h]`` noiseless KL summed over channels.
        energies: Likewise, the activation energy ``sum_c f_c^2``.
        cfg: The run's configuration (``canvas``, ``show``).
        data: ``x_test``, ``y_test``, ``boxes_test``.
        results: The result folder; the maps go to ``kl_maps/<name>.npz``.
        name: The run's name.
    """
    x, y, boxes = data["x_test"], data["y_test"], data["boxes_test"]
    out: dict[str, Any] = {"test_error": float((np.asarray(preds) != y).mean())}
    arrays = {}
    for i, (kl, energy) in enumerate(zip(kls[:N_LAYERS], energies[:N_LAYERS]), start=1):
        for k, v in localisation(kl, energy, x, boxes, cfg["canvas"]).items():
            out[f"layer{i}_{k}"] = v
        arrays[f"layer{i}"] = np.asarray(kl[: cfg["show"]], dtype=np.float32)
    folder = results.root / "kl_maps"
    folder.mkdir(exist_ok=True)
    np.savez_compressed(folder / f"{name}.npz", **arrays)
    return out


class StopAfter:
    """Wraps a run to exit (status 3) before training past a budget of epochs, all runs together.

    The CLI's hidden ``--stop-after-epochs`` uses it to simulate a kill right after a checkpoint.
    """

    def __init__(self, run: Run, limit: int, trained: list[int]) -> None:
        self.run, self.limit, self.trained = run, limit, trained

    def train_epoch(self, epoch: int) -> Any:
        if self.trained[0] >= self.limit:
            raise SystemExit(3)
        self.trained[0] += 1
        return self.run.train_epoch(epoch)

    def evaluate(self) -> Any:
        return self.run.evaluate()

    def save_state(self, path: Any) -> None:
        self.run.save_state(path)

    def load_state(self, path: Any) -> None:
        self.run.load_state(path)


def train_all(
    backend: Any, results: ResultDir, cfg: dict[str, Any], data: dict[str, np.ndarray], *, progress: bool, stop: Any
) -> list[dict[str, Any]]:
    """Train one run per (beta, seed) with ``backend.make_run``, resumable; return the finished rows."""
    betas, keys = run_keys(cfg)
    trained = [0]

    def make(key: RunKey) -> Run:
        run = backend.make_run(key, betas[key.method], cfg, data, results)
        return run if stop is None else StopAfter(run, stop, trained)

    return run_grid(results, keys, make, epochs=cfg["epochs"], progress=progress)
