"""The lottery ticket hypothesis (Frankle & Carbin, ICLR 2019): iterative magnitude pruning with rewinding.

"A randomly-initialized, dense neural network contains a subnetwork that is initialized such that —
when trained in isolation — it can match the test accuracy of the original network after training
for at most the same number of iterations." Their procedure, *iterative magnitude pruning* (IMP):

1. initialise the network, ``θ₀``, and save ``θ₀``;
2. train it for ``T`` iterations, reaching ``θ_T``;
3. prune ``p`` % of the weights that remain in each layer — those with the smallest ``|θ_T|``;
4. **rewind** the surviving weights to their values in ``θ₀`` (keeping the mask) and go back to 2.

The subnetwork (mask ``m``, initial values ``m ⊙ θ₀``) is a *winning ticket* if it trains to the
dense accuracy. The control: the same mask with a *fresh random* initialisation. Frankle et al.
(2019/2020, "Stabilizing the lottery ticket hypothesis", "Linear mode connectivity") rewind to an
early iteration ``k`` instead of 0 (``θ_k``), which is what makes tickets work on deeper networks.
Each training run records the **early-stopping iteration** — the iteration of minimum validation
loss, evaluated every ``eval_every`` iterations — and the test accuracy of the weights at that
iteration, the two axes of the paper's Figure 3.

Explained in notebooks/10_pruning_schedules_automation.ipynb.
"""
from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Mapping

import torch
from torch import nn
from torch.nn import functional as F

from labkit import train
from labkit.prune.masks import is_pruned, reapply_masks, require_prunable, sparsity
from labkit.prune.unstructured import layerwise_prune
from labkit.validate import require_float, require_int


class _StopTraining(Exception):
    """Raised by the step callback once the requested number of iterations is done."""


def weights_snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of every parameter of ``model`` by its *unpruned* name (``fc1.weight``, not
    ``fc1.weight_orig``): ``θ`` in the notation above. Masks are not part of it.
    Explained in notebooks/10_pruning_schedules_automation.ipynb.
    """
    require_prunable(model)
    return {name.replace("_orig", ""): p.detach().clone() for name, p in model.named_parameters()}


def rewind(model: nn.Module, snapshot: Mapping) -> nn.Module:
    """Set every parameter of ``model`` to its value in ``snapshot`` (``weights_snapshot`` of the same
    architecture), keeping the masks: ``θ ← m ⊙ θ_snapshot``. In place; returns ``model``.

    Raises ``ValueError`` if ``snapshot`` misses a parameter or has another shape.
    Explained in notebooks/10_pruning_schedules_automation.ipynb.
    """
    require_prunable(model)
    if not isinstance(snapshot, Mapping):
        raise TypeError(f"snapshot must be a dict from weights_snapshot, got {type(snapshot).__name__}")
    with torch.no_grad():
        for name, p in model.named_parameters():
            key = name.replace("_orig", "")
            if key not in snapshot:
                raise ValueError(f"snapshot has no parameter {key!r}; was it taken from the same architecture?")
            if tuple(snapshot[key].shape) != tuple(p.shape):
                raise ValueError(f"snapshot[{key!r}] has shape {tuple(snapshot[key].shape)}, "
                                 f"the model's parameter {tuple(p.shape)}")
            p.copy_(snapshot[key])
    reapply_masks(model)
    return model


def prune_remaining(model: nn.Module, rate: float, layer_rates: Mapping | None = None) -> dict[str, float]:
    """Prune ``rate`` of the weights that *remain* in each layer, by magnitude (one IMP round).

    A layer with ``n`` weights of which ``z`` are already pruned ends with
    ``z + round(rate·(n − z))`` zeros, so after ``r`` rounds about ``(1 − rate)^r`` of it remains.
    ``layer_rates`` overrides the rate of some layers (Frankle & Carbin prune LeNet's output layer
    at half the rate). ``rate`` in [0, 1). Returns ``{layer: fraction of weights remaining}``.
    Explained in notebooks/10_pruning_schedules_automation.ipynb.
    """
    layers = require_prunable(model)
    rates = _layer_rates(layers, rate, layer_rates)
    amounts = {}
    for name, module in layers.items():
        n = module.weight_mask.numel() if is_pruned(module) else module.weight.numel()
        zeros = int((module.weight_mask == 0).sum()) if is_pruned(module) else 0
        amounts[name] = (zeros + round(rates[name] * (n - zeros))) / n
    layerwise_prune(model, amounts)
    return {name: 1.0 - s for name, s in sparsity(model)["layers"].items()}


def _layer_rates(layers: Mapping, rate, layer_rates) -> dict[str, float]:
    rate = require_float("rate", rate, 0.0, 1.0, high_open=True)
    rates = dict.fromkeys(layers, rate)
    if layer_rates is not None:
        if not isinstance(layer_rates, Mapping):
            raise TypeError(f"layer_rates must be a dict {{layer: rate}}, got {type(layer_rates).__name__}")
        unknown = [n for n in layer_rates if n not in layers]
        if unknown:
            raise ValueError(f"layer_rates names unknown layer(s) {unknown}; prunable layers are {list(layers)}")
        rates.update({n: require_float(f"layer_rates[{n!r}]", r, 0.0, 1.0, high_open=True)
                      for n, r in layer_rates.items()})
    return rates


def _validation(model: nn.Module, val_data) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) from one pass over ``val_data``."""
    logits = train.predict(model, val_data)
    labels = val_data[1] if isinstance(val_data, (tuple, list)) else val_data.tensors[1]
    return float(F.cross_entropy(logits, labels)), float((logits.argmax(1) == labels).float().mean())


