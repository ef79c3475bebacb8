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

Chapter 10 counts in *training steps* instead of rounds: ``AGPSchedule`` is Zhu & Gupta's schedule
with its start step ``t₀``, end step and pruning frequency ``Δt``; a *plan* is a list of
``(step, target)`` pairs and ``prune_on_schedule`` prunes to each target at its step *inside one*
``train.fit`` run — so one-shot, iterative and gradual pruning get exactly the same training budget.
Final sparsities are in [0, 1): a schedule that ends with every weight pruned is refused.
Explained in notebooks/07_unstructured_pruning.ipynb and notebooks/10_pruning_schedules_automation.ipynb.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from torch import nn

from labkit import train
from labkit.prune.criteria import CRITERIA
from labkit.prune.masks import prunable_layers, reapply_masks, sparsity
from labkit.prune.unstructured import global_prune, layerwise_prune
from labkit.validate import require_choice, require_float, require_int, require_module


def agp_sparsity(step: int, n_steps: int, final: float, initial: float = 0.0) -> float:
    """Zhu & Gupta's cubic schedule: ``s_t = s_f + (s_i − s_f)(1 − t/n)³`` for step ``t`` of ``n``.

    ``step`` is clipped to ``[0, n_steps]``, so ``s_0 = s_i`` and ``s_t = s_f`` for ``t ≥ n``.
    ``final`` is a sparsity in [0, 1), ``initial`` one in [0, final]. Explained in notebooks/07_unstructured_pruning.ipynb.
    """
    step = require_int("step", step, 0)
    n_steps = require_int("n_steps", n_steps, 1)
    return AGPSchedule(final, end=n_steps, initial=initial).curve(step)   # the cubic lives there


def one_shot_schedule(final: float) -> list[float]:
    """``[final]``: prune once to the final sparsity. Explained in notebooks/07_unstructured_pruning.ipynb."""
    return [require_float("final", final, 0.0, 1.0, high_open=True)]


def iterative_schedule(final: float, rounds: int) -> list[float]:
    """``[final·r/rounds for r = 1 … rounds]``: equal steps, as in Han et al.'s prune-retrain loop.

    Explained in notebooks/07_unstructured_pruning.ipynb.
    """
    final = require_float("final", final, 0.0, 1.0, high_open=True)
    rounds = require_int("rounds", rounds, 1, 10_000)
    return [final * r / rounds for r in range(1, rounds + 1)]


def agp_schedule(final: float, rounds: int, initial: float = 0.0) -> list[float]:
    """``[agp_sparsity(t, rounds, final, initial) for t = 1 … rounds]``, ending exactly at ``final``.

    Explained in notebooks/07_unstructured_pruning.ipynb.
    """
    final = require_float("final", final, 0.0, 1.0, high_open=True)
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
    require_module("model", model)
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


