"""Importance criteria for unstructured pruning: a score per weight, the lowest scores are pruned.

Data-free (chapter 07), a function of one weight tensor:

* ``magnitude_scores`` — ``|w|`` (the L1 criterion of Han et al. 2015 and seed 001 §4.2.1): a
  small weight contributes little to ``W·x``, so removing it changes the output least.
* ``random_scores`` — uniform noise from a seeded generator: the baseline every criterion must beat.

Data-driven (chapter 08), computed on a few batches of labelled data for *every* prunable layer of
a model at once (``{layer name: score tensor of the weight's shape}``). Removing weight ``w_i``
(setting it to 0, a change ``δw_i = −w_i``) changes the loss by the Taylor expansion

    ΔL ≈ −g_i·w_i + ½·h_ii·w_i²        (g = ∂L/∂w, h_ii = ∂²L/∂w_i², cross terms ignored)

* ``taylor_scores`` — the first-order term ``|w·g|`` per weight, averaged over batches (Molchanov
  et al. 2019, "Importance Estimation for Neural Network Pruning", score ``(g·w)²``, the same ranking
  for one batch; their 2017 paper, "Pruning Convolutional Neural Networks for Resource Efficient
  Inference", applies the first-order idea to whole feature maps instead).
* ``obd_scores`` — the second-order term ``½·h_ii·w²`` of Optimal Brain Damage (LeCun et al. 1990),
  whose diagonal Hessian is approximated by the empirical Fisher ``mean_b g_b²``.
* ``gradient_scores`` — ``mean_b |g_b|``: how strongly the loss pulls on a weight, ignoring its size.

Every criterion — these, the channel criteria of ``labkit.prune.structured`` and any you add — is
registered once, by name, with ``register_criterion`` (see ``Criterion`` for the one signature) and is
then usable by name in ``saliency``, ``global_prune``, ``prune_layer``, the schedules,
``channel_scores``/``structured_prune`` and the explorers; an unknown name is a ``ValueError`` that
lists the registered ones. ``saliency(model, criterion, data)`` gives any weight criterion as a dict
that ``global_prune(model, s, scores=...)`` ranks. ``mask_jaccard`` and ``rank_correlation``
compare two criteria. A score of ``-inf`` marks a weight that is already pruned, so it is pruned
again first. Explained in notebooks/07_unstructured_pruning.ipynb (magnitude, random) and
notebooks/08_importance_criteria.ipynb (the rest).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

from labkit import train
from labkit.prune.masks import effective_weight, is_pruned, prunable_layers, require_prunable
from labkit.validate import require_bool, require_choice, require_float_tensor, require_int


def magnitude_scores(weight: torch.Tensor) -> torch.Tensor:
    """``|w|`` element-wise: float tensor of ``weight``'s shape (the L1-magnitude criterion).

    Explained in notebooks/07_unstructured_pruning.ipynb.
    """
    require_float_tensor("weight", weight)
    return weight.detach().abs()


def random_scores(weight: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Uniform ``[0, 1)`` scores of ``weight``'s shape from ``torch.Generator().manual_seed(seed)``.

    The values of ``weight`` are ignored; the same seed and shape give the same scores.
    Explained in notebooks/07_unstructured_pruning.ipynb.
    """
    require_float_tensor("weight", weight)
    seed = require_int("seed", seed, 0, 2**63 - 1)
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(weight.shape, generator=generator, dtype=torch.float64).to(weight.device)


# ----------------------------------------------------------------------------- the registry
ScoreFn = Callable[..., dict]


