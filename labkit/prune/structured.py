"""Structured pruning: score whole output channels (filters) and physically remove the weakest.

Unstructured pruning (chapter 07) leaves a dense tensor full of zeros that a dense kernel still
multiplies. Removing output channel ``c`` of a convolution instead deletes row ``c`` of its weight
``[C_out, C_in, k, k]`` (and of its bias and BatchNorm), and column ``c`` of the *next* layer's
weight: both tensors shrink, so parameters, MACs, bytes and measured latency all drop.

Channel scores (one number per output channel, the lowest are removed first):

* ``l1`` / ``l2`` — the filter norm ``||W[c]||_p`` over ``[C_in, k, k]`` (Li et al. 2017, "Pruning
  Filters for Efficient ConvNets"; seed 002 §4.2).
* ``bn`` — ``|γ_c|`` of the BatchNorm after the conv (Liu et al. 2017, "Learning Efficient
  Convolutional Networks through Network Slimming"): the channel's output is ``γ_c·x̂ + β_c``, so a
  small ``|γ_c|`` means a nearly constant channel. ``bn_l1_regularizer`` adds ``λ·Σ|γ|`` to training.
* ``correlation`` — redundancy (seed 001's mermaid "基于神经元相关性的剪枝"): a filter that is almost
  a multiple of another carries no new information. Greedy: take the most correlated remaining
  pair, remove its smaller-norm member, repeat.
* ``geometric_median`` — ``Σ_j ||W[c] − W[j]||_2`` (He et al. 2019, FPGM): the filters closest to
  all the others are the most replaceable.
* ``random`` — the baseline.

Each is registered in ``labkit.prune.criteria``'s one registry (``register_criterion(name, fn,
unit="channel")``); every weight criterion (``magnitude``, ``taylor``, one you add) scores channels
too, by the sum of its weight scores over each filter. ``CHANNEL_CRITERIA`` lists the data-free ones.
The surgery itself (``prune_channels``) lives in ``labkit.prune.surgery``.
Explained in notebooks/09_structured_pruning.ipynb.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from labkit.prune.criteria import CriterionView, get_criterion, register_criterion
from labkit.prune.sparse_training import soft_threshold
from labkit.prune.surgery import ChannelGroup, channel_groups, prune_channels
from labkit.validate import (require_bool, require_choice, require_float, require_float_tensor, require_int,
                             require_module)

CHANNEL_CRITERIA = CriterionView("channel", needs_data=False)
"""The data-free criteria that ``channel_scores`` accepts (live view of the registry)."""


def _rows(weight: torch.Tensor) -> torch.Tensor:
    require_float_tensor("weight", weight)
    if weight.dim() < 2:
        raise ValueError(f"weight must have ≥ 2 dimensions [C_out, ...], got shape {tuple(weight.shape)}")
    return weight.detach().reshape(weight.shape[0], -1).double()


def filter_norms(weight: torch.Tensor, p: int = 1) -> torch.Tensor:
    """``||W[c]||_p`` of every output filter: weight ``[C_out, C_in, k, k]`` (or Linear ``[out, in]``)
    → float64 ``[C_out]``. ``p`` is 1 (``Σ|w|``, Li et al. 2017) or 2 (``sqrt(Σ w²)``).

    Explained in notebooks/09_structured_pruning.ipynb.
    """
    p = require_choice("p", require_int("p", p), (1, 2))
    return torch.linalg.vector_norm(_rows(weight), ord=p, dim=1)


def bn_scale_scores(bn: nn.Module) -> torch.Tensor:
    """``|γ_c|`` of a ``BatchNorm1d/2d`` with affine parameters: float64 ``[C]`` (network slimming).

    Explained in notebooks/09_structured_pruning.ipynb.
    """
    if not isinstance(bn, (nn.BatchNorm1d, nn.BatchNorm2d)) or bn.weight is None:
        raise TypeError(f"bn must be an affine nn.BatchNorm1d/2d, got {type(bn).__name__}")
    return bn.weight.detach().abs().double()


def correlation_scores(weight: torch.Tensor) -> torch.Tensor:
    """Redundancy ranks of the filters of ``weight [C_out, ...]``: float64 ``[C_out]``, lowest = most redundant.

    ``ρ_ij = |cos(W[i], W[j])|`` (Pearson correlation of the flattened filters without centring; a
    filter ``a·W[j]`` has ``ρ = 1``). Greedy: among the filters still present take the pair with the
    largest ``ρ``, remove the one with the smaller L2 norm (rank 0, 1, 2, ...), repeat; the last
    filter gets rank ``C_out − 1``. Explained in notebooks/09_structured_pruning.ipynb.
    """
    rows = _rows(weight)
    unit = rows / rows.norm(dim=1, keepdim=True).clamp_min(1e-12)
    rho = (unit @ unit.T).abs()
    rho.fill_diagonal_(-1.0)
    norms, alive = rows.norm(dim=1), list(range(rows.shape[0]))
    scores = torch.empty(rows.shape[0], dtype=torch.float64)
    for rank in range(rows.shape[0] - 1):
        sub = rho[alive][:, alive]
        flat = int(torch.argmax(sub))
        i, j = alive[flat // len(alive)], alive[flat % len(alive)]
        drop = i if (norms[i], -i) < (norms[j], -j) else j   # smaller norm goes; ties: larger index
        scores[drop] = rank
        alive.remove(drop)
    scores[alive[0]] = rows.shape[0] - 1
    return scores


def geometric_median_scores(weight: torch.Tensor) -> torch.Tensor:
    """``s_c = Σ_j ||W[c] − W[j]||_2`` (FPGM, He et al. 2019): float64 ``[C_out]``; the filter nearest
    the geometric median of the layer scores lowest. Explained in notebooks/09_structured_pruning.ipynb.
    """
    rows = _rows(weight)
    return torch.cdist(rows, rows).sum(dim=1)


def filter_criterion(score_filters: Callable[[torch.Tensor], torch.Tensor]) -> Callable:
    """Adapt ``score_filters(weight [C_out, ...]) -> [C_out]`` to the registry's channel signature."""
    def score(model: nn.Module, groups: dict, *, seed: int = 0, data=None) -> dict:
        return {name: score_filters(model.get_submodule(g.layer).weight) for name, g in groups.items()}
    return score


