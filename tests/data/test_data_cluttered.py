"""The Cluttered MNIST generator: shapes, boxes, clutter sources, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from idrop.data.cluttered import cluttered_mnist


def _digits(n: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = np.zeros((n, 28, 28), np.uint8)
    for i in range(n):  # a random solid rectangle of ink per digit
        y0, x0 = rng.integers(0, 14, 2)
        h, w = rng.integers(3, 14, 2)
        x[i, y0 : y0 + h, x0 : x0 + w] = rng.integers(1, 256)
    return x, np.arange(n) % 10


def test_shapes_and_dtypes() -> None:
    x, y = _digits()
    out = cluttered_mnist(x, y, 30, canvas=60, seed=0)
    assert out.images.shape == (30, 60, 60) and out.images.dtype == np.float32
    assert out.labels.shape == (30,) and out.labels.dtype == np.int64
    assert out.boxes.shape == (30, 4) and out.boxes.dtype == np.int64
    assert 0.0 <= out.images.min() and out.images.max() <= 1.0
    flat = cluttered_mnist(x.reshape(20, 784).astype(np.float32) / 255, y, canvas=60)
    assert flat.images.shape == (20, 60, 60)
    np.testing.assert_array_equal(flat.labels, y)  # n=None: one per digit, in order


def test_box_is_the_tight_digit_box() -> None:
    x, y = _digits()
    out = cluttered_mnist(x, y, canvas=50, n_distractors=0, seed=3)
    for img, (y0, x0, y1, x1), src in zip(out.images, out.boxes, x, strict=True):
        assert 0 <= y0 < y1 <= 50 and 0 <= x0 < x1 <= 50
        inside = np.zeros_like(img, bool)
        inside[y0:y1, x0:x1] = True
        assert img[~inside].max() == 0  # all ink is inside the box...
        assert img[y0].any() and img[y1 - 1].any() and img[:, x0].any() and img[:, x1 - 1].any()
        assert np.isclose(img.sum(), src.sum() / 255, rtol=1e-5)  # ...and all of the digit


def test_digit_survives_clutter() -> None:
    x, y = _digits()
    out = cluttered_mnist(x, y, canvas=64, n_distractors=30, seed=5)
    for img, (y0, x0, _, _), src in zip(out.images, out.boxes, x, strict=True):
        ink_rows, ink_cols = np.nonzero(src.any(axis=1))[0], np.nonzero(src.any(axis=0))[0]
        oy, ox = y0 - ink_rows[0], x0 - ink_cols[0]  # where the 28 x 28 patch went
        # Clutter only adds (then clips at 1), so every pixel of the digit is still there.
        assert (img[oy : oy + 28, ox : ox + 28] >= src / 255 - 1e-6).all()
    assert out.images.sum() > x.sum() / 255  # and there is clutter


def test_clutter_comes_from_other_digits() -> None:
    x = np.zeros((2, 28, 28), np.uint8)
    x[1] = 255  # digit 0 blank, digit 1 all ink
    out = cluttered_mnist(x, np.array([0, 1]), 200, canvas=40, n_distractors=5, seed=0)
    blank = out.labels == 0
    assert out.images[blank].sum(axis=(1, 2)).min() > 0  # clutter from digit 1
    np.testing.assert_allclose(out.images[~blank].sum(axis=(1, 2)), 784)  # from digit 0: none


def test_deterministic_given_seed() -> None:
    x, y = _digits()
    a = cluttered_mnist(x, y, 16, canvas=48, seed=7)
    b = cluttered_mnist(x, y, 16, canvas=48, seed=7)
    c = cluttered_mnist(x, y, 16, canvas=48, seed=8)
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a.images, c.images)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"canvas": 10}, "argument `canvas`. Expected an int >= 28. Received: canvas=10"),
        ({"canvas": 40.0}, "Expected an int >= 28. Received: canvas=40.0"),
        ({"n_distractors": -1}, "Expected an int >= 0. Received: n_distractors=-1"),
        ({"distractor_size": 29}, "Expected an int in [1, 28]. Received: distractor_size=29"),
        ({"n": 0}, "Expected an int >= 1. Received: n=0"),
    ],
)
def test_invalid_arguments(kwargs: dict, message: str) -> None:
    x, y = _digits()
    with pytest.raises(ValueError) as info:
        cluttered_mnist(x, y, **kwargs)
    assert message in str(info.value)
    assert str(info.value).startswith("Invalid value received for argument")


def test_invalid_images() -> None:
    x, y = _digits()
    with pytest.raises(ValueError, match="shape"):
        cluttered_mnist(x[:, :20], y)
    with pytest.raises(ValueError, match="differ in length"):
        cluttered_mnist(x, y[:3])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        cluttered_mnist(x.astype(np.float32), y)


def test_ten_thousand_images_at_once() -> None:
    # The paper-sized set in one call (vectorised; about 1 s on 2 cores). No time limit here:
    # speed goals live in benchmarks/, and a shared CI machine's load must not fail a test.
    x, y = _digits(100)
    out = cluttered_mnist(x, y, 10_000, seed=0)
    assert out.images.shape == (10_000, 96, 96) and out.labels.shape == (10_000,)
    assert np.isfinite(out.images).all() and out.images.min() >= 0 and out.images.max() <= 1