class _Tracker:
    """``after_step`` callable: re-applies the masks, evaluates every ``eval_every`` iterations, keeps
    the weights at the lowest validation loss and a snapshot at ``snapshot_at``, stops at ``stop``."""

    def __init__(self, val_data, eval_every: int, first: int, stop: int, snapshot_at: int | None):
        self.val_data, self.eval_every, self.iteration, self.stop = val_data, eval_every, first, stop
        self.snapshot_at, self.snapshot = snapshot_at, None
        self.curve, self.best_loss, self.best_state, self.best_iteration = [], math.inf, None, first

    def __call__(self, model: nn.Module) -> None:
        reapply_masks(model)
        self.iteration += 1
        if self.iteration == self.snapshot_at:
            self.snapshot = weights_snapshot(model)
        if self.iteration % self.eval_every == 0 or self.iteration == self.stop:
            self.observe(model)
        if self.iteration >= self.stop:
            raise _StopTraining

    def observe(self, model: nn.Module) -> None:
        loss, accuracy = _validation(model, self.val_data)
        self.curve.append((self.iteration, loss, accuracy))
        if loss < self.best_loss:
            self.best_loss, self.best_iteration = loss, self.iteration
            self.best_state = copy.deepcopy(model.state_dict())


def train_with_early_stopping(model: nn.Module, train_data, val_data, *, iterations: int, eval_every: int = 100,
                              start_iteration: int = 0, snapshot_at: int | None = None, lr: float = 1.2e-3,
                              batch_size: int = 60, seed: int = 0, progress: bool = False) -> dict:
    """Train ``model`` (masks kept) from iteration ``start_iteration`` to ``iterations`` with Adam.

    Every ``eval_every`` iterations (and at the last) the validation loss is measured; the
    *early-stopping iteration* is the one with the lowest. The model ends with its *final* weights
    (IMP prunes those); ``best_state`` holds the weights at the early-stopping iteration. Returns
    ``{"curve": [(iteration, val_loss, val_accuracy)], "early_stop_iteration", "best_val_loss", "best_state"
    (a state_dict), "snapshot" (``weights_snapshot`` after iteration ``snapshot_at``, or None),
    "seconds"}``. Frankle & Carbin's LeNet-300-100: Adam, lr 1.2e-3, batches of 60, 50,000 iterations.
    Raises ``ValueError`` if ``start_iteration`` is not before ``iterations``.
    Explained in notebooks/10_pruning_schedules_automation.ipynb.
    """
    require_prunable(model)
    iterations = require_int("iterations", iterations, 1)
    start_iteration = require_int("start_iteration", start_iteration, 0)
    if start_iteration >= iterations:
        raise ValueError(f"start_iteration must be before the end of training: got {start_iteration}, "
                         f"training lasts {iterations} iterations")
    eval_every = require_int("eval_every", eval_every, 1, iterations)
    if snapshot_at is not None:
        snapshot_at = require_int("snapshot_at", snapshot_at, start_iteration + 1, iterations)
    batch_size = require_int("batch_size", batch_size, 1)
    per_epoch = math.ceil(len(train_data[0] if isinstance(train_data, (tuple, list)) else train_data) / batch_size)
    tracker = _Tracker(val_data, eval_every, start_iteration, iterations, snapshot_at)
    start, was_training = time.perf_counter(), model.training
    try:
        train.fit(model, train_data, epochs=math.ceil((iterations - start_iteration) / per_epoch), lr=lr,
                  batch_size=batch_size, seed=seed, progress=progress, after_step=tracker)
    except _StopTraining:
        pass
    finally:
        model.train(was_training)
    return {"curve": tracker.curve, "early_stop_iteration": tracker.best_iteration,
            "best_val_loss": tracker.best_loss, "best_state": tracker.best_state, "snapshot": tracker.snapshot,
            "seconds": time.perf_counter() - start}


def _summary(model: nn.Module, run: dict, test_data) -> dict:
    """Early-stopping iteration, test accuracy there and at the end, fraction of weights remaining."""
    best = copy.deepcopy(model)
    best.load_state_dict(run["best_state"])
    return {"remaining": 1.0 - sparsity(model)["global"], "early_stop_iteration": run["early_stop_iteration"],
            "test_accuracy": train.evaluate(best, test_data), "final_test_accuracy": train.evaluate(model, test_data),
            "best_val_loss": run["best_val_loss"], "seconds": run["seconds"], "curve": run["curve"]}