@dataclass(frozen=True)
class Criterion:
    """A registered pruning criterion: how it scores single weights and/or whole output channels.

    Every score function has the one signature ``fn(model, targets, *, seed, data, **options) ->
    {name: float tensor}``. ``targets`` maps a name to what is scored: for ``weights``, a layer
    (``nn.Linear``/``nn.Conv2d``; return a tensor of its weight's shape), for ``channels``, a
    ``ChannelGroup`` (return float64 ``[C_out]``). The ``i``-th target draws any randomness from
    ``seed + i``; ``data`` is the labelled data (``(x, y)`` or a Dataset) of a criterion that
    ``needs_data``, else None; ``options`` (``batches``, ``loss_fn``...) only reach a data criterion.
    Lower scores are pruned first. A criterion without ``channels`` scores a channel by the sum of its
    weights' scores over the filter (``"magnitude"`` summed is the L1 filter norm; ``"taylor"`` summed
    is Molchanov et al. 2019's group Taylor score). Explained in notebooks/08_importance_criteria.ipynb.
    """

    name: str
    weights: ScoreFn | None = None
    channels: ScoreFn | None = None
    needs_data: bool = False

    def score_weights(self, model: nn.Module, layers: dict, *, seed: int = 0, data=None, **options) -> dict:
        """``{layer name: scores of its weight's shape}`` for the layers ``{name: module}`` of ``model``."""
        self._check_call(data, options)
        return self.weights(model, layers, seed=seed, data=data, **options)

    def score_channels(self, model: nn.Module, groups: dict, *, seed: int = 0, data=None, **options) -> dict:
        """``{group name: float64 [C_out]}`` for the ``{name: ChannelGroup}`` of ``model``."""
        self._check_call(data, options)
        if self.channels is not None:
            return self.channels(model, groups, seed=seed, data=data, **options)
        layers = {name: model.get_submodule(group.layer) for name, group in groups.items()}
        scores = self.weights(model, layers, seed=seed, data=data, **options)
        return {name: s.detach().double().reshape(s.shape[0], -1).sum(dim=1) for name, s in scores.items()}

    def _check_call(self, data, options: dict) -> None:
        if self.needs_data and data is None:
            raise ValueError(f"criterion {self.name!r} is computed from data: pass data=(x, y) or a labelled Dataset")
        if options and not self.needs_data:
            raise TypeError(f"criterion {self.name!r} takes no keyword arguments, got {sorted(options)}")


_REGISTRY: dict[str, Criterion] = {}
UNITS = ("weight", "channel")


def register_criterion(name: str, fn: ScoreFn | None = None, *, unit: str = "weight", needs_data: bool = False):
    """Register ``fn`` as criterion ``name`` for one ``unit`` (``"weight"`` or ``"channel"``); return ``fn``.

    ``fn`` has the signature of ``Criterion``. Without ``fn`` it is a decorator:
    ``@register_criterion("negative")``. A name may score both units (``"random"`` does: a
    per-channel draw is not the sum of per-weight draws); registering a unit twice is a
    ``ValueError`` (``unregister_criterion`` first). Explained in notebooks/08_importance_criteria.ipynb.
    """
    if fn is None:
        return lambda f: register_criterion(name, f, unit=unit, needs_data=needs_data)
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty str, got {name!r}")
    if not callable(fn):
        raise TypeError(f"fn must be callable (model, targets, *, seed, data) -> {{name: tensor}}, got {fn!r}")
    field = {"weight": "weights", "channel": "channels"}[require_choice("unit", unit, UNITS)]
    require_bool("needs_data", needs_data)
    old = _REGISTRY.get(name) or Criterion(name, needs_data=needs_data)
    if getattr(old, field) is not None or old.needs_data != needs_data:
        raise ValueError(f"criterion {name!r} is already registered for {unit}s (or with another needs_data); "
                         f"call unregister_criterion({name!r}) first")
    _REGISTRY[name] = replace(old, **{field: fn})
    return fn


def unregister_criterion(name: str) -> Criterion:
    """Remove criterion ``name`` (every unit) from the registry and return it."""
    return _REGISTRY.pop(require_choice("criterion", name, tuple(_REGISTRY)))


def criterion_names(unit: str = "weight", *, needs_data: bool | None = None) -> tuple[str, ...]:
    """Registered names usable for ``unit``, in registration order; ``needs_data`` filters if not None.

    Every criterion scores channels (those without a channel function by summing weight scores); only
    those with a weight function score single weights.
    """
    require_choice("unit", unit, UNITS)
    return tuple(name for name, c in _REGISTRY.items()
                 if (unit == "channel" or c.weights is not None) and needs_data in (None, c.needs_data))


def get_criterion(name: str, unit: str = "weight", *, needs_data: bool | None = None) -> Criterion:
    """The registered ``Criterion`` called ``name``; ``ValueError`` listing the usable names otherwise."""
    return _REGISTRY[require_choice("criterion", name, criterion_names(unit, needs_data=needs_data))]


class CriterionView(Mapping):
    """A live, read-only ``{name: Criterion}`` view of the registry for one unit (and data need)."""

    def __init__(self, unit: str, needs_data: bool | None = None):
        self.unit, self.needs_data = unit, needs_data

    def __getitem__(self, name: str) -> Criterion:
        if name not in criterion_names(self.unit, needs_data=self.needs_data):
            raise KeyError(name)
        return _REGISTRY[name]

    def __iter__(self):
        return iter(criterion_names(self.unit, needs_data=self.needs_data))

    def __len__(self) -> int:
        return len(criterion_names(self.unit, needs_data=self.needs_data))

    def __repr__(self) -> str:
        return f"CriterionView({list(self)})"


