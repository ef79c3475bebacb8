"""NetAdapt (Yang et al., ECCV 2018): shrink a network step by step until it meets a measured budget.

NetAdapt is an *algorithm*, not a toolkit: "Platform-Aware Neural Network Adaptation for Mobile
Applications". Its loop, adapted here to per-layer unstructured sparsity:

1. measure the resource ``R₀`` of the model (bytes on disk, latency... on *this* machine) and set
   the targets ``R_i = R₀ − i·(R₀ − budget)/iterations``;
2. for every layer, make a *proposal*: prune that layer alone (by magnitude) just enough that the
   measured resource drops to ``R_i`` (a bisection on its sparsity) — or, if that layer alone cannot
   get there, half-way to ``max_sparsity`` (a partial step) — fine-tune the proposal for a few steps
   (*short-term fine-tuning*) and measure its accuracy on a held-out set;
3. keep the proposal that loses least accuracy per unit of resource saved,
   ``(acc_before − acc_proposal)/(R_before − R_proposal)``, and go back to 2 until ``R ≤ budget``.
   (The paper keeps the most accurate proposal; all its proposals save the same ``R_i``, so the two
   agree there — the ratio also ranks the partial steps of small layers fairly.)

The paper then fine-tunes the chosen network for longer (*long-term fine-tuning*); here the caller
does that, with the same budget as the allocations it is compared with. A budget that no allocation
meets raises ``ValueError`` before any work (``allocation.check_budget``).
Explained in notebooks/10_pruning_schedules_automation.ipynb.
"""
from __future__ import annotations

import copy
import time

import torch
from torch import nn
from torch.utils.data import Subset, TensorDataset
from tqdm.auto import tqdm

from labkit import train
from labkit.prune.allocation import Resource, check_budget, layer_names, smallest_amount
from labkit.prune.masks import reapply_masks, sparsity
from labkit.prune.unstructured import layerwise_prune
from labkit.validate import require_float, require_int

SEARCH_STEPS = 10  # bisection steps per proposal: a layer's sparsity to 2⁻¹⁰ of its range


def _with_layer(model: nn.Module, layer: str, amount: float) -> nn.Module:
    work = copy.deepcopy(model)
    layerwise_prune(work, {layer: amount})
    return work


def _short_term_data(train_data, steps: int, batch_size: int, seed: int):
    """``steps · batch_size`` training samples drawn without replacement by a seeded permutation."""
    x_y = train_data if isinstance(train_data, (tuple, list)) else getattr(train_data, "tensors", None)
    n = len(x_y[0]) if x_y is not None else len(train_data)
    idx = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:steps * batch_size]
    return TensorDataset(x_y[0][idx], x_y[1][idx]) if x_y is not None else Subset(train_data, idx.tolist())


def _proposal(model, layer, target, resource, *, data, val_data, lr, batch_size, max_sparsity, seed):
    """Prune ``layer`` of a copy until ``resource ≤ target`` (or to ``max_sparsity``), fine-tune, measure."""
    def meets(amount: float) -> bool:
        return resource(_with_layer(model, layer, amount)) <= target

    now = sparsity(model)["layers"][layer]
    if meets(max_sparsity):
        amount = smallest_amount(meets, max_sparsity, low=now, steps=SEARCH_STEPS)
    else:                          # this layer alone cannot reach the target: a partial step, half of what is left
        amount = now + (max_sparsity - now) / 2
    work = _with_layer(model, layer, amount)
    train.fit(work, data, epochs=1, lr=lr, batch_size=batch_size, seed=seed, progress=False,
              after_step=reapply_masks)
    spent = float(resource(work))
    return work, {"sparsity": amount, "resource": spent, "val_acc": train.evaluate(work, val_data),
                  "meets_target": spent <= target}


