"""Unstructured pruning: zero individual weights with the lowest scores, per layer or globally.

For a tensor of ``n`` weights and ``amount`` ∈ [0, 1], exactly ``k = round(amount · n)`` weights are
pruned (Python's ``round``, as ``torch.nn.utils.prune``): those with the ``k`` smallest scores. Ties
are broken by position (a stable sort: the earlier flat index is pruned first), so the result is
deterministic even when many weights have the same magnitude — e.g. exact zeros.

``global_prune`` ranks the scores of *all* layers together (one threshold for the whole model,
like ``torch.nn.utils.prune.global_unstructured``): layers with many small weights lose more.
``amount`` is always the *target* fraction of zeros after the call; weights pruned earlier stay
pruned (their score is ``-inf``), which is what the iterative schedules rely on.
Explained in notebooks/07_unstructured_pruning.ipynb.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from labkit.prune.criteria import get_criterion
from labkit.prune.masks import PRUNABLE_TYPES, apply_mask, effective_weight, is_pruned, require_prunable
from labkit.validate import require_float, require_int, require_module


def _check_amount(amount, name: str = "amount") -> float:
    return require_float(name, amount, 0.0, 1.0)


def _check_layer(module) -> nn.Module:
    require_module("module", module)
    if not isinstance(module, PRUNABLE_TYPES):
        raise TypeError(f"module must be an nn.Linear or nn.Conv2d (unstructured pruning of its weight), "
                        f"got unsupported module type {type(module).__name__}")
    return module


def _ranked(module: nn.Module, scores: torch.Tensor) -> torch.Tensor:
    """``scores`` of the module's weight as float64 on its device; already pruned weights get ``-inf``."""
    weight = effective_weight(module)
    scores = scores.detach().to(device=weight.device, dtype=torch.float64)
    if is_pruned(module):
        scores = scores.masked_fill(module.weight_mask == 0, float("-inf"))
    return scores