@register_criterion("magnitude")
def magnitude_criterion(model: nn.Module, layers: dict, *, seed: int = 0, data=None) -> dict:
    """``magnitude_scores`` of each layer's effective weight (the registered ``"magnitude"``)."""
    return {name: magnitude_scores(effective_weight(m)) for name, m in layers.items()}


@register_criterion("random")
def random_criterion(model: nn.Module, layers: dict, *, seed: int = 0, data=None) -> dict:
    """``random_scores`` of each layer, the ``i``-th seeded with ``seed + i`` (the registered ``"random"``)."""
    return {name: random_scores(effective_weight(m), seed + i) for i, (name, m) in enumerate(layers.items())}


CRITERIA = CriterionView("weight", needs_data=False)
"""The data-free weight criteria (live view of the registry): usable as ``criterion=`` everywhere in ``labkit.prune``."""


# ----------------------------------------------------------------------------- data-driven scores


def _trainable_weight(module: nn.Module) -> torch.Tensor:
    """The leaf tensor autograd differentiates: ``weight_orig`` of a pruned layer, else ``weight``."""
    return module.weight_orig if is_pruned(module) else module.weight


def batch_gradients(model: nn.Module, data, *, batches: int = 4, batch_size: int = 64, seed: int = 0,
                    loss_fn: Callable | None = None) -> list[dict[str, torch.Tensor]]:
    """Per-batch gradients ``g_b = ∂L_b/∂w`` of every prunable layer's weight, one dict per batch.

    ``L_b = loss_fn(model(x_b), y_b)`` (default cross-entropy, the mean over the batch) for the
    first ``batches`` batches of ``batch_size`` samples of ``data`` (Dataset or ``(x, y)``) in a
    shuffle order seeded by ``seed``. The model runs in ``eval()`` mode (no dropout, BatchNorm with
    running statistics) and its ``.grad`` fields are not touched (``torch.autograd.grad``). For a
    pruned layer the gradient is the one reaching ``weight_orig``: ``∂L/∂w ⊙ mask``. Returns
    ``[{layer name: float tensor of the weight's shape}, ...]``.
    Explained in notebooks/08_importance_criteria.ipynb.
    """
    layers = require_prunable(model, "score")
    batches = require_int("batches", batches, 1, 100_000)
    batch_size = require_int("batch_size", batch_size, 1, None)
    seed = require_int("seed", seed, 0, 2**32 - 1)
    if loss_fn is not None and not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable (logits, y) -> scalar loss, got {type(loss_fn).__name__}")
    loss_fn = loss_fn or F.cross_entropy
    dataset = train.as_dataset(data, "data", labelled=True)
    loader = train.batch_loader(dataset, batch_size, torch.Generator().manual_seed(seed))
    weights = [_trainable_weight(m) for m in layers.values()]
    was_training, device, grads = model.training, train.model_device(model), []
    model.eval()
    try:
        for x, y in loader:
            loss = loss_fn(model(x.to(device)), y.to(device))
            g = torch.autograd.grad(loss, weights)
            grads.append({name: gi.detach().clone() for name, gi in zip(layers, g)})
            if len(grads) == batches:
                break
    finally:
        model.train(was_training)
        for module in layers.values():            # leave the usual detached `weight` outside forward
            if is_pruned(module):
                with torch.no_grad():
                    module.weight = module.weight_orig * module.weight_mask
    return grads


def _weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: effective_weight(m) for name, m in prunable_layers(model).items()}


def taylor_scores(model: nn.Module, data, *, batches: int = 4, batch_size: int = 64, seed: int = 0,
                  loss_fn: Callable | None = None) -> dict[str, torch.Tensor]:
    """First-order Taylor saliency ``mean_b |w ⊙ g_b|`` of every prunable weight (Molchanov et al. 2019).

    Setting ``w_i`` to 0 changes the loss by ``ΔL ≈ −g_i·w_i`` to first order, so ``|g_i·w_i|``
    estimates the damage. The absolute value is taken *per batch* and then averaged over the
    ``batches`` batches of ``batch_gradients``: at a trained minimum the full-data gradient is ≈ 0,
    but each batch still pulls on the weights that matter. ``w`` is the effective weight (0 where
    pruned). Returns ``{layer name: float tensor of the weight's shape}``, all scores ≥ 0.
    Explained in notebooks/08_importance_criteria.ipynb.
    """
    grads = batch_gradients(model, data, batches=batches, batch_size=batch_size, seed=seed, loss_fn=loss_fn)
    weights = _weights(model)
    return {name: torch.stack([(w * g[name]).abs() for g in grads]).mean(0) for name, w in weights.items()}