register_criterion("l1", filter_criterion(lambda w: filter_norms(w, 1)), unit="channel")
register_criterion("l2", filter_criterion(lambda w: filter_norms(w, 2)), unit="channel")


@register_criterion("bn", unit="channel")
def bn_criterion(model: nn.Module, groups: dict, *, seed: int = 0, data=None) -> dict:
    """``bn_scale_scores`` of the BatchNorm after each group's layer (network slimming's ``|γ|``)."""
    missing = [name for name, g in groups.items() if g.norm is None]
    if missing:
        raise ValueError(f"criterion 'bn' needs a BatchNorm after layer {missing[0]!r}; use l1, l2, "
                         "correlation, geometric_median or random for this model")
    return {name: bn_scale_scores(model.get_submodule(g.norm)) for name, g in groups.items()}


register_criterion("correlation", filter_criterion(correlation_scores), unit="channel")
register_criterion("geometric_median", filter_criterion(geometric_median_scores), unit="channel")


@register_criterion("random", unit="channel")
def random_channel_criterion(model: nn.Module, groups: dict, *, seed: int = 0, data=None) -> dict:
    """Uniform ``[0, 1)`` float64 ``[C_out]`` per group, the ``i``-th from ``manual_seed(seed + i)``."""
    return {name: torch.rand(model.get_submodule(g.layer).weight.shape[0], dtype=torch.float64,
                             generator=torch.Generator().manual_seed(seed + i))
            for i, (name, g) in enumerate(groups.items())}


def channel_scores(model: nn.Module, criterion: str = "l1", *, layers=None, seed: int = 0,
                   linear: bool = False, data=None, **options) -> dict:
    """``{group name: float64 [C_out]}`` scores of every prunable channel group of ``model``.

    ``criterion`` is any registered criterion (``CHANNEL_CRITERIA`` lists the data-free ones; a
    weight criterion such as ``"taylor"`` — computed from ``data`` with ``options`` — scores a channel
    by the sum of its weights' scores); ``layers`` (default: every group of
    ``channel_groups(model, linear=linear)``; ``linear=True`` adds the hidden neurons of Linear layers,
    whose "filters" are weight rows) restricts the groups. ``bn`` needs a BatchNorm after each scored
    layer; ``random`` draws from ``torch.Generator().manual_seed(seed + i)`` for the i-th group.
    Explained in notebooks/09_structured_pruning.ipynb and notebooks/08_importance_criteria.ipynb.
    """
    rule = get_criterion(criterion, "channel")
    seed = require_int("seed", seed, 0, 2**62)
    linear = require_bool("linear", linear)
    groups = _select(channel_groups(model, linear=linear), layers)
    return rule.score_channels(model, groups, seed=seed, data=data, **options)


def _select(groups: dict, layers) -> dict:
    if layers is None:
        return groups
    if isinstance(layers, str) or not all(isinstance(n, str) for n in layers):
        raise TypeError(f"layers must be a list of group names, got {layers!r}")
    unknown = [n for n in layers if n not in groups]
    if unknown:
        raise ValueError(f"layers must be among {list(groups)}, got unknown {unknown}")
    return {n: groups[n] for n in layers}