# ----------------------------------------------------------------------------------------------
# Chapter 10: schedules in training steps, pruning inside one training run
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class AGPSchedule:
    """Automated gradual pruning (Zhu & Gupta 2017) over training steps ``t``.

    Pruning starts at step ``start`` (t₀) and happens every ``frequency`` (Δt) steps until step
    ``end``; in between, the target follows the cubic

        s(t) = s_f + (s_i − s_f)·(1 − (t − t₀)/D)³,   D = end − t₀,

    so ``s(t₀) = s_i`` (``initial``) and ``s(end) = s_f`` (``final``). With ``D = n·Δt`` this is the
    paper's ``s_t = s_f + (s_i − s_f)(1 − (t − t₀)/(nΔt))³`` for ``t ∈ {t₀, t₀+Δt, …, t₀+nΔt}``; when
    Δt does not divide D the last pruning step is ``end`` itself, so the final sparsity is always
    reached. Before ``start`` the model is dense. Raises ``ValueError`` for ``final`` outside [0, 1),
    ``initial`` outside [0, final], ``frequency`` ≤ 0 or a ``start`` that is not before ``end``.
    Explained in notebooks/10_pruning_schedules_automation.ipynb.
    """

    final: float
    end: int
    initial: float = 0.0
    start: int = 0
    frequency: int = 1

    def __post_init__(self):
        final = require_float("final", self.final, 0.0, 1.0, high_open=True)
        initial = require_float("initial", self.initial, 0.0, final)
        start = require_int("start", self.start, 0)
        end = require_int("end", self.end, 0)
        if end <= start:
            raise ValueError(f"start must be before end: the schedule starts at step {start} and ends at step "
                             f"{end} (start < end, i.e. duration = end − start ≥ 1)")
        frequency = require_int("frequency", self.frequency, 1)
        for name, value in (("final", final), ("initial", initial), ("start", start), ("end", end),
                            ("frequency", frequency)):
            object.__setattr__(self, name, value)

    @property
    def duration(self) -> int:
        """``D = end − start``, the number of steps over which the sparsity ramps up."""
        return self.end - self.start

    def steps(self) -> list[int]:
        """The pruning steps ``[t₀, t₀+Δt, …]`` (those before ``end``) followed by ``end``."""
        return list(range(self.start, self.end, self.frequency)) + [self.end]

    def curve(self, t: float) -> float:
        """The continuous cubic ``s(t)`` with ``t`` clipped to ``[t₀, end]`` (``s_i`` before t₀)."""
        tau = min(max((float(t) - self.start) / self.duration, 0.0), 1.0)
        return self.final + (self.initial - self.final) * (1.0 - tau) ** 3

    def sparsity(self, t: int) -> float:
        """The sparsity the model has after step ``t``: ``s`` at the last pruning step ≤ t (0 before t₀)."""
        t = require_int("t", t, 0)
        if t < self.start:
            return 0.0
        last = self.end if t >= self.end else self.start + (t - self.start) // self.frequency * self.frequency
        return self.curve(last)

    def rate(self, t: float) -> float:
        """The slope of the cubic, ``ds/dt = 3(s_f − s_i)/D · (1 − (t − t₀)/D)²`` on [t₀, end], else 0."""
        if not self.start <= t <= self.end:
            return 0.0
        tau = (float(t) - self.start) / self.duration
        return 3.0 * (self.final - self.initial) / self.duration * (1.0 - tau) ** 2

    def plan(self, allocation: Mapping | None = None) -> list[tuple[int, object]]:
        """``[(t, s(t)) for t in steps()]``, the input of ``prune_on_schedule``.

        With ``allocation = {layer: a_l}`` every layer follows the same cubic to its own final
        sparsity: the target at ``t`` is ``{layer: a_l · s(t)/s_f}`` (``final`` must then be > 0).
        """
        if allocation is None:
            return [(t, self.curve(t)) for t in self.steps()]
        if not isinstance(allocation, Mapping) or not allocation:
            raise TypeError(f"allocation must be a non-empty dict {{layer: final sparsity}}, got {allocation!r}")
        if self.final == 0:
            raise ValueError("a per-layer plan needs final > 0: the targets are a_l · s(t)/s_f")
        finals = {n: require_float(f"allocation[{n!r}]", a, 0.0, 1.0, high_open=True) for n, a in allocation.items()}
        return [(t, {n: a * self.curve(t) / self.final for n, a in finals.items()}) for t in self.steps()]


def training_steps(train_data, epochs: int, batch_size: int) -> int:
    """Optimizer steps of ``train.fit(train_data, epochs=epochs, batch_size=batch_size)``:
    ``epochs · ceil(len(train_data) / batch_size)``. Explained in notebooks/10_pruning_schedules_automation.ipynb.
    """
    epochs = require_int("epochs", epochs, 1, 10_000)
    batch_size = require_int("batch_size", batch_size, 1)
    return epochs * math.ceil(_num_samples(train_data) / batch_size)


def _num_samples(train_data) -> int:
    if isinstance(train_data, (tuple, list)) and len(train_data) == 2 and hasattr(train_data[0], "shape"):
        return len(train_data[0])                                  # an (x, y) pair of tensors
    if not hasattr(train_data, "__len__"):
        raise TypeError(f"train_data must be a Dataset or an (x, y) pair of tensors, got {type(train_data).__name__}")
    return len(train_data)


def plan_rounds(schedule, total_steps: int) -> list[tuple[int, float]]:
    """Spread a list of per-round targets evenly over ``total_steps``: round ``r`` (0-based) of ``R``
    prunes at step ``round(r·T/R)``. ``plan_rounds([s_f], T) = [(0, s_f)]`` is one-shot pruning;
    ``plan_rounds(iterative_schedule(s_f, R), T)`` is Han et al.'s prune–retrain loop with ``T/R``
    steps of retraining after each cut. Explained in notebooks/10_pruning_schedules_automation.ipynb.
    """
    targets = _check_schedule(schedule)
    total_steps = require_int("total_steps", total_steps, 1)
    return [(round(r * total_steps / len(targets)), s) for r, s in enumerate(targets)]


