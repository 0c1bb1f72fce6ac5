"""``plot_kl_maps``: heat maps of KL maps with matplotlib (optional, imported when called; no framework)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np


def _pyplot() -> Any:
    try:
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise ImportError("plot_kl_maps requires matplotlib; install it with: pip install 'idrop[examples]'") from err
    return plt


def position_map(kl: Any, *, index: int = 0, channel_axis: int = -1) -> np.ndarray:
    """One sample's KL map as a 2-D array: conv maps summed over channels, dense maps as one row."""
    arr = np.asarray(kl, dtype=np.float64)[index]
    if arr.ndim >= 2:
        axis = channel_axis if channel_axis < 0 else channel_axis - 1  # without the batch axis
        arr = arr.sum(axis=axis)
    return np.atleast_2d(arr)


def plot_kl_maps(
    maps: Mapping[str, Any], *, index: int = 0, channel_axis: int = -1, image: Any = None, cmap: str = "viridis"
) -> Any:
    """One panel per layer: sample ``index``'s KL per position (conv) or per unit (dense); returns the figure.

    Args:
        maps: ``{layer name: KL map}`` as ``kl_maps`` returns it (arrays of any backend on the CPU).
        index: which sample of the batch to draw.
        channel_axis: the channel axis of conv maps (``-1`` for Keras/Flax, ``1`` for torch).
        image: optionally, the input image of that sample, drawn in the first panel.
        cmap: matplotlib colour map.

    Raises:
        ImportError: when matplotlib is not installed (it is in the ``idrop[examples]`` extra).
    """
    plt = _pyplot()
    panels = [("input", np.asarray(image, dtype=np.float64).squeeze())] if image is not None else []
    panels += [(name, position_map(kl, index=index, channel_axis=channel_axis)) for name, kl in maps.items()]
    fig, axes = plt.subplots(1, len(panels), figsize=(3 * len(panels), 3), squeeze=False)
    for ax, (name, arr) in zip(axes[0], panels):
        im = ax.imshow(arr, cmap="gray" if name == "input" else cmap, aspect="auto" if arr.shape[0] == 1 else "equal")
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        if name != "input":
            fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig
