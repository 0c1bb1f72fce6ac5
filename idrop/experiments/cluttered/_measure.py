"""Localisation measures that ink cannot fool (framework-free).

The raw measure of the previous protocol, (KL share inside the digit's box) / (box share of
the grid), is large for any map that follows the image's ink: the digit is the densest ink on
the canvas, so even raw pixels score far above 1. The measures here divide the KL share inside
the box by the share, inside the same box, of a map that carries no learned selection:

* ink: the input image summed over the cells of the layer's grid;
* activation energy: the layer's own noiseless activations, ``sum_c f_c^2`` per position.

A ratio of 1 means the KL goes where the ink (or the activations) go, no more; above 1, the
layer lets relatively more information through on the digit than its ink (or activations) would
predict; below 1, relatively less.
"""

from __future__ import annotations

import math

import numpy as np

from idrop.experiments._common import box_on_grid


def _inside(boxes: np.ndarray, canvas: int, size: int) -> np.ndarray:
    """``[n, size, size]`` mask of the grid cells each image's canvas box touches."""
    grid = box_on_grid(boxes, canvas, size)
    inside = np.zeros((len(grid), size, size), dtype=bool)
    for i, (y0, x0, y1, x1) in enumerate(grid):
        inside[i, y0:y1, x0:x1] = True
    return inside


def shares_in_box(maps: np.ndarray, boxes: np.ndarray, canvas: int) -> np.ndarray:
    """Per image, the share of a non-negative map's mass inside the digit's box.

    .. math:: s_i = \\sum_{p \\in B_i} m_i(p) / \\sum_p m_i(p)

    Args:
        maps: ``[n, h, h]`` non-negative maps on a layer's grid.
        boxes: ``[n, 4]`` canvas boxes ``(y0, x0, y1, x1)``, end-exclusive.
        canvas: The canvas side the boxes refer to.

    Returns:
        ``[n]`` shares in [0, 1]; an all-zero map has share 0.
    """
    m = np.asarray(maps, dtype=np.float64)
    if m.ndim != 3 or m.shape[1] != m.shape[2]:
        raise ValueError(f"maps must be [n, h, h]; received shape {m.shape}")
    if (m < 0).any():
        raise ValueError("maps must be non-negative (subtract the map's minimum first if needed)")
    inside = _inside(boxes, canvas, m.shape[1])
    total = m.sum(axis=(1, 2))
    return np.where(total > 0, (m * inside).sum(axis=(1, 2)) / np.maximum(total, 1e-300), 0.0)


def ink_on_grid(images: np.ndarray, size: int) -> np.ndarray:
    """The input's ink summed over each cell of a ``size`` x ``size`` grid.

    A stride-2 layer ``k`` blocks deep sees the canvas in cells of ``canvas / size`` pixels;
    the canvas is zero-padded at the bottom and right to a multiple of ``size`` (as a 'same'
    convolution's grid covers it).
    """
    x = np.asarray(images, dtype=np.float64)
    n, h, w = x.shape
    f = math.ceil(max(h, w) / size)
    padded = np.zeros((n, size * f, size * f))
    padded[:, :h, :w] = x
    return padded.reshape(n, size, f, size, f).sum(axis=(2, 4))


def localisation(
    kl: np.ndarray, energy: np.ndarray, images: np.ndarray, boxes: np.ndarray, canvas: int
) -> dict[str, float]:
    """The localisation figures of one layer, averaged over the test images.

    Returns a dict with the mean shares inside the box of the KL (``kl_share``), the ink
    (``ink_share``), the activation energy (``energy_share``) and the box's own cells
    (``box_share``), and the three ratios ``kl_over_ink``, ``kl_over_energy`` and
    ``kl_over_box`` (the raw measure, which ink alone inflates). Ratios are of the means.
    ``excess_kl_share`` and ``excess_kl_over_ink``: the same for the KL above each map's minimum.
    """
    kl = np.asarray(kl, dtype=np.float64)
    size = kl.shape[-1]
    kl_share = float(shares_in_box(kl, boxes, canvas).mean())
    # The KL above each map's own minimum: what the official heat maps show (cluttered.py:220). The
    # minimum is the floor a layer pays everywhere, blank canvas included.
    excess = kl - kl.min(axis=(1, 2), keepdims=True)
    excess_share = float(shares_in_box(excess, boxes, canvas).mean())
    ink_share = float(shares_in_box(ink_on_grid(images, size), boxes, canvas).mean())
    energy_share = float(shares_in_box(energy, boxes, canvas).mean())
    box_share = float(_inside(boxes, canvas, size).mean())
    return {
        "size": int(size),
        "kl_share": kl_share,
        "ink_share": ink_share,
        "energy_share": energy_share,
        "box_share": box_share,
        "kl_over_ink": kl_share / ink_share if ink_share > 0 else float("nan"),
        "kl_over_energy": kl_share / energy_share if energy_share > 0 else float("nan"),
        "kl_over_box": kl_share / box_share,
        "excess_kl_share": excess_share,
        "excess_kl_over_ink": excess_share / ink_share if ink_share > 0 else float("nan"),
    }