def netadapt(model: nn.Module, train_data, val_data, resource: Resource, budget: float, *, iterations: int = 5,
             finetune_steps: int = 50, lr: float = 1e-3, batch_size: int = 64, max_sparsity: float = 0.99,
             layers=None, seed: int = 0, progress: bool = False) -> dict:
    """NetAdapt's greedy search for per-layer sparsities with ``resource(model) ≤ budget``.

    ``model`` is copied, never modified; ``train_data`` feeds the short-term fine-tuning
    (``finetune_steps`` Adam steps of ``batch_size`` per proposal); ``val_data`` is a held-out
    labelled set for the proposals' accuracy (not the test set). ``resource`` is a function
    ``model → number`` such as ``allocation.measured_bytes()``; ``budget`` its largest allowed
    value. Returns ``{"model": the pruned copy (masks on), "allocation": {layer: sparsity},
    "resource", "budget", "seconds", "history": [{"iteration", "target", "resource", "val_acc",
    "chosen", "proposals": {layer: {"sparsity", "resource", "val_acc", "loss_per_unit",
    "meets_target"}}, "allocation" (every layer's sparsity after the step), "seconds"}]}``;
    history[0] is the starting point. Raises ``ValueError`` for a
    budget no allocation meets, a model without prunable layers, or when no layer can shrink further.
    Explained in notebooks/10_pruning_schedules_automation.ipynb.
    """
    names = layer_names(model, layers)
    start_res, _ = check_budget(model, resource, budget, max_sparsity=max_sparsity, layers=names)
    iterations = require_int("iterations", iterations, 1, 1000)
    finetune_steps, batch_size = require_int("finetune_steps", finetune_steps, 1), require_int("batch_size", batch_size, 1)
    lr = require_float("lr", lr, 0.0, 10.0, low_open=True)
    seed = require_int("seed", seed, 0, 2**31)
    work, clock = copy.deepcopy(model), time.perf_counter()
    acc, res = train.evaluate(work, val_data), start_res
    history = [{"iteration": 0, "target": start_res, "resource": res, "val_acc": acc, "chosen": None,
                "proposals": {}, "seconds": 0.0, "allocation": {n: sparsity(work)["layers"][n] for n in names}}]
    with tqdm(total=iterations, desc="NetAdapt", disable=not progress, leave=False) as bar:
        for i in range(1, 4 * iterations + 1):                         # partial steps may need a few more
            if res <= budget:
                break
            target = max(budget, start_res - min(i, iterations) * (start_res - budget) / iterations)
            data = _short_term_data(train_data, finetune_steps, batch_size, seed + i)
            options = {}
            for layer in names:
                if sparsity(work)["layers"][layer] >= max_sparsity:
                    continue
                options[layer] = _proposal(work, layer, target, resource, data=data, val_data=val_data,
                                           lr=lr, batch_size=batch_size, max_sparsity=max_sparsity, seed=seed + i)
            work, acc, res, entry = _choose(options, acc, res, i, target)
            entry.update(seconds=time.perf_counter() - clock,
                         allocation={n: sparsity(work)["layers"][n] for n in names})
            history.append(entry)
            bar.update(1)
    if res > budget:
        raise ValueError(f"NetAdapt stopped at {res:,.6g} above the budget {budget:,.6g}: no layer could shrink further")
    return {"model": work, "allocation": {n: sparsity(work)["layers"][n] for n in names}, "resource": res,
            "budget": float(budget), "seconds": time.perf_counter() - clock, "history": history}


def _choose(options: dict, acc: float, res: float, iteration: int, target: float):
    """The proposal with the least accuracy lost per unit of resource saved (those meeting the target first)."""
    for info in (o[1] for o in options.values()):
        saved = res - info["resource"]
        info["loss_per_unit"] = (acc - info["val_acc"]) / saved if saved > 0 else float("inf")
    useful = {n: o for n, o in options.items() if o[1]["resource"] < res}
    if not useful:
        raise ValueError(f"NetAdapt cannot reduce the resource below {res:,.6g}: every layer is at max_sparsity "
                         "or pruning it saves nothing")
    chosen = min(useful, key=lambda n: useful[n][1]["loss_per_unit"])
    model, info = useful[chosen]
    return model, info["val_acc"], info["resource"], {
        "iteration": iteration, "target": target, "resource": info["resource"], "val_acc": info["val_acc"],
        "chosen": chosen, "proposals": {n: o[1] for n, o in options.items()}}