def _check_plan(plan, total_steps: int, layers: Mapping) -> list[tuple[int, object]]:
    if isinstance(plan, AGPSchedule):
        plan = plan.plan()
    if isinstance(plan, (str, bytes)) or not hasattr(plan, "__iter__"):
        raise TypeError(f"plan must be an AGPSchedule or a list of (step, target) pairs, got {type(plan).__name__}")
    checked, previous = [], -1
    for i, item in enumerate(plan):
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise TypeError(f"plan[{i}] must be a (step, target) pair, got {item!r}")
        step = require_int(f"plan[{i}] step", item[0], 0)
        if step > total_steps:
            raise ValueError(f"plan[{i}] prunes at step {step}, after the end of training ({total_steps} steps): "
                             f"steps must be in [0, {total_steps}]")
        if step < previous:
            raise ValueError(f"plan steps must be in increasing order; plan[{i}] step {step} < {previous}")
        checked.append((step, _check_target(f"plan[{i}] target", item[1], layers)))
        previous = step
    if not checked:
        raise ValueError("plan must hold at least one (step, target) pair, got an empty plan")
    return checked


def _check_target(name: str, target, layers: Mapping):
    if isinstance(target, Mapping):
        unknown = [layer for layer in target if layer not in layers]
        if unknown:
            raise ValueError(f"{name} names unknown layer(s) {unknown}; prunable layers are {list(layers)}")
        return {layer: require_float(f"{name}[{layer!r}]", s, 0.0, 1.0, high_open=True)
                for layer, s in target.items()}
    return require_float(name, target, 0.0, 1.0, high_open=True)


class _Pruner:
    """``after_step`` callable: counts optimizer steps and prunes to the plan's target at its step."""

    def __init__(self, plan, criterion: str, seed: int):
        self.plan, self.criterion, self.seed = plan, criterion, seed
        self.step, self.events = 0, []

    def prune(self, model: nn.Module) -> None:
        for step, target in self.plan:
            if step == self.step:
                if isinstance(target, dict):
                    layerwise_prune(model, target, self.criterion, seed=self.seed)
                else:
                    global_prune(model, target, self.criterion, seed=self.seed)
                self.events.append({"step": step, "target": target, "sparsity": sparsity(model)["global"]})

    def __call__(self, model: nn.Module) -> None:
        self.step += 1
        self.prune(model)
        reapply_masks(model)


def prune_on_schedule(model: nn.Module, train_data, plan, *, epochs: int = 1, lr: float = 1e-3,
                      batch_size: int = 64, optimizer: str = "adam", weight_decay: float = 0.0,
                      lr_schedule: str = "constant", criterion: str = "magnitude", seed: int = 0,
                      val_data=None, progress: bool = False) -> dict:
    """Train ``model`` for ``epochs`` with ``train.fit`` and prune it *during* training, in place.

    ``plan`` is an ``AGPSchedule`` or a list of ``(step, target)`` pairs with increasing steps in
    ``[0, T]`` (``T = training_steps(train_data, epochs, batch_size)``): after optimizer step
    ``step`` (step 0 = before the first) the model is pruned to ``target`` — a float, the global
    sparsity (``global_prune`` with ``criterion``), or a ``{layer: sparsity}`` dict
    (``layerwise_prune``) — and the masks are re-applied after every step. So every plan gets the
    same ``T`` steps of training, whatever its shape. Returns ``{"prunes": [{"step", "target",
    "sparsity"}], "epochs": train.fit's history, "total_steps": T}``. Raises ``ValueError`` for a
    step after the end of training, decreasing steps, a target outside [0, 1) or an unknown layer.
    Explained in notebooks/10_pruning_schedules_automation.ipynb.
    """
    require_module("model", model)
    layers = prunable_layers(model)
    if not layers:
        raise ValueError("model has no nn.Linear or nn.Conv2d layer to prune")
    total = training_steps(train_data, epochs, batch_size)
    pruner = _Pruner(_check_plan(plan, total, layers), require_choice("criterion", criterion, tuple(CRITERIA)),
                     require_int("seed", seed, 0, 2**32 - 1))
    pruner.prune(model)                                           # the plan's step-0 targets
    history = train.fit(model, train_data, epochs=epochs, lr=lr, batch_size=batch_size, optimizer=optimizer,
                        weight_decay=weight_decay, lr_schedule=lr_schedule, seed=seed, val_data=val_data,
                        progress=progress, after_step=pruner)
    return {"prunes": pruner.events, "epochs": history, "total_steps": total}
