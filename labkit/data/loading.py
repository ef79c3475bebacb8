"""``load``, ``eval_subset`` and ``info``: every dataset as ``TensorDataset(x, y)`` of the same kind.

Explained in notebooks/00_why_compress.ipynb.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import TensorDataset

from labkit.data.catalogue import CATALOGUE, SPLITS, check_split, dataset_name
from labkit.data.local_files import locate_split
from labkit.data.parsing import parsed
from labkit.validate import require_int


def load(name: str = "mnist", split: str = "train") -> TensorDataset:
    """Return one split of a dataset as ``TensorDataset(x, y)``, never touching the network.

    ``x`` is float32 ``[N, C, H, W]`` with ``x = uint8_pixel / 255`` in ``[0, 1]`` (``1x28x28`` for
    digits/MNIST/Fashion-MNIST, ``3x32x32`` for CIFAR-10) and ``y`` is int64 ``[N]`` in
    ``[0, num_classes)``. Files are parsed once per process; every call returns fresh tensors,
    so changing them in place never changes what the next call returns. Missing files raise
    ``DatasetNotFoundError`` (a ``FileNotFoundError``) saying where to put them; a file that fails
    its checksum raises ``ChecksumError`` (a ``ValueError``).
    Explained in notebooks/00_why_compress.ipynb.
    """
    name, split = dataset_name(name), check_split(split)
    images, labels = parsed(name, split, locate_split(name, split))
    return TensorDataset(images.to(torch.float32).div_(255.0), labels.clone())


def eval_subset(name: str = "mnist", n: int = 512, seed: int = 0) -> TensorDataset:
    """A fixed, seeded, class-balanced subset of the *test* split, for fast interactive evaluation.

    Returns ``TensorDataset(x, y)`` like ``load(name, "test")`` but with ``min(n, N_test)`` samples,
    kept in test-split order. Classes are taken round-robin from a seeded shuffle, so every class
    gets ``n // num_classes`` samples (give or take one) as long as it has that many.
    Explained in notebooks/00_why_compress.ipynb.
    """
    name = dataset_name(name)
    n = require_int("n", n, low=1)
    seed = require_int("seed", seed, low=0, high=2**32 - 1)
    x, y = load(name, "test").tensors
    index = torch.from_numpy(_balanced_indices(y.numpy(), n, seed))
    return TensorDataset(x[index], y[index])


def info(name: str) -> dict:
    """Facts about a dataset: ``shape`` (C, H, W), ``num_classes``, ``class_names``, ``sizes``
    (samples per split), ``licence``, ``source`` and the original ``files``; reads no file.
    Explained in notebooks/00_why_compress.ipynb.
    """
    name = dataset_name(name)
    card = CATALOGUE[name]
    return {
        "name": name,
        "shape": card.shape,
        "num_classes": len(card.class_names),
        "class_names": card.class_names,
        "sizes": dict(zip(SPLITS, card.sizes)),
        "licence": card.licence,
        "source": card.source,
        "files": tuple(f.filename for f in card.files),
    }


def _balanced_indices(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Sorted indices of ``min(n, len(labels))`` samples taken round-robin over classes.

    Shuffle with the seed, give each sample its rank within its class, then order by (rank,
    class): the first ``n`` hold one sample of each class before any class gets a second.
    """
    order = np.random.RandomState(seed).permutation(len(labels))
    rank = np.empty(len(labels), dtype=np.int64)
    for c in np.unique(labels):
        members = order[labels[order] == c]
        rank[members] = np.arange(len(members))
    return np.sort(np.lexsort((labels, rank))[:n])
