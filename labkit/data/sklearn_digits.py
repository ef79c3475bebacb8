"""The embedded small dataset: scikit-learn's digits (8x8), reshaped to MNIST's 28x28 frame and split
into train and test the same way on every machine."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


_DIGITS_TEST_FRACTION, _DIGITS_SPLIT_SEED = 0.2, 0


def digits_folder() -> Path:
    import sklearn.datasets

    return Path(sklearn.datasets.__file__).parent / "data"


def digits_arrays(split: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    labels = bunch.target.astype(np.int64)
    train, test = _stratified_split(labels, _DIGITS_TEST_FRACTION, _DIGITS_SPLIT_SEED)
    index = train if split == "train" else test
    return _digits_to_mnist_frame(bunch.images[index]), labels[index]


def _digits_to_mnist_frame(images: np.ndarray) -> np.ndarray:
    """8x8 images with values 0..16 -> uint8 ``[N, 1, 28, 28]`` laid out like MNIST.

    MNIST centres each digit in a 20x20 box inside a 28x28 frame, so: scale to [0, 1] (divide by
    16), upsample 8x8 -> 20x20 bilinearly (``align_corners=False``: each output pixel is a convex
    mix of its nearest inputs, so values stay in [0, 1]), pad 4 zero pixels on every side, and
    round to uint8 so that, as for MNIST, every pixel is exactly ``k / 255``.
    """
    x = torch.from_numpy(np.asarray(images, dtype=np.float32) / 16.0)[:, None]
    x = torch.nn.functional.interpolate(x, size=(20, 20), mode="bilinear", align_corners=False)
    x = torch.nn.functional.pad(x, (4, 4, 4, 4))
    return (x * 255.0).round().clamp(0, 255).to(torch.uint8).numpy()


def _stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, test) indices: each class sends ``round(test_fraction * count)`` samples to test.

    Uses ``np.random.RandomState``, whose stream numpy promises never to change, so the split is
    the same on every machine and numpy version.
    """
    rng = np.random.RandomState(seed)
    test = [rng.permutation(np.flatnonzero(labels == c))[:int(round(test_fraction * np.sum(labels == c)))]
            for c in np.unique(labels)]
    test = np.sort(np.concatenate(test))
    return np.setdiff1d(np.arange(len(labels)), test), test