def _check_scores(name: str, scores, weight: torch.Tensor) -> torch.Tensor:
    """Precomputed scores: a real tensor of the weight's shape without NaN (``-inf``/``inf`` allowed)."""
    if not isinstance(scores, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of the weight's shape, got {type(scores).__name__}")
    if not (scores.is_floating_point() or scores.dtype in (torch.int32, torch.int64)):
        raise TypeError(f"{name} must be a real-valued tensor, got dtype {scores.dtype}")
    if tuple(scores.shape) != tuple(weight.shape):
        raise ValueError(f"{name} must have the weight's shape {tuple(weight.shape)}, got {tuple(scores.shape)}")
    if bool(torch.isnan(scores).any()):
        raise ValueError(f"{name} must not contain NaN")
    return scores


def _lowest_k_mask(scores: torch.Tensor, k: int) -> torch.Tensor:
    """0/1 mask of ``scores``' shape with 0 at the ``k`` lowest scores (stable: ties by flat index)."""
    flat = scores.reshape(-1)
    order = torch.sort(flat, stable=True).indices
    mask = torch.ones_like(flat)
    mask[order[:k]] = 0.0
    return mask.reshape(scores.shape)


def prune_layer(module: nn.Module, amount: float, criterion: str = "magnitude", *, seed: int = 0,
                scores: torch.Tensor | None = None) -> torch.Tensor:
    """Prune ``module.weight`` so that ``round(amount · n)`` of its ``n`` weights are zero; return the mask.

    ``criterion`` is a data-free registered criterion (``criteria.CRITERIA``): ``"magnitude"``
    (prune the smallest ``|w|``), ``"random"`` (seeded by ``seed``) or one added with
    ``criteria.register_criterion``; ``scores`` (a tensor of the weight's shape, e.g. one layer of
    ``criteria.taylor_scores``, chapter 08) replaces the criterion when given. The module gets the
    ``weight_orig``/``weight_mask`` re-parametrisation of ``masks.apply_mask``. Equivalent to
    ``torch.nn.utils.prune.l1_unstructured`` (magnitude) on a fresh layer without ties. Raises
    ``TypeError`` for a non-Linear/Conv2d module or non-tensor scores and ``ValueError`` for
    ``amount`` outside [0, 1] (or NaN), an unknown criterion, or scores of the wrong shape or with
    NaN. Returns the mask (float 0/1). Explained in notebooks/07_unstructured_pruning.ipynb and
    notebooks/08_importance_criteria.ipynb.
    """
    _check_layer(module)
    amount = _check_amount(amount)
    chosen = get_criterion(criterion, "weight", needs_data=False)
    seed = require_int("seed", seed, 0, 2**63 - 1)
    if scores is None:
        scores = chosen.score_weights(module, {"": module}, seed=seed)[""]
        scores = _check_scores(f"criterion {criterion!r}'s scores", scores, effective_weight(module))
    else:
        scores = _check_scores("scores", scores, effective_weight(module))
    scores = _ranked(module, scores)
    mask = _lowest_k_mask(scores, round(amount * scores.numel()))
    apply_mask(module, "weight", mask=mask)
    return module.weight_mask.detach().clone()


def global_threshold(model: nn.Module, amount: float) -> float:
    """The magnitude threshold of ``global_magnitude_prune(model, amount)``: the largest pruned ``|w|``.

    With all prunable weights' ``|w|`` sorted ascending into ``a_1 ≤ … ≤ a_N`` and
    ``k = round(amount · N)``, returns ``a_k`` (0.0 when ``k = 0``). Weights with ``|w| < a_k`` are
    pruned, those with ``|w| > a_k`` kept (ties at ``a_k`` by position).
    Explained in notebooks/07_unstructured_pruning.ipynb.
    """
    layers = require_prunable(model)
    amount = _check_amount(amount)
    flat = torch.cat([effective_weight(m).abs().reshape(-1).double() for m in layers.values()])
    k = round(amount * flat.numel())
    return float(torch.sort(flat).values[k - 1]) if k > 0 else 0.0


def global_prune(model: nn.Module, amount: float, criterion: str = "magnitude", *, seed: int = 0,
                 layers=None, scores: Mapping | None = None, data=None, **options) -> dict[str, torch.Tensor]:
    """Prune ``round(amount · N)`` of the ``N`` weights of all prunable layers together, by one ranking.

    The scores of every layer under the registered weight ``criterion`` (``|w|``, seeded random with
    ``seed + i`` for the ``i``-th layer, or a data criterion such as ``"taylor"`` computed from
    ``data`` with ``options``; already-pruned weights ``-inf``) are concatenated in
    ``named_modules`` order and the lowest ``k`` are pruned — one global threshold, as
    ``torch.nn.utils.prune.global_unstructured``. ``layers`` (optional) restricts pruning to those
    layer names. ``scores`` (optional), a ``{layer name: tensor}`` dict such as
    ``criteria.saliency(model, "taylor", data)`` (chapter 08), replaces the criterion: it must hold
    a tensor of the weight's shape for every layer pruned. Returns ``{layer name: mask}``. Raises
    ``ValueError`` for ``amount`` outside [0, 1], an unknown criterion (the message lists the
    registered ones) or layer name, or missing / misshapen scores. Explained in notebooks/07_unstructured_pruning.ipynb and
    notebooks/08_importance_criteria.ipynb.
    """
    all_layers = require_prunable(model)
    amount = _check_amount(amount)
    rule = get_criterion(criterion, "weight")
    seed = require_int("seed", seed, 0, 2**63 - 1)
    chosen = all_layers if layers is None else {n: all_layers[n] for n in check_layer_names(layers, all_layers)}
    if scores is None:
        scores = rule.score_weights(model, chosen, seed=seed, data=data, **options)
        given = _check_score_dict(scores, chosen, f"criterion {criterion!r}'s scores")
    else:
        given = _check_score_dict(scores, chosen)
    scores = [_ranked(m, given[n]) for n, m in chosen.items()]
    flat = torch.cat([s.reshape(-1) for s in scores])
    mask = _lowest_k_mask(flat, round(amount * flat.numel()))
    masks, start = {}, 0
    for (name, module), s in zip(chosen.items(), scores):
        apply_mask(module, "weight", mask=mask[start:start + s.numel()].reshape(s.shape))
        masks[name] = module.weight_mask.detach().clone()
        start += s.numel()
    return masks


def _check_score_dict(scores, chosen: dict, name: str = "scores") -> dict:
    if not isinstance(scores, Mapping):
        raise TypeError(f"{name} must be a dict {{layer name: score tensor}}, got {type(scores).__name__}")
    missing = [n for n in chosen if n not in scores]
    if missing:
        raise ValueError(f"{name} must hold a tensor for every layer pruned; missing {missing}")
    return {n: _check_scores(f"{name}[{n!r}]", scores[n], effective_weight(m)) for n, m in chosen.items()}


def global_magnitude_prune(model: nn.Module, amount: float, *, layers=None) -> dict[str, torch.Tensor]:
    """``global_prune(model, amount, "magnitude")``: prune the globally smallest ``|w|``.

    Equals ``torch.nn.utils.prune.global_unstructured(..., pruning_method=L1Unstructured,
    amount=amount)`` on the same layers (without ties). Returns ``{layer name: mask}``.
    Explained in notebooks/07_unstructured_pruning.ipynb.
    """
    return global_prune(model, amount, "magnitude", layers=layers)


def check_layer_names(names, layers: Mapping) -> list[str]:
    """``names`` as a list if it is an iterable of str naming only keys of ``layers`` (``{name: layer}``):
    ``TypeError`` for a bare str or non-str entries, ``ValueError`` listing unknown names and the valid ones."""
    if isinstance(names, str) or not all(isinstance(n, str) for n in names):
        raise TypeError(f"layer names must be an iterable of str, got {names!r}")
    unknown = [n for n in names if n not in layers]
    if unknown:
        raise ValueError(f"unknown layer name(s) {unknown}; prunable layers are {list(layers)}")
    return list(names)


def layerwise_prune(model: nn.Module, amounts: Mapping, criterion: str = "magnitude", *,
                    seed: int = 0) -> dict[str, torch.Tensor]:
    """Prune each named layer to its own sparsity: ``amounts = {"fc1": 0.9, "fc2": 0.8, ...}``.

    Every value must be in [0, 1]; layers not named are left alone. Returns ``{layer name: mask}``.
    Raises ``TypeError`` if ``amounts`` is not a mapping, ``ValueError`` for an unknown layer name
    or an amount outside [0, 1]. Explained in notebooks/07_unstructured_pruning.ipynb.
    """
    layers = require_prunable(model)
    if not isinstance(amounts, Mapping):
        raise TypeError(f"amounts must be a dict {{layer name: amount}}, got {type(amounts).__name__}")
    check_layer_names(list(amounts), layers)
    checked = {name: _check_amount(value, f"amounts[{name!r}]") for name, value in amounts.items()}
    return {name: prune_layer(layers[name], value, criterion, seed=seed) for name, value in checked.items()}
