"""Weight tensors and their statistics: which tensors of a model are its weights, and how they are distributed.

Most trained weights sit in a narrow bell around zero with a few large outliers; that shape is what makes
quantization and pruning work. ``weight_tensors`` finds a model's weights (the effective, masked ones of a
pruned layer); ``weight_statistics`` summarises one (mean, std, zeros, near-zeros, excess kurtosis).

Explained in notebooks/00_why_compress.ipynb.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from labkit.validate import require_finite, require_float, require_module


def weight_statistics(tensor, near_zero: float = 0.01) -> dict:
    """Summary statistics of one weight tensor (any shape; torch tensor or numpy array).

    With the values ``w`` flattened to ``n`` float64 numbers: ``mean = Σw/n``, ``std`` is the
    population standard deviation ``sqrt(Σ(w-mean)²/n)``, ``zeros`` the fraction with ``w == 0``,
    ``near_zero`` the fraction with ``|w| <= near_zero`` (default 0.01) and ``kurtosis`` the excess
    kurtosis ``mean(((w-mean)/std)⁴) - 3`` (0 for a Gaussian, large for heavy tails; NaN if std is 0).
    Returns ``shape`` (tuple), ``numel`` (int) and those values as Python floats.
    """
    if isinstance(tensor, torch.Tensor):
        values = tensor.detach().cpu().to(torch.float64).numpy()
    elif isinstance(tensor, np.ndarray):
        values = tensor.astype(np.float64)
    else:
        raise TypeError(f"tensor must be a torch.Tensor or numpy.ndarray, got {type(tensor).__name__}")
    near_zero = require_float("near_zero", near_zero, 0.0)
    if values.size == 0:
        raise ValueError(f"tensor must have at least one element, got shape {tuple(values.shape)}")
    require_finite("tensor", values)
    flat = values.reshape(-1)
    mean = float(flat.mean())
    std = float(flat.std())
    kurtosis = float(np.mean(((flat - mean) / std) ** 4) - 3.0) if std > 0 else float("nan")
    return {
        "shape": tuple(values.shape),
        "numel": int(flat.size),
        "min": float(flat.min()),
        "max": float(flat.max()),
        "mean": mean,
        "std": std,
        "zeros": float(np.mean(flat == 0.0)),
        "near_zero": float(np.mean(np.abs(flat) <= near_zero)),
        "kurtosis": kurtosis,
    }


def weight_tensors(model: nn.Module) -> dict:
    """The model's weight tensors by name, as zero-argument functions returning the *current* tensor.

    A weight is a module attribute ``weight`` (or a parameter whose name ends in ``weight``) with at
    least 2 dimensions — the conv/linear/embedding weights; names are those of ``named_parameters``
    (``features.0.weight``). Reading ``module.weight`` rather than the parameter means a pruned
    (``torch.nn.utils.prune``) or parametrized layer shows its effective, masked weight. If the
    model has no such tensor, 1-D weights (normalisation scales) are returned instead.
    """
    require_module("model", model)
    found: dict[str, tuple[nn.Module, str, int]] = {}
    for module_name, module in model.named_modules():
        attrs = [name for name, _ in module.named_parameters(recurse=False) if name.endswith("weight")]
        if "weight" not in attrs and isinstance(getattr(module, "weight", None), torch.Tensor):
            attrs.insert(0, "weight")  # pruned (weight_orig + mask) or parametrized layers
        for attr in attrs:
            full = f"{module_name}.{attr}" if module_name else attr
            found[full] = (module, attr, getattr(module, attr).dim())
    if any(ndim >= 2 for *_, ndim in found.values()):
        found = {name: entry for name, entry in found.items() if entry[2] >= 2}
    if not found:
        raise ValueError(f"model ({type(model).__name__}) has no weight tensors; "
                         "expected at least one conv/linear layer with a .weight")
    return {name: (lambda module=module, attr=attr: getattr(module, attr).detach())
            for name, (module, attr, _) in found.items()}