def lottery_ticket(build: Callable[[int], nn.Module], train_data, val_data, test_data, *, rounds: int,
                   iterations: int, rate: float = 0.2, layer_rates: Mapping | None = None,
                   rewind_iteration: int = 0, reinit_rounds=(), eval_every: int = 100, lr: float = 1.2e-3,
                   batch_size: int = 60, seed: int = 0, progress: bool = False) -> list[dict]:
    """Iterative magnitude pruning with rewinding (Frankle & Carbin 2019), and its random-reinit control.

    ``build(seed)`` returns a fresh, untrained model. Round 0 trains it dense for ``iterations``
    iterations (keeping ``θ_k``, ``k = rewind_iteration``; ``k = 0`` is the initialisation); each
    round ``r = 1 … rounds`` prunes ``rate`` of the remaining weights per layer
    (``prune_remaining``, by the magnitude of the weights at the *end* of the previous run; ``rate``
    may be a list of one rate per round, and ``layer_rates`` then scale with it),
    rewinds the survivors to ``θ_k`` and trains iterations ``k … iterations``. For the rounds in
    ``reinit_rounds`` the same mask is also trained from a *fresh random* initialisation
    (``build(seed + 1000 + r)``, all ``iterations``). Returns one dict per round: ``{"round",
    "remaining", "ticket": {"remaining", "early_stop_iteration", "test_accuracy" (at that
    iteration), "final_test_accuracy", "best_val_loss", "seconds", "curve" (validation loss and
    accuracy every ``eval_every`` iterations)}, "reinit": same or None}``.
    Raises ``ValueError`` for ``rewind_iteration`` past the training length (≥ ``iterations``),
    a rate outside [0, 1) or a model without prunable layers.
    Explained in notebooks/10_pruning_schedules_automation.ipynb.
    """
    rounds = require_int("rounds", rounds, 0, 1000)
    iterations = require_int("iterations", iterations, 1)
    rewind_iteration = require_int("rewind_iteration", rewind_iteration, 0)
    if rewind_iteration >= iterations:
        raise ValueError(f"rewind_iteration must be inside the training run, in [0, {iterations - 1}] "
                         f"(iterations = {iterations}); got {rewind_iteration}")
    reinit_rounds = {require_int("reinit_rounds[i]", r, 0, rounds) for r in reinit_rounds}
    seed = require_int("seed", seed, 0, 2**31)
    model = build(seed)
    layers = require_prunable(model)
    rates = _round_rates(rate, rounds)
    for r in rates:
        _layer_rates(layers, r, layer_rates)                       # fail before any training
    common = dict(eval_every=eval_every, lr=lr, batch_size=batch_size, progress=progress)
    rewind_to = weights_snapshot(model)
    run = train_with_early_stopping(model, train_data, val_data, iterations=iterations, seed=seed,
                                    snapshot_at=rewind_iteration or None, **common)
    rewind_to = run["snapshot"] or rewind_to
    results = [{"round": 0, "remaining": 1.0, "ticket": _summary(model, run, test_data), "reinit": None}]
    for r in range(1, rounds + 1):
        scale = rates[r - 1] / rates[0] if rates[0] else 1.0      # layer_rates keep their ratio to rate
        prune_remaining(model, rates[r - 1], {n: v * scale for n, v in (layer_rates or {}).items()})
        control = _reinit_control(model, build, seed + 1000 + r, train_data, val_data, test_data,
                                  iterations, seed + r, common) if r in reinit_rounds else None
        rewind(model, rewind_to)
        run = train_with_early_stopping(model, train_data, val_data, iterations=iterations,
                                        start_iteration=rewind_iteration, seed=seed + r, **common)
        results.append({"round": r, "remaining": 1.0 - sparsity(model)["global"],
                        "ticket": _summary(model, run, test_data), "reinit": control})
    return results


def _round_rates(rate, rounds: int) -> list[float]:
    """``rate`` for every round, or a list of one rate per round (checked in [0, 1))."""
    if isinstance(rate, (list, tuple)):
        if len(rate) != rounds:
            raise ValueError(f"rate must be a number or a list of one rate per round ({rounds}), got {len(rate)}")
        return [require_float(f"rate[{i}]", r, 0.0, 1.0, high_open=True) for i, r in enumerate(rate)]
    return [require_float("rate", rate, 0.0, 1.0, high_open=True)] * max(rounds, 1)


def _reinit_control(model, build, init_seed, train_data, val_data, test_data, iterations, seed, common) -> dict:
    """Train ``model``'s mask from a fresh random initialisation ``build(init_seed)`` (a copy)."""
    control = rewind(copy.deepcopy(model), weights_snapshot(build(init_seed)))
    run = train_with_early_stopping(control, train_data, val_data, iterations=iterations, seed=seed, **common)
    return _summary(control, run, test_data)
