"""Counting a model's parameters and non-zeros, and the effective state dict a pruned model ships.

A pruned module's ``weight_orig`` and ``weight_mask`` count as their product, the weight it computes with.
Explained in notebooks/00_why_compress.ipynb.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from labkit.validate import require_module


def count_parameters(model: nn.Module) -> int:
    """Number of scalar parameters, ``sum(p.numel() for p in model.parameters())``.

    Shared parameters count once; buffers (BatchNorm running statistics, pruning masks) do not
    count. A pruned weight still counts in full: pruning zeroes entries, it does not remove them.
    Counting needs only shapes, so a model on the ``meta`` device is counted too.
    Explained in notebooks/00_why_compress.ipynb.
    """
    require_module("model", model, allow_meta=True)
    return sum(p.numel() for p in model.parameters())


def count_nonzeros(model: nn.Module) -> int:
    """Number of non-zero scalar parameters, counting the *effective* weight of pruned modules.

    A module pruned with a re-parametrisation (``weight_orig`` parameter + ``weight_mask`` buffer,
    as ``torch.nn.utils.prune`` and ``labkit.prune`` do) contributes ``nnz(weight_orig * weight_mask)``.
    Explained in notebooks/00_why_compress.ipynb.
    """
    require_module("model", model)
    total, seen = 0, set()
    for module in model.modules():
        for key, tensor in effective_parameters(module):
            if key not in seen:
                seen.add(key)
                total += int(torch.count_nonzero(tensor))
    return total


def sparsity(model: nn.Module) -> float:
    """Fraction of parameters that are zero, ``1 - count_nonzeros / count_parameters``, in [0, 1].

    Raises ``ValueError`` for a model without parameters. Explained in notebooks/00_why_compress.ipynb.
    """
    total = count_parameters(model)
    if total == 0:
        raise ValueError("model has no parameters, so its sparsity is undefined")
    return 1.0 - count_nonzeros(model) / total


def effective_state_dict(model_or_state_dict) -> dict[str, torch.Tensor]:
    """The state dict with every ``X_orig`` / ``X_mask`` pair replaced by ``X = X_orig * X_mask``.

    Takes an ``nn.Module`` or a mapping ``name -> Tensor``; returns a new ``dict`` (tensors detached,
    on the CPU) in the original order. This is what a pruned model would ship.
    Explained in notebooks/00_why_compress.ipynb.
    """
    state = as_state_dict(model_or_state_dict)
    merged = {}
    for name, tensor in state.items():
        if name.endswith("_mask") and name[:-len("_mask")] + "_orig" in state:
            continue
        if name.endswith("_orig") and name[:-len("_orig")] + "_mask" in state:
            mask = state[name[:-len("_orig")] + "_mask"]
            name, tensor = name[:-len("_orig")], tensor * mask
        merged[name] = tensor.detach().cpu()
    return merged


def effective_parameters(module: nn.Module):
    """Yield ``(key, tensor)`` for the module's own parameters, pruning masks applied.

    ``key`` identifies the parameter (its ``id``) so that shared parameters count once.
    """
    for name, param in module.named_parameters(recurse=False):
        mask = getattr(module, name[:-len("_orig")] + "_mask", None) if name.endswith("_orig") else None
        tensor = param.detach() * mask if isinstance(mask, torch.Tensor) else param.detach()
        yield id(param), tensor


def as_state_dict(model_or_state_dict) -> Mapping:
    """The state dict of a Module, or the mapping itself after checking its values are tensors."""
    if isinstance(model_or_state_dict, nn.Module):
        require_module("model_or_state_dict", model_or_state_dict)
        return model_or_state_dict.state_dict()
    if isinstance(model_or_state_dict, Mapping):
        for name, value in model_or_state_dict.items():
            if not isinstance(name, str) or not isinstance(value, torch.Tensor):
                raise TypeError(f"state dict entries must be str -> torch.Tensor, got {name!r}: "
                                f"{type(value).__name__}")
            if value.is_meta:
                raise ValueError(f"model_or_state_dict holds {name!r} on the meta device (a shape without "
                                 "values), which has no bytes to write")
        return model_or_state_dict
    raise TypeError("model_or_state_dict must be a torch.nn.Module or a mapping name -> Tensor, "
                    f"got {type(model_or_state_dict).__name__}")
