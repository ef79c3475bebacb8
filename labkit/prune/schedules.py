"""Pruning schedules: how fast to go from a dense model to the final sparsity, with fine-tuning.

* **one-shot** — prune to the final sparsity once, then fine-tune: ``[s_f]``.
* **iterative** (Han et al. 2015, "Learning both Weights and Connections") — alternate pruning and
  retraining in ``rounds`` equal steps: ``[s_f·1/R, s_f·2/R, …, s_f]``.
* **AGP**, automated gradual pruning (Zhu & Gupta 2017, "To prune, or not to prune"): the cubic
  ``s_t = s_f + (s_i − s_f)(1 − t/n)³`` for ``t = 1 … n`` — big steps while many redundant weights
  remain, small steps near the end when every weight counts.

A schedule is a plain list of target sparsities, one per round; ``prune_and_finetune`` prunes to
each (globally, magnitude by default) and fine-tunes with ``train.fit``, re-applying the masks
after every optimizer step so pruned weights stay exactly zero.
Explained in notebooks/07_unstructured_pruning.ipynb.
"""
from __future__ import annotations

from torch import nn

from labkit import train
from labkit.prune.criteria import CRITERIA
from labkit.prune.masks import reapply_masks, sparsity
from labkit.prune.unstructured import global_prune
from labkit.validate import require_choice, require_float, require_int


def agp_sparsity(step: int, n_steps: int, final: float, initial: float = 0.0) -> float:
    """Zhu & Gupta's cubic schedule: ``s_t = s_f + (s_i − s_f)(1 − t/n)³`` for step ``t`` of ``n``.

    ``step`` is clipped to ``[0, n_steps]``, so ``s_0 = s_i`` and ``s_t = s_f`` for ``t ≥ n``.
    ``final`` and ``initial`` are sparsities in [0, 1]. Explained in notebooks/07_unstructured_pruning.ipynb.
    """
    step = require_int("step", step, 0)
    n_steps = require_int("n_steps", n_steps, 1)
    final, initial = require_float("final", final, 0.0, 1.0), require_float("initial", initial, 0.0, 1.0)
    t = min(step, n_steps) / n_steps
    return final + (initial - final) * (1.0 - t) ** 3


def one_shot_schedule(final: float) -> list[float]:
    """``[final]``: prune once to the final sparsity. Explained in notebooks/07_unstructured_pruning.ipynb."""
    return [require_float("final", final, 0.0, 1.0)]


def iterative_schedule(final: float, rounds: int) -> list[float]:
    """``[final·r/rounds for r = 1 … rounds]``: equal steps, as in Han et al.'s prune-retrain loop.

    Explained in notebooks/07_unstructured_pruning.ipynb.
    """
    final = require_float("final", final, 0.0, 1.0)
    rounds = require_int("rounds", rounds, 1, 10_000)
    return [final * r / rounds for r in range(1, rounds + 1)]


def agp_schedule(final: float, rounds: int, initial: float = 0.0) -> list[float]:
    """``[agp_sparsity(t, rounds, final, initial) for t = 1 … rounds]``, ending exactly at ``final``.

    Explained in notebooks/07_unstructured_pruning.ipynb.
    """
    final = require_float("final", final, 0.0, 1.0)
    rounds = require_int("rounds", rounds, 1, 10_000)
    return [agp_sparsity(t, rounds, final, initial) for t in range(1, rounds + 1)]


def _check_schedule(schedule) -> list[float]:
    if isinstance(schedule, (str, bytes)) or not hasattr(schedule, "__iter__"):
        raise TypeError(f"schedule must be a list of target sparsities, got {type(schedule).__name__}")
    values = [require_float(f"schedule[{i}]", s, 0.0, 1.0) for i, s in enumerate(schedule)]
    if not values:
        raise ValueError("schedule must hold at least one target sparsity, got an empty list")
    return values


def prune_and_finetune(model: nn.Module, train_data, schedule, *, epochs_per_round: int = 1,
                       criterion: str = "magnitude", val_data=None, lr: float = 1e-3, batch_size: int = 64,
                       seed: int = 0, progress: bool = False) -> list[dict]:
    """For each target ``s`` of ``schedule``: ``global_prune(model, s)``, then fine-tune in place.

    Fine-tuning is ``train.fit(model, train_data, epochs=epochs_per_round, lr=lr, ...)`` with
    ``after_step=reapply_masks``: gradients reach only kept weights (the mask re-parametrisation)
    and ``weight_orig`` is re-zeroed after each Adam step, so the number of zeros after training is
    exactly the pruned count. ``epochs_per_round = 0`` prunes without fine-tuning. Returns one dict
    per round: ``{"round", "target", "sparsity" (global, weights only), "pruned_acc" (on
    ``val_data`` right after pruning, else None), "val_acc" (after fine-tuning), "loss"}``.
    The masks stay on the model; call ``masks.remove_all`` to make them permanent.
    Explained in notebooks/07_unstructured_pruning.ipynb.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    targets = _check_schedule(schedule)
    epochs_per_round = require_int("epochs_per_round", epochs_per_round, 0, 10_000)
    criterion = require_choice("criterion", criterion, tuple(CRITERIA))
    history = []
    for i, target in enumerate(targets, start=1):
        global_prune(model, target, criterion, seed=seed)
        pruned_acc = train.evaluate(model, val_data) if val_data is not None else None
        row = {"round": i, "target": target, "sparsity": sparsity(model)["global"], "pruned_acc": pruned_acc,
               "val_acc": pruned_acc, "loss": None}
        if epochs_per_round:
            fit = train.fit(model, train_data, epochs=epochs_per_round, lr=lr, batch_size=batch_size,
                            seed=seed + i, val_data=val_data, progress=progress, after_step=reapply_masks)
            row.update(val_acc=fit[-1]["val_acc"], loss=fit[-1]["loss"])
        history.append(row)
    return history
