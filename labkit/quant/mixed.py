"""Mixed precision: give each layer the bit width it can afford.

Layers are not equally sensitive to quantization: the first and last layers, and small layers
that every prediction flows through, usually lose more accuracy per removed bit than a large
middle layer — which is also where most of the bytes are. Mixed precision (seed 004 §2.1.4,
HAQ/HAWQ in the literature) measures each layer's *sensitivity* and then solves a budget problem:

    minimise   Σ_l sensitivity_l(b_l)      subject to   Σ_l ceil(n_l·b_l / 8) ≤ budget_bytes

with ``b_l`` in ``choices``. Summing per-layer accuracy drops is an approximation (drops interact),
which is why the chapter checks the final model's real accuracy. ``allocate_bits`` solves it
exactly (multiple-choice knapsack by dynamic programming over bytes) or greedily (repeatedly lower
the layer whose next step down costs the least sensitivity per byte saved).

Explained in notebooks/06_mixed_precision_vector_quantization.ipynb
"""
from __future__ import annotations

import copy
import math
from typing import Mapping, Sequence

import numpy as np
from torch import nn

from labkit.quant.affine import fake_quantize, weight_qparams
from labkit.quant.modules import check_model, quantizable_layers, quantized_layer
from labkit.validate import require_bool, require_choice, require_int

__all__ = ["METHODS", "layer_sizes", "layer_sensitivity", "allocation_bytes", "allocate_bits",
           "uniform_allocation", "apply_bit_allocation"]

METHODS = ("dp", "greedy")
_MAX_STATES = 1_000_000  # DP table width; coarser byte units above this (never over budget)


def layer_sizes(model: nn.Module) -> dict[str, int]:
    """Number of weights of every Conv2d/Linear layer: ``{name: numel}`` in module order (biases stay
    float32 and are not counted). Explained in notebooks/06_mixed_precision_vector_quantization.ipynb."""
    check_model(model)
    return {name: m.weight.numel() for name, m in quantizable_layers(model)}


def layer_sensitivity(model: nn.Module, data, bits: Sequence[int] = (2, 3, 4, 8), per_channel: bool = True,
                      batch_size: int = 512) -> dict[str, dict[int, float]]:
    """Accuracy drop when only one layer's weights are quantized: ``{layer: {b: acc_float - acc_b}}``.

    For each Conv2d/Linear and each ``b`` in ``bits``, the layer's weight is fake-quantized (signed,
    symmetric; ``per_channel``: one scale per output channel, ``granularity="channel", axis=0``, see
    ``affine.weight_qparams``; activations stay float), the model is
    evaluated on ``data`` with ``labkit.train.evaluate`` and the weight restored. Drops are
    fractions (0.02 = 2 points) and can be slightly negative. Cost: ``layers × len(bits)``
    evaluations. Explained in notebooks/06_mixed_precision_vector_quantization.ipynb.
    """
    from labkit.train import evaluate  # quant may import train; lazily, to keep `import labkit.quant` light

    check_model(model)
    bits = _check_choices("bits", bits)
    require_bool("per_channel", per_channel)
    baseline = evaluate(model, data, batch_size)
    result = {}
    for name, layer in quantizable_layers(model):
        original = layer.weight.data.clone()
        result[name] = {}
        try:
            for b in bits:
                layer.weight.data = fake_quantize(original, weight_qparams(original, b, per_channel))
                result[name][b] = baseline - evaluate(model, data, batch_size)
        finally:
            layer.weight.data = original
    return result


def _check_choices(name: str, choices) -> tuple[int, ...]:
    if isinstance(choices, (str, bytes)) or not hasattr(choices, "__iter__"):
        raise TypeError(f"{name} must be a sequence of bit widths, got {type(choices).__name__}")
    values = tuple(sorted({require_int(name, b, 1, 16) for b in choices}))
    if not values:
        raise ValueError(f"{name} must hold at least one bit width in [1, 16], got an empty sequence")
    return values


