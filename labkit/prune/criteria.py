"""Importance criteria for unstructured pruning: a score per weight, the lowest scores are pruned.

* ``magnitude_scores`` — ``|w|`` (the L1 criterion of Han et al. 2015 and seed 001 §4.2.1): a
  small weight contributes little to ``W·x``, so removing it changes the output least.
* ``random_scores`` — uniform noise from a seeded generator: the baseline every criterion must beat.

A score of ``-inf`` marks a weight that is already pruned, so it is pruned again first.
Explained in notebooks/07_unstructured_pruning.ipynb.
"""
from __future__ import annotations

import torch

from labkit.validate import require_float_tensor, require_int


def magnitude_scores(weight: torch.Tensor) -> torch.Tensor:
    """``|w|`` element-wise: float tensor of ``weight``'s shape (the L1-magnitude criterion).

    Explained in notebooks/07_unstructured_pruning.ipynb.
    """
    require_float_tensor("weight", weight)
    return weight.detach().abs()


def random_scores(weight: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Uniform ``[0, 1)`` scores of ``weight``'s shape from ``torch.Generator().manual_seed(seed)``.

    The values of ``weight`` are ignored; the same seed and shape give the same scores.
    Explained in notebooks/07_unstructured_pruning.ipynb.
    """
    require_float_tensor("weight", weight)
    seed = require_int("seed", seed, 0, 2**63 - 1)
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(weight.shape, generator=generator, dtype=torch.float64).to(weight.device)


CRITERIA = {"magnitude": magnitude_scores, "random": random_scores}