def fisher_diagonal(model: nn.Module, data, *, batches: int = 4, batch_size: int = 64, seed: int = 0,
                    loss_fn: Callable | None = None) -> dict[str, torch.Tensor]:
    """Empirical Fisher diagonal ``F_ii = mean_b g_b,i²``: the mean squared per-batch gradient.

    An approximation of the Hessian diagonal ``h_ii = ∂²L/∂w_i²`` that needs only gradients: for a
    model trained with a log-likelihood loss, near a good minimum, ``E[g gᵀ] ≈ H`` (the Fisher
    identity). With ``batch_size = 1`` it is the classical per-sample empirical Fisher; larger
    batches average the noise out and shrink every entry by roughly ``1/batch_size`` (a common
    factor, which leaves the ranking of weights about the same). Returns ``{layer name: float tensor
    of the weight's shape}``, all entries ≥ 0. Explained in notebooks/08_importance_criteria.ipynb.
    """
    grads = batch_gradients(model, data, batches=batches, batch_size=batch_size, seed=seed, loss_fn=loss_fn)
    return {name: torch.stack([g[name] ** 2 for g in grads]).mean(0) for name in grads[0]}


def obd_scores(model: nn.Module, data, *, batches: int = 4, batch_size: int = 64, seed: int = 0,
               loss_fn: Callable | None = None) -> dict[str, torch.Tensor]:
    """Optimal Brain Damage saliency ``½·h_ii·w_i²`` with ``h_ii`` ≈ the empirical Fisher diagonal.

    LeCun, Denker & Solla 1990: at a minimum the gradient term vanishes and the loss increase of
    removing ``w_i`` is ``½·h_ii·w_i²`` (the diagonal of the Hessian, cross terms ignored). The
    Hessian diagonal is replaced by ``fisher_diagonal`` — the mean of squared per-batch gradients —
    so only first derivatives are computed. Returns ``{layer name: float tensor of the weight's
    shape}``, all scores ≥ 0. Explained in notebooks/08_importance_criteria.ipynb.
    """
    fisher = fisher_diagonal(model, data, batches=batches, batch_size=batch_size, seed=seed, loss_fn=loss_fn)
    return {name: 0.5 * fisher[name] * w ** 2 for name, w in _weights(model).items()}


def gradient_scores(model: nn.Module, data, *, batches: int = 4, batch_size: int = 64, seed: int = 0,
                    loss_fn: Callable | None = None) -> dict[str, torch.Tensor]:
    """Gradient magnitude ``mean_b |g_b|`` of every prunable weight (ignores the weight's own size).

    A foil for the Taylor score: a weight can feel a strong gradient and still be tiny (removing it
    changes little), so ``|g|`` alone is a poor criterion. Returns ``{layer name: tensor}``.
    Explained in notebooks/08_importance_criteria.ipynb.
    """
    grads = batch_gradients(model, data, batches=batches, batch_size=batch_size, seed=seed, loss_fn=loss_fn)
    return {name: torch.stack([g[name].abs() for g in grads]).mean(0) for name in grads[0]}


def model_criterion(score_model: Callable) -> ScoreFn:
    """Adapt ``score_model(model, data, *, seed, **options) -> {layer: scores}`` (``taylor_scores``...)
    to the registry's signature: the scores of the ``layers`` asked for."""
    def score(model: nn.Module, layers: dict, *, seed: int = 0, data=None, **options) -> dict:
        scores = score_model(model, data, seed=seed, **options)
        return {name: scores[name] for name in layers}
    return score


register_criterion("taylor", model_criterion(taylor_scores), needs_data=True)
register_criterion("obd", model_criterion(obd_scores), needs_data=True)
register_criterion("gradient", model_criterion(gradient_scores), needs_data=True)

DATA_CRITERIA = CriterionView("weight", needs_data=True)
"""The data-driven weight criteria (live view): ``saliency(model, name, data)`` computes them."""

ALL_CRITERIA = CriterionView("weight")
"""Every criterion that scores single weights (live view), data-free ones first."""


