"""Per-layer sensitivity: prune one layer at a time to several sparsities and measure accuracy.

Han et al. 2015 (Fig. 5) and Distiller's sensitivity analysis: a layer whose accuracy curve stays
flat up to 90 % can be pruned hard; one that drops early (often the first conv layer, with few
weights that all matter) must be pruned gently. The scan prunes a *copy* of the model, one layer at
a time with every other layer dense, and never fine-tunes (it measures raw sensitivity).
Explained in notebooks/07_unstructured_pruning.ipynb.
"""
from __future__ import annotations

import copy

from torch import nn

from labkit import train
from labkit.prune.criteria import CRITERIA
from labkit.prune.masks import prunable_layers
from labkit.prune.unstructured import prune_layer
from labkit.validate import require_choice, require_float, require_module


def sensitivity_scan(model: nn.Module, eval_data, sparsities=(0.0, 0.25, 0.5, 0.7, 0.8, 0.9, 0.95),
                     layers=None, criterion: str = "magnitude") -> dict:
    """Accuracy on ``eval_data`` when one layer alone is pruned to each sparsity, the others dense.

    Returns ``{"sparsities": [s...], "baseline": acc of the dense model, "layers": {name: [acc at each s]}}``
    (accuracies are fractions in [0, 1], from ``train.evaluate``). ``layers`` defaults to every
    Linear/Conv2d layer. ``model`` itself is not modified. Raises ``ValueError`` for a sparsity
    outside [0, 1] or an unknown layer name. Explained in notebooks/07_unstructured_pruning.ipynb.
    """
    require_module("model", model)
    available = prunable_layers(model)
    if not available:
        raise ValueError("model has no nn.Linear or nn.Conv2d layer to scan")
    if isinstance(sparsities, (str, bytes)) or not hasattr(sparsities, "__iter__"):
        raise TypeError(f"sparsities must be a list of numbers in [0, 1], got {type(sparsities).__name__}")
    sparsities = [require_float(f"sparsities[{i}]", s, 0.0, 1.0) for i, s in enumerate(sparsities)]
    names = list(available) if layers is None else list(layers)
    unknown = [n for n in names if n not in available]
    if unknown:
        raise ValueError(f"unknown layer name(s) {unknown}; prunable layers are {list(available)}")
    criterion = require_choice("criterion", criterion, tuple(CRITERIA))
    curves = {}
    for name in names:
        accs = []
        for s in sparsities:
            work = copy.deepcopy(model)
            prune_layer(prunable_layers(work)[name], s, criterion)
            accs.append(train.evaluate(work, eval_data))
        curves[name] = accs
    return {"sparsities": sparsities, "baseline": train.evaluate(model, eval_data), "layers": curves}
