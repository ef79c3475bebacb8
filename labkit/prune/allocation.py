"""How much to prune each layer: per-layer sparsity allocations that meet a resource budget.

A *resource* is a function ``model → number`` measured on this machine — the bytes of the pruned
model's file (``measured_bytes``, what a phone downloads) or its median latency
(``measured_latency``). A *budget* is the largest value allowed. Three ways to spend it:

* **uniform** — the same sparsity ``s`` in every layer, the smallest ``s`` that meets the budget;
* **global magnitude** — one threshold over all layers (``unstructured.global_prune``), the
  smallest global amount that meets it; big, redundant layers end up sparser than small ones;
* **from sensitivity** (seed 001 §9.4's recipe) — each layer gets the largest sparsity whose
  one-layer-at-a-time accuracy loss stays within a tolerance (``sensitivity.sensitivity_scan``);
* and NetAdapt's greedy search (``labkit.prune.netadapt``), which measures as it goes.

The budget search is a bisection on the amount (resources fall as sparsity grows); a budget below
what the sparsest allowed model reaches raises ``ValueError`` saying the smallest reachable value.
``global_channel_keep`` is the same global-threshold idea for whole channels (network slimming).
Explained in notebooks/10_pruning_schedules_automation.ipynb.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping

import torch
from torch import nn

from labkit import measure
from labkit.prune.masks import require_prunable, sparsity
from labkit.prune.unstructured import check_layer_names, global_prune, layerwise_prune
from labkit.validate import require_float, require_int

Resource = Callable[[nn.Module], float]
BISECTION_STEPS = 20   # amount resolved to 2⁻²⁰ ≈ 1e-6 of the weights


def measured_bytes(fmt: str = "bitmask", values_fmt: str = "fp32") -> Resource:
    """A resource: bytes of the model's file in storage format ``fmt`` (``measure.size_on_disk``),
    measured by writing it. ``bitmask`` and ``csr`` shrink with sparsity; ``fp32`` does not.
    Explained in notebooks/10_pruning_schedules_automation.ipynb.
    """
    measure.size_on_disk(nn.Linear(1, 1), fmt, values_fmt=values_fmt)          # validate the formats now

    def file_bytes(model: nn.Module) -> float:
        return float(measure.size_on_disk(model, fmt, values_fmt=values_fmt))

    file_bytes.__name__ = f"bytes on disk ({fmt})"
    return file_bytes


def measured_latency(example_input: torch.Tensor, *, repeats: int = 20, warmup: int = 3,
                     threads: int = 1) -> Resource:
    """A resource: median milliseconds of ``model(example_input)`` (``measure.latency``) on this machine.

    Noisy and, for unstructured zeros run by dense kernels, flat (chapter 07 §5.6): use it with
    models that physically shrink. Explained in notebooks/10_pruning_schedules_automation.ipynb.
    """
    if not isinstance(example_input, torch.Tensor):
        raise TypeError(f"example_input must be a torch.Tensor, got {type(example_input).__name__}")
    repeats, warmup = require_int("repeats", repeats, 1), require_int("warmup", warmup, 0)
    threads = require_int("threads", threads, 1)

    def latency_ms(model: nn.Module) -> float:
        return measure.latency(model, example_input, warmup=warmup, repeats=repeats, threads=threads)["median_ms"]

    latency_ms.__name__ = "median latency (ms)"
    return latency_ms


def check_budget(model: nn.Module, resource: Resource, budget: float, *, max_sparsity: float = 0.99,
                 layers=None) -> tuple[float, float]:
    """``(resource of the model as it is, resource with every layer at max_sparsity)``.

    Raises ``ValueError`` naming both when ``budget`` is below the second: no allocation with
    per-layer sparsities ≤ ``max_sparsity`` meets it. ``budget`` must be > 0.
    Explained in notebooks/10_pruning_schedules_automation.ipynb.
    """
    names = layer_names(model, layers)
    if not callable(resource):
        raise TypeError(f"resource must be a function model → number (e.g. measured_bytes()), got {resource!r}")
    budget = require_float("budget", budget, 0.0, None, low_open=True)
    max_sparsity = require_float("max_sparsity", max_sparsity, 0.0, 1.0, high_open=True)
    current = float(resource(model))
    floor = float(resource(_pruned_copy(model, dict.fromkeys(names, max_sparsity))))
    if budget < floor:
        raise ValueError(f"budget {budget:,.6g} cannot be met: even with every layer {names} at sparsity "
                         f"{max_sparsity:g} the {_label(resource)} is {floor:,.6g} (now {current:,.6g}); "
                         f"allow a budget ≥ {floor:,.6g} or a higher max_sparsity")
    return current, floor


def layer_names(model, layers=None) -> list[str]:
    """The names of ``layers`` (default: every prunable layer of ``model``), checked against the model."""
    available = require_prunable(model)
    return list(available) if layers is None else check_layer_names(layers, available)


def _label(resource) -> str:
    return getattr(resource, "__name__", "resource")


def _pruned_copy(model: nn.Module, amounts: Mapping) -> nn.Module:
    work = copy.deepcopy(model)
    layerwise_prune(work, dict(amounts))
    return work


def smallest_amount(meets: Callable[[float], bool], high: float, *, low: float = 0.0,
                    steps: int = BISECTION_STEPS, what: str = "this allocation") -> float:
    """The smallest amount in [low, high] with ``meets(amount)``, for a ``meets`` that stays true once
    it is true (resources fall as sparsity grows): bisection to ``(high − low)/2^steps``. Raises
    ``ValueError`` if even ``high`` does not meet it. Explained in notebooks/10_pruning_schedules_automation.ipynb.
    """
    if meets(low):
        return low
    if not meets(high):
        raise ValueError(f"the budget cannot be met by {what}, even at its largest amount {high:g}")
    for _ in range(steps):
        mid = (low + high) / 2
        low, high = (low, mid) if meets(mid) else (mid, high)
    return high


def uniform_allocation(model: nn.Module, resource: Resource, budget: float, *, max_sparsity: float = 0.99,
                       layers=None) -> dict[str, float]:
    """The same sparsity ``s`` in every layer (``layers``, default all), the smallest that meets the budget.

    Returns ``{layer: s}``; ``model`` is not modified. Raises ``ValueError`` for a budget no
    allocation meets (``check_budget``). Explained in notebooks/10_pruning_schedules_automation.ipynb.
    """
    names = layer_names(model, layers)
    check_budget(model, resource, budget, max_sparsity=max_sparsity, layers=names)
    s = smallest_amount(lambda a: resource(_pruned_copy(model, dict.fromkeys(names, a))) <= budget, max_sparsity)
    return dict.fromkeys(names, s)


def global_allocation(model: nn.Module, resource: Resource, budget: float, *, max_sparsity: float = 0.99,
                      layers=None) -> dict[str, float]:
    """The per-layer sparsities of global magnitude pruning at the smallest amount that meets the budget.

    ``global_prune(copy, a)`` ranks every weight of ``layers`` together; the bisection finds the
    smallest ``a`` with ``resource ≤ budget``. Returns ``{layer: sparsity}`` (what one threshold
    gives each layer); ``model`` is not modified. Raises ``ValueError`` for a budget no allocation
    meets. Explained in notebooks/10_pruning_schedules_automation.ipynb.
    """
    names = layer_names(model, layers)
    check_budget(model, resource, budget, max_sparsity=max_sparsity, layers=names)

    def pruned(a: float) -> nn.Module:
        work = copy.deepcopy(model)
        global_prune(work, a, layers=names)
        return work

    amount = smallest_amount(lambda a: resource(pruned(a)) <= budget, max_sparsity,
                             what=f"global magnitude pruning (budget {budget:,.6g})")
    chosen = sparsity(pruned(amount))["layers"]
    return {name: chosen[name] for name in names}


def sensitivity_allocation(scan: Mapping, tolerance: float) -> dict[str, float]:
    """Seed 001 §9.4, step 2: each layer's largest scanned sparsity whose accuracy (that layer alone
    pruned, ``sensitivity_scan``) is ≥ ``baseline − tolerance``; 0.0 if none is.

    ``scan`` is ``sensitivity_scan``'s result; ``tolerance`` an accuracy fraction in [0, 1]
    (0.01 = one point). Explained in notebooks/10_pruning_schedules_automation.ipynb.
    """
    if not isinstance(scan, Mapping) or not {"sparsities", "baseline", "layers"} <= set(scan):
        raise TypeError("scan must be the dict returned by prune.sensitivity_scan "
                        "(keys 'sparsities', 'baseline', 'layers')")
    tolerance = require_float("tolerance", tolerance, 0.0, 1.0)
    floor = scan["baseline"] - tolerance
    return {layer: max([s for s, acc in zip(scan["sparsities"], accs) if acc >= floor], default=0.0)
            for layer, accs in scan["layers"].items()}


def scale_allocation(model: nn.Module, allocation: Mapping, resource: Resource, budget: float, *,
                     max_sparsity: float = 0.99) -> dict[str, float]:
    """Keep an allocation's *shape* and meet a budget: layer ``l`` gets ``1 − (1 − a_l)·c``, the
    smallest-pruning common factor ``c ∈ [0, 1]`` of its density that meets ``budget`` (clipped
    at ``max_sparsity``). Seed 001 §9.4, step 2 → a target. Explained in
    notebooks/10_pruning_schedules_automation.ipynb.
    """
    names = layer_names(model, list(allocation))
    base = {n: require_float(f"allocation[{n!r}]", allocation[n], 0.0, 1.0, high_open=True) for n in names}
    check_budget(model, resource, budget, max_sparsity=max_sparsity, layers=names)

    def amounts(shrink: float) -> dict[str, float]:       # shrink = 1 − c
        return {n: min(1.0 - (1.0 - base[n]) * (1.0 - shrink), max_sparsity) for n in names}

    shrink = smallest_amount(lambda x: resource(_pruned_copy(model, amounts(x))) <= budget, 1.0)
    return amounts(shrink)


def global_channel_keep(scores: Mapping, amount: float, *, min_keep: float = 0.0) -> dict[str, torch.Tensor]:
    """Network slimming's global threshold (Liu et al. 2017): rank the channel scores of *all*
    groups together (e.g. BN ``|γ|``) and drop the ``round(amount·N)`` lowest; returns
    ``{group: sorted kept indices (int64)}`` for ``surgery.prune_channels``. Ties go by group order,
    then index. ``amount`` in [0, 1).

    ``min_keep`` in [0, 1] is a per-group floor: each group keeps at least its ``ceil(min_keep·C_g)``
    best channels (and always its best one), and only the remaining budget is ranked globally. A
    global ranking assumes the scores of different layers are on one scale; BN ``|γ|`` is not when a
    BatchNorm follows the consumer — scaling ``(γ, β)`` of one layer by ``c > 0`` changes nothing the
    next BatchNorm lets through, so the L1 penalty shrinks a whole layer's ``γ`` together and the
    threshold can empty it. ``ValueError`` when the floors alone keep more than ``amount`` allows.
    Explained in notebooks/10_pruning_schedules_automation.ipynb.
    """
    if not isinstance(scores, Mapping) or not scores:
        raise TypeError("scores must be a non-empty dict {group: 1-D tensor of channel scores}")
    amount = require_float("amount", amount, 0.0, 1.0, high_open=True)
    min_keep = require_float("min_keep", min_keep, 0.0, 1.0)
    values = {g: torch.as_tensor(s).reshape(-1) for g, s in scores.items()}
    total = sum(v.numel() for v in values.values())
    floors = {g: max(1, math.ceil(round(min_keep * v.numel(), 9))) for g, v in values.items()}
    budget = total - round(amount * total)
    if min_keep > 0 and sum(floors.values()) > budget:
        raise ValueError(f"min_keep {min_keep} keeps {sum(floors.values())} channels, more than the "
                         f"{budget} of {total} that amount {amount} leaves; lower min_keep or amount")
    kept = {(g, c) for g, v in values.items() for c in _best(v, floors[g])}
    rest = sorted(((float(x), g, c) for g, v in values.items() for c, x in enumerate(v) if (g, c) not in kept),
                  key=lambda t: t[0])                        # the lowest first; stable: ties in group, index order
    more = max(0, budget - len(kept))
    kept |= {(g, c) for _, g, c in rest[len(rest) - more:]} if more else set()
    return {g: torch.tensor(sorted(c for h, c in kept if h == g), dtype=torch.int64) for g in values}


def _best(values: torch.Tensor, k: int) -> list[int]:
    """Indices of the ``k`` largest ``values`` (ties: the higher index, as the lower one is dropped first)."""
    return sorted(range(values.numel()), key=lambda c: (-float(values[c]), -c))[:k]


def apply_allocation(model: nn.Module, allocation: Mapping) -> dict[str, torch.Tensor]:
    """``layerwise_prune(model, allocation)`` by magnitude, in place; returns the masks.

    Explained in notebooks/10_pruning_schedules_automation.ipynb.
    """
    require_prunable(model)
    return layerwise_prune(model, dict(allocation))