def keep_indices(scores: torch.Tensor, amount: float) -> torch.Tensor:
    """Sorted int64 indices of the channels kept when the ``round(amount·C)`` lowest scores go.

    ``amount`` in [0, 1); at least one channel is always kept (``ValueError`` otherwise). Ties are
    broken by index (the lower index is removed first). Explained in notebooks/09_structured_pruning.ipynb.
    """
    amount = require_float("amount", amount, 0.0, 1.0, high_open=True)
    if not isinstance(scores, torch.Tensor) or scores.dim() != 1 or scores.numel() == 0:
        raise ValueError("scores must be a non-empty 1-d tensor [C_out]")
    remove = round(amount * scores.numel())
    if remove >= scores.numel():
        raise ValueError(f"amount {amount} would remove all {scores.numel()} channels; keep at least one")
    order = sorted(range(scores.numel()), key=lambda c: (float(scores[c]), c))
    return torch.tensor(sorted(order[remove:]), dtype=torch.int64)


def structured_prune(model: nn.Module, amount: float, criterion: str = "l1", *, layers=None, seed: int = 0,
                     scores: dict | None = None, fold: bool = False, linear: bool = False, data=None,
                     **options) -> tuple[nn.Module, dict]:
    """Remove ``round(amount·C_out)`` channels from every group (``layers``) and return
    ``(smaller model, {group: kept indices})``; ``model`` itself is not modified.

    Channels are ranked per layer by ``channel_scores(model, criterion, data=data, **options)`` (or
    the precomputed ``scores``); ``amount`` in [0, 1). The result is a dense ``nn.Module`` of the same class with
    thinner layers (``prune_channels``; ``fold=True`` folds each removed channel's constant
    ``relu(β_c)`` into the next layer; ``linear=True`` also prunes hidden Linear neurons).
    Explained in notebooks/09_structured_pruning.ipynb.
    """
    require_float("amount", amount, 0.0, 1.0, high_open=True)
    if scores is None:
        scores = channel_scores(model, criterion, layers=layers, seed=seed, linear=linear, data=data, **options)
    keep = {name: keep_indices(s, amount) for name, s in scores.items()}
    return prune_channels(model, keep, fold=fold), keep


def bn_l1_penalty(model: nn.Module, lam: float) -> torch.Tensor:
    """``λ·Σ_BN Σ_c |γ_c|`` over every affine BatchNorm1d/2d: a differentiable 0-d tensor whose gradient
    with respect to ``γ_c`` is ``λ·sign(γ_c)`` (network slimming's sparsity term). ``lam`` in [0, 1].

    Explained in notebooks/09_structured_pruning.ipynb.
    """
    gammas = _bn_scales(model)
    lam = require_float("lam", lam, 0.0, 1.0)
    return lam * sum(g.abs().sum() for g in gammas)


def bn_l1_proximal(threshold: float) -> Callable[[nn.Module], None]:
    """An ``after_step`` callable: soft-threshold every BatchNorm scale, ``γ ← sign(γ)·max(|γ| − t, 0)``.

    The proximal step of ``t·Σ|γ|`` (chapter 08's ``soft_threshold`` applied to γ only): unlike the
    subgradient ``λ·sign(γ)``, which Adam rescales and which only makes small γ hop around 0, it lands
    the γ the data does not defend *exactly* on 0 — channels that then output the constant ``β``
    (``prune_channels(..., fold=True)`` removes them without changing the function). Use
    ``train.fit(..., after_step=bn_l1_proximal(t))``; ``threshold`` ≥ 0 per step.
    Explained in notebooks/09_structured_pruning.ipynb.
    """
    threshold = require_float("threshold", threshold, 0.0)

    @torch.no_grad()
    def step(model: nn.Module) -> None:
        for gamma in _bn_scales(model):
            gamma.copy_(soft_threshold(gamma.detach(), threshold))

    return step


def _bn_scales(model: nn.Module) -> list:
    require_module("model", model)
    gammas = [m.weight for m in model.modules()
              if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) and m.weight is not None]
    if not gammas:
        raise ValueError("model has no affine BatchNorm layer whose scale γ could be regularised")
    return gammas


def bn_l1_regularizer(lam: float) -> Callable[[nn.Module], torch.Tensor]:
    """``model -> bn_l1_penalty(model, lam)``, for ``train.fit(..., regularizer=bn_l1_regularizer(1e-4))``.

    Explained in notebooks/09_structured_pruning.ipynb.
    """
    lam = require_float("lam", lam, 0.0, 1.0)
    return lambda model: bn_l1_penalty(model, lam)


__all__ = ["CHANNEL_CRITERIA", "ChannelGroup", "bn_l1_penalty", "bn_l1_proximal", "bn_l1_regularizer", "bn_scale_scores",
           "channel_groups", "channel_scores", "correlation_scores", "filter_norms", "geometric_median_scores",
           "keep_indices", "prune_channels", "structured_prune"]
