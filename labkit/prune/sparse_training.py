"""Sparse training: penalties that make training itself drive weights to zero (seed 000 §3.1.2).

* **L1 / LASSO** (seed 001 §4.2.1): ``L = L_0(W) + λ·Σ_l ||W_l||_1``. The penalty's subgradient is
  ``λ·sign(w)``: a constant pull towards zero, the same for a weight of 0.001 as for one of 1, so
  weights the data does not defend end near zero (an L2 pull ``λ·w`` fades as ``w`` shrinks and
  leaves them small but never zero).
* **Group LASSO** over output rows (Yuan & Lin 2006; Wen et al. 2016, "Structured sparsity"):
  ``λ·Σ_g ||w_g||_2`` with one group per output neuron (a Linear row) or per output filter (a Conv2d
  ``[C_in, k, k]`` block). It zeroes whole groups — the structured pruning of chapter 09.
* **Soft-thresholding**, the proximal operator of ``t·|w|``: ``sign(w)·max(|w| − t, 0)``. A
  gradient step on ``L_0`` followed by it (proximal gradient, ISTA) lands weights *exactly* on 0,
  where the subgradient step only makes them oscillate around it.

``l1_regularizer(lam)`` and ``group_lasso_regularizer(lam)`` return callables for
``train.fit(..., regularizer=...)``; ``l1_proximal(threshold)`` one for ``after_step=``;
``near_zero_report`` counts the weights that training left below a threshold.
Explained in notebooks/08_importance_criteria.ipynb.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from labkit.prune.masks import effective_weight, is_pruned, masked_weight, require_prunable
from labkit.validate import require_float, require_float_tensor


def _check_lam(lam) -> float:
    return require_float("lam", lam, 0.0, 1.0)


def _differentiable_weight(module: nn.Module) -> torch.Tensor:
    """The weight the forward pass uses, still attached to the graph (``orig * mask`` if pruned)."""
    return masked_weight(module) if is_pruned(module) else module.weight


def l1_penalty(model: nn.Module, lam: float) -> torch.Tensor:
    """``λ·Σ_l Σ_i |W_l,i|`` over the weights of every Linear/Conv2d layer (biases excluded).

    A differentiable 0-d tensor; its gradient with respect to each weight is ``λ·sign(w)`` (0 at
    exactly 0, torch's subgradient choice). ``lam`` is in [0, 1]. Pruned layers contribute their
    effective weight ``orig * mask``. Explained in notebooks/08_importance_criteria.ipynb.
    """
    layers = require_prunable(model, "regularise")
    lam = _check_lam(lam)
    return lam * sum(_differentiable_weight(m).abs().sum() for m in layers.values())


def group_norms(weight: torch.Tensor) -> torch.Tensor:
    """``||w_g||_2`` of each output group of a weight ``[out, ...]``: float tensor ``[out]``.

    A Linear weight ``[out, in]`` has one group per row, a Conv2d weight ``[out, in, kh, kw]`` one
    per output filter. Explained in notebooks/08_importance_criteria.ipynb.
    """
    require_float_tensor("weight", weight)
    if weight.dim() < 2:
        raise ValueError(f"weight must have ≥ 2 dimensions [out, ...], got shape {tuple(weight.shape)}")
    return torch.linalg.vector_norm(weight.reshape(weight.shape[0], -1), dim=1)


def group_lasso_penalty(model: nn.Module, lam: float) -> torch.Tensor:
    """``λ·Σ_l Σ_g ||W_l[g]||_2`` with one group per output row / filter of every Linear/Conv2d layer.

    The L2 norm is not squared: its gradient ``λ·w_g/||w_g||`` has length ``λ`` whatever the size
    of the group, so small groups are pushed all the way to zero together (the gradient of a group
    that is exactly 0 is taken as 0). ``lam`` in [0, 1]. Returns a differentiable 0-d tensor.
    Explained in notebooks/08_importance_criteria.ipynb.
    """
    layers = require_prunable(model, "regularise")
    lam = _check_lam(lam)
    return lam * sum(group_norms(_differentiable_weight(m)).sum() for m in layers.values())


def l1_regularizer(lam: float) -> Callable[[nn.Module], torch.Tensor]:
    """``model -> l1_penalty(model, lam)``, for ``train.fit(model, data, regularizer=l1_regularizer(1e-4))``.

    Explained in notebooks/08_importance_criteria.ipynb.
    """
    lam = _check_lam(lam)
    return lambda model: l1_penalty(model, lam)


def group_lasso_regularizer(lam: float) -> Callable[[nn.Module], torch.Tensor]:
    """``model -> group_lasso_penalty(model, lam)``, for ``train.fit(..., regularizer=...)``.

    Explained in notebooks/08_importance_criteria.ipynb.
    """
    lam = _check_lam(lam)
    return lambda model: group_lasso_penalty(model, lam)


def soft_threshold(weight: torch.Tensor, threshold: float) -> torch.Tensor:
    """``sign(w)·max(|w| − t, 0)`` element-wise: the proximal operator of ``t·|w|`` (a new tensor).

    Weights with ``|w| ≤ t`` become exactly 0, the others shrink by ``t`` towards 0. ``threshold``
    is a finite number ≥ 0. Explained in notebooks/08_importance_criteria.ipynb.
    """
    require_float_tensor("weight", weight)
    threshold = require_float("threshold", threshold, 0.0)
    return torch.sign(weight) * torch.clamp(weight.abs() - threshold, min=0.0)


def l1_proximal(threshold: float) -> Callable[[nn.Module], None]:
    """An ``after_step`` callable: soft-threshold every Linear/Conv2d weight by ``threshold`` in place.

    With plain SGD at learning rate ``η`` and ``threshold = η·λ`` this makes each training step a
    proximal-gradient (ISTA) step of ``L_0 + λ·||W||_1``; with Adam it is a heuristic that still
    lands small weights exactly on 0. Use ``train.fit(..., after_step=l1_proximal(lr * lam))``.
    Explained in notebooks/08_importance_criteria.ipynb.
    """
    threshold = require_float("threshold", threshold, 0.0)

    @torch.no_grad()
    def step(model: nn.Module) -> None:
        for module in require_prunable(model, "regularise").values():
            target = module.weight_orig if is_pruned(module) else module.weight
            target.copy_(soft_threshold(target.detach(), threshold))
            if is_pruned(module):
                module.weight = masked_weight(module)

    return step


def near_zero_report(model: nn.Module, threshold: float = 1e-3) -> dict:
    """How many weights have ``|w| < threshold``, per prunable layer and over all of them.

    Returns ``{"threshold", "layers": {name: fraction}, "global": fraction, "count": int,
    "total": int}`` over the effective weights (biases excluded; exact zeros count). ``threshold``
    is a finite number > 0. Explained in notebooks/08_importance_criteria.ipynb.
    """
    layers = require_prunable(model, "regularise")
    threshold = require_float("threshold", threshold, 0.0, low_open=True)
    per_layer, count, total = {}, 0, 0
    for name, module in layers.items():
        w = effective_weight(module)
        n = int((w.abs() < threshold).sum())
        per_layer[name] = n / w.numel()
        count, total = count + n, total + w.numel()
    return {"threshold": threshold, "layers": per_layer, "global": count / total, "count": count, "total": total}