def saliency(model: nn.Module, criterion: str, data=None, *, seed: int = 0, **kwargs) -> dict[str, torch.Tensor]:
    """Scores of every prunable layer's weight under ``criterion``: ``{layer name: tensor}``.

    ``criterion`` is a registered weight criterion (``ALL_CRITERIA``): ``"magnitude"``,
    ``"random"`` (layer ``i`` seeded with ``seed + i``, as ``global_prune`` does), a data-driven
    ``"taylor"``, ``"obd"``, ``"gradient"``, which need ``data`` (labelled) and accept ``batches``,
    ``batch_size``, ``loss_fn`` — or one added with ``register_criterion``. Feed the result to
    ``global_prune(model, s, scores=...)``. Explained in notebooks/08_importance_criteria.ipynb.
    """
    layers = require_prunable(model, "score")
    chosen = get_criterion(criterion, "weight")
    seed = require_int("seed", seed, 0, 2**32 - 1)
    return chosen.score_weights(model, layers, seed=seed, data=data, **kwargs)


# ----------------------------------------------------------------------------- comparing criteria
def _pruned_flat(masks) -> torch.Tensor:
    if not isinstance(masks, dict) or not masks:
        raise TypeError(f"masks must be a non-empty dict {{layer name: 0/1 mask}}, got {type(masks).__name__}")
    return torch.cat([(m.detach() == 0).reshape(-1) for m in masks.values()])


def mask_jaccard(masks_a: dict, masks_b: dict) -> float:
    """Jaccard overlap ``|A ∩ B| / |A ∪ B|`` of the *pruned* sets of two ``{layer: mask}`` dicts.

    ``A`` and ``B`` are the positions where the masks are 0, over all layers (same names, same
    shapes). 1.0 means both criteria prune exactly the same weights; 1.0 too when neither prunes
    anything. Explained in notebooks/08_importance_criteria.ipynb.
    """
    if not isinstance(masks_a, dict) or not isinstance(masks_b, dict) or list(masks_a) != list(masks_b):
        raise ValueError("masks_a and masks_b must be dicts over the same layer names, in the same order")
    for name in masks_a:
        if masks_a[name].shape != masks_b[name].shape:
            raise ValueError(f"masks of layer {name!r} differ in shape: {tuple(masks_a[name].shape)} vs "
                             f"{tuple(masks_b[name].shape)}")
    a, b = _pruned_flat(masks_a), _pruned_flat(masks_b)
    union = int((a | b).sum())
    return 1.0 if union == 0 else int((a & b).sum()) / union


def _ranks(x: torch.Tensor) -> torch.Tensor:
    """Average ranks (ties share the mean rank) of a 1-D tensor, as float64."""
    order = torch.argsort(x, stable=True)
    sorted_x = x[order]
    ranks = torch.empty_like(x, dtype=torch.float64)
    ranks[order] = torch.arange(len(x), dtype=torch.float64)
    _, inverse, counts = torch.unique_consecutive(sorted_x, return_inverse=True, return_counts=True)
    ends = torch.cumsum(counts, 0).double()
    mean_rank = ends - (counts.double() + 1) / 2          # mean of the ranks start … end-1 of each tie group
    ranks[order] = mean_rank[inverse]
    return ranks


def rank_correlation(scores_a, scores_b) -> float:
    """Spearman rank correlation of two score sets (tensors, or ``{layer: tensor}`` dicts flattened).

    ``ρ = Pearson(rank(a), rank(b))`` with tied values sharing their mean rank; 1.0 means the two
    criteria order the weights identically (and so prune the same weights at every sparsity).
    Explained in notebooks/08_importance_criteria.ipynb.
    """
    flat = []
    for arg, s in (("scores_a", scores_a), ("scores_b", scores_b)):
        if isinstance(s, dict):
            s = torch.cat([t.detach().reshape(-1).double() for t in s.values()]) if s else None
        if not isinstance(s, torch.Tensor) or s.numel() < 2:
            raise TypeError(f"{arg} must be a tensor or a {{layer: tensor}} dict with ≥ 2 scores")
        flat.append(s.detach().reshape(-1).double())
    if flat[0].numel() != flat[1].numel():
        raise ValueError(f"scores_a and scores_b must hold as many scores, got {flat[0].numel()} and {flat[1].numel()}")
    ra, rb = (_ranks(f) - _ranks(f).mean() for f in flat)
    denominator = float(ra.norm() * rb.norm())
    return float((ra * rb).sum()) / denominator if denominator else 0.0