def _layer_bytes(numel: int, bits: int) -> int:
    return math.ceil(numel * bits / 8)


def allocation_bytes(sizes: Mapping[str, int], allocation: Mapping[str, int]) -> int:
    """Bytes of the packed weight codes: ``Σ_l ceil(n_l·b_l / 8)`` (scales and biases not counted).
    Explained in notebooks/06_mixed_precision_vector_quantization.ipynb."""
    missing = set(sizes) - set(allocation)
    if missing:
        raise ValueError(f"allocation must give a bit width for every layer; missing {sorted(missing)}")
    return sum(_layer_bytes(n, allocation[name]) for name, n in sizes.items())


def uniform_allocation(sizes: Mapping[str, int], bits: int) -> dict[str, int]:
    """The same ``bits`` for every layer (the baseline mixed precision must beat)."""
    bits = require_int("bits", bits, 1, 16)
    return {name: bits for name in sizes}


def _check_problem(sizes, sensitivities, budget_bytes, choices):
    if not isinstance(sizes, Mapping) or not sizes:
        raise ValueError("sizes must be a non-empty mapping {layer: number of weights}")
    for name, n in sizes.items():
        require_int(f"sizes[{name!r}]", n, 1, None)
    if not isinstance(sensitivities, Mapping):
        raise TypeError(f"sensitivities must be a mapping {{layer: {{bits: drop}}}}, got {type(sensitivities).__name__}")
    choices = _check_choices("choices", choices)
    for name in sizes:
        if name not in sensitivities:
            raise ValueError(f"sensitivities has no entry for layer {name!r}")
        missing = [b for b in choices if b not in sensitivities[name]]
        if missing:
            raise ValueError(f"sensitivities[{name!r}] has no value for bit widths {missing} (choices={choices})")
        for b in choices:
            if not math.isfinite(float(sensitivities[name][b])):
                raise ValueError(f"sensitivities[{name!r}][{b}] must be finite, got {sensitivities[name][b]}")
    budget_bytes = require_int("budget_bytes", budget_bytes, 1, None)
    smallest = sum(_layer_bytes(n, choices[0]) for n in sizes.values())
    if smallest > budget_bytes:
        raise ValueError(f"budget_bytes must be at least {smallest} (every layer at {choices[0]} bits), "
                         f"got {budget_bytes}")
    return choices, budget_bytes


def allocate_bits(sizes: Mapping[str, int], sensitivities: Mapping[str, Mapping[int, float]],
                  budget_bytes: int, choices: Sequence[int] = (2, 4, 8), method: str = "dp") -> dict[str, int]:
    """Choose ``{layer: bits}`` from ``choices`` minimising the summed sensitivity within the budget.

    ``sizes``: ``{layer: numel}`` (``layer_sizes``); ``sensitivities``: ``{layer: {bits: drop}}``
    (``layer_sensitivity``); the cost of a layer is ``ceil(numel·bits/8)`` bytes and the total never
    exceeds ``budget_bytes``. ``method="dp"``: exact multiple-choice knapsack, ``O(layers ×
    choices × budget/g)`` with ``g`` the gcd of all costs (for very large budgets the byte unit is
    coarsened, costs rounded up, and the better of DP and greedy returned); ``"greedy"``: start at the
    widest choice and repeatedly make the step down with the smallest sensitivity increase per byte
    saved. ``ValueError`` if even the narrowest choice everywhere does not fit.
    Explained in notebooks/06_mixed_precision_vector_quantization.ipynb.
    """
    require_choice("method", method, METHODS)
    choices, budget_bytes = _check_problem(sizes, sensitivities, budget_bytes, choices)
    if method == "greedy":
        return _greedy(sizes, sensitivities, budget_bytes, choices)
    allocation, exact = _knapsack(sizes, sensitivities, budget_bytes, choices)
    if not exact:  # coarse units: never over budget, but possibly below the optimum
        greedy = _greedy(sizes, sensitivities, budget_bytes, choices)
        if _total(sensitivities, greedy) < _total(sensitivities, allocation):
            return greedy
    return allocation


