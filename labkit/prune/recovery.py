"""How much does fine-tuning recover after pruning? Accuracy along the fine-tuning run, at checkpoints.

Seed 002 §9.1 asks why accuracy collapses after pruning and gives two causes: the ratio is too high
(9.1.1) and the fine-tuning is too short (9.1.2). They are two axes of one grid: prune a trained model
to each ratio, fine-tune it, and record the accuracy after 0, a few, more... optimizer steps.
``recovery_curve`` does one row of that grid in one run — the checkpoints lie on a single fine-tuning
trajectory (constant learning rate), which is exactly what separate runs of those lengths would give,
at the cost of the longest one. Evaluate on a *validation* split held out from the training images to
choose a setting (seed 001 §9.4), and report the chosen one on the test set.
Explained in notebooks/15_robustness_faq_trends.ipynb.
"""
from __future__ import annotations

import copy

import torch
from torch import nn
from torch.utils.data import TensorDataset

from labkit import train
from labkit.prune.masks import reapply_masks
from labkit.prune.unstructured import global_magnitude_prune
from labkit.validate import require_float, require_int


class _LastCheckpoint(Exception):
    """Raised by the fine-tuning's ``after_step`` once the last checkpoint is recorded."""


def recovery_curve(model: nn.Module, amount: float, train_data: TensorDataset, eval_sets: dict,
                   checkpoints=(0, 50, 200, 800), *, lr: float = 1e-3, batch_size: int = 64,
                   seed: int = 0) -> dict[int, dict[str, torch.Tensor]]:
    """``{step: {name: per-image results bool [N]}}`` of a copy of ``model`` pruned to ``amount``.

    The copy loses the globally smallest ``amount`` ∈ [0, 1) of its weights (chapter 07's
    ``global_magnitude_prune``), then is fine-tuned with ``train.fit`` on ``train_data`` (Adam, ``lr``,
    ``batch_size``, batch order seeded by ``seed``, masks re-applied after every step) for
    ``max(checkpoints)`` steps; at each checkpoint (0 = right after pruning) it is scored on every set of
    ``eval_sets`` (``{name: labelled data}``) with ``train.correct``. The first k steps do not depend on
    the other checkpoints, so each checkpoint is what a run of exactly that length gives.
    ``model`` is not modified.
    Explained in notebooks/15_robustness_faq_trends.ipynb.
    """
    amount = require_float("amount", amount, 0.0, 1.0, high_open=True)
    steps = sorted({require_int("checkpoints", c, 0, 1_000_000) for c in checkpoints})
    if not steps or not isinstance(eval_sets, dict) or not eval_sets:
        raise ValueError("checkpoints must hold at least one step count and eval_sets at least one {name: data}")
    batch_size, seed = require_int("batch_size", batch_size, 1, None), require_int("seed", seed, 0, 2**31 - 1)
    pruned = copy.deepcopy(model)
    global_magnitude_prune(pruned, amount)
    results = {}

    def record(step: int) -> None:
        results[step] = {name: train.correct(pruned, data) for name, data in eval_sets.items()}

    if steps[0] == 0:
        record(0)
    if steps[-1] > 0:
        done = [0]

        def after_step(m: nn.Module) -> None:
            reapply_masks(m)
            done[0] += 1
            if done[0] in steps:
                record(done[0])
            if done[0] == steps[-1]:
                raise _LastCheckpoint    # train.fit has no step limit: leave its loop here

        epochs = -(-steps[-1] * batch_size // len(train_data))
        try:
            train.fit(pruned, train_data, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed, progress=False,
                      after_step=after_step)
        except _LastCheckpoint:
            pass
    return results
