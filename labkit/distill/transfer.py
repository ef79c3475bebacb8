"""Transfer sets: the images a student learns from, with or without their labels.

Hinton et al. (2015) call the data a student is distilled on its *transfer set*. It need not be the
teacher's training set, and it need not be labelled: the teacher provides a soft label for every
image. Two ways to cut one from a labelled dataset, both seeded:

- ``random_subset(dataset, n, seed)``        n images with their labels (a small transfer set);
- ``split_labelled(dataset, per_class, seed)``  ``per_class`` labelled images of each class, and
  every other image *without* its label — the few-label setting, where the labels a teacher and a
  student may use are only those few.

Explained in notebooks/11_distillation_soft_labels.ipynb.
"""
from __future__ import annotations

import torch
from torch.utils.data import TensorDataset

from labkit.validate import require_int


def _tensors(dataset) -> tuple[torch.Tensor, torch.Tensor]:
    if not (isinstance(dataset, TensorDataset) and len(dataset.tensors) == 2):
        raise TypeError(f"dataset must be a labelled TensorDataset(x, y) (data.load), got {type(dataset).__name__}")
    return dataset.tensors


def random_subset(dataset: TensorDataset, n: int, seed: int = 0) -> TensorDataset:
    """``n`` samples of ``dataset`` drawn without replacement (seeded), labels kept: ``TensorDataset(x, y)``.

    ``dataset`` is ``TensorDataset(x [N, C, H, W], y [N])``, ``n`` in [1, N]. The samples are in the
    drawn (random) order. Explained in notebooks/11_distillation_soft_labels.ipynb.
    """
    x, y = _tensors(dataset)
    n = require_int("n", n, 1, len(x))
    seed = require_int("seed", seed, 0, 2**32 - 1)
    index = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:n]
    return TensorDataset(x[index], y[index])


def split_labelled(dataset: TensorDataset, per_class: int, seed: int = 0,
                   unlabelled: int | None = None) -> tuple[TensorDataset, torch.Tensor]:
    """``(labelled, unlabelled_x)``: ``per_class`` labelled samples of every class, and other images unlabelled.

    ``labelled`` is ``TensorDataset(x [C·per_class, ...], y)`` (classes in order, samples drawn at random
    with ``seed``); ``unlabelled_x`` float ``[M, ...]`` holds other images, without labels, in a seeded
    random order: all ``N − C·per_class`` of them, or the first ``unlabelled`` (a random subset, and no
    copy of the whole dataset). ``per_class`` ≥ 1 and at most the size of the smallest class.
    Explained in notebooks/11_distillation_soft_labels.ipynb.
    """
    x, y = _tensors(dataset)
    classes = torch.unique(y)
    smallest = int(min((y == c).sum() for c in classes))
    per_class = require_int("per_class", per_class, 1, smallest)
    seed = require_int("seed", seed, 0, 2**32 - 1)
    rest_size = len(x) - per_class * len(classes)
    unlabelled = rest_size if unlabelled is None else require_int("unlabelled", unlabelled, 0, rest_size)
    generator = torch.Generator().manual_seed(seed)
    chosen = []
    for c in classes:
        members = torch.nonzero(y == c).flatten()
        chosen.append(members[torch.randperm(len(members), generator=generator)[:per_class]])
    labelled = torch.cat(chosen)
    rest = torch.ones(len(x), dtype=torch.bool)
    rest[labelled] = False
    others = torch.nonzero(rest).flatten()
    others = others[torch.randperm(len(others), generator=generator)[:unlabelled]]
    return TensorDataset(x[labelled], y[labelled]), x[others]