def _total(sensitivities, allocation) -> float:
    return sum(float(sensitivities[name][b]) for name, b in allocation.items())


def _greedy(sizes, sensitivities, budget, choices) -> dict[str, int]:
    allocation = {name: choices[-1] for name in sizes}
    while allocation_bytes(sizes, allocation) > budget:
        best, best_rate = None, math.inf
        for name, b in allocation.items():
            i = choices.index(b)
            if i == 0:
                continue
            lower = choices[i - 1]
            saved = _layer_bytes(sizes[name], b) - _layer_bytes(sizes[name], lower)
            rate = (float(sensitivities[name][lower]) - float(sensitivities[name][b])) / max(saved, 1)
            if rate < best_rate:
                best, best_rate = (name, lower), rate
        allocation[best[0]] = best[1]
    return allocation


def _knapsack(sizes, sensitivities, budget, choices) -> tuple[dict[str, int], bool]:
    """Multiple-choice knapsack: ``best[c]`` = least summed sensitivity with cost ``<= c`` units."""
    names = list(sizes)
    costs = {name: [_layer_bytes(sizes[name], b) for b in choices] for name in names}
    unit = math.gcd(*[c for cs in costs.values() for c in cs], budget)
    exact = budget // unit <= _MAX_STATES
    if not exact:
        unit = math.ceil(budget / _MAX_STATES)
    capacity = budget // unit
    units = {name: [math.ceil(c / unit) for c in cs] for name, cs in costs.items()}
    best = np.zeros(capacity + 1)  # no layer chosen yet: cost 0, sensitivity 0
    picks = []
    for name in names:
        new = np.full(capacity + 1, np.inf)
        pick = np.full(capacity + 1, -1, dtype=np.int64)
        for k, b in enumerate(choices):
            u, s = units[name][k], float(sensitivities[name][b])
            if u > capacity:
                continue
            candidate = np.full(capacity + 1, np.inf)
            candidate[u:] = best[: capacity + 1 - u] + s
            better = candidate < new
            new[better], pick[better] = candidate[better], k
        best = new
        picks.append(pick)
    if not np.isfinite(best[capacity]):  # cannot happen after _check_problem in exact mode
        raise ValueError(f"budget_bytes={budget} is too small for the given sizes at coarse resolution")
    allocation, c = {}, capacity
    for name, pick in zip(reversed(names), reversed(picks)):
        k = int(pick[c])
        allocation[name] = choices[k]
        c -= units[name][k]
    return {name: allocation[name] for name in names}, exact


def apply_bit_allocation(model: nn.Module, allocation: Mapping[str, int], per_channel: bool = True) -> nn.Module:
    """A copy of ``model`` (eval mode) whose layers named in ``allocation`` hold integer weights with
    their own bit width (``QuantizedConv2d``/``QuantizedLinear``, weight-only: activations stay
    float; ``per_channel``: one scale per output channel, ``granularity="channel", axis=0``). Layers not named stay float. ``ValueError`` for a name that is not a Conv2d/Linear.
    Explained in notebooks/06_mixed_precision_vector_quantization.ipynb.
    """
    check_model(model)
    if not isinstance(allocation, Mapping):
        raise TypeError(f"allocation must be a mapping {{layer: bits}}, got {type(allocation).__name__}")
    require_bool("per_channel", per_channel)
    qmodel = copy.deepcopy(model).eval()
    layers = dict(quantizable_layers(qmodel))
    for name, bits in allocation.items():
        if name not in layers:
            raise ValueError(f"allocation names {name!r}, which is not a Conv2d/Linear layer of the model; "
                             f"layers are {list(layers)}")
        require_int(f"allocation[{name!r}]", bits, 1, 16)
    for name, bits in allocation.items():
        layer = layers[name]
        new = quantized_layer(layer, weight_qparams(layer.weight, bits, per_channel))
        if name == "":
            return new.eval()
        qmodel.set_submodule(name, new)
    return qmodel
