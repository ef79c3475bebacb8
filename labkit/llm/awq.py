"""AWQ (Lin, Tang, Tang, Yang, Chen, Wang, Xiao, Dang, Gan & Han, "AWQ: Activation-aware Weight
Quantization for On-Device LLM Compression and Acceleration", MLSys 2024): protect the weights that
meet large activations by scaling their input channels up before rounding.

Scaling input channel ``j`` of ``W`` by ``s_j`` and the input by ``1/s_j`` changes nothing in float
(``W x = (W·diag(s)) (diag(s)⁻¹ x)``), but the rounding error of that column, relative to its size,
shrinks by about ``s_j`` (the group's step is set by its largest weight, which rarely is column ``j``).
AWQ searches one exponent ``α ∈ [0, 1]`` per layer on calibration inputs ``X``::

    s = mean_tokens(|X|)^α,   s ← s / sqrt(max(s)·min(s)),   α* = argmin_α ‖X Wᵀ − (X/s)(Q(W·diag(s)))ᵀ‖²

``α = 0`` is round-to-nearest, so the search can only match or beat RTN on its calibration data. In a
deployed model ``1/s`` is folded into the previous operator (LayerNorm, or the value projection);
here the layer computes with ``Q(W·diag(s))·diag(s)⁻¹`` (``QuantizedWeight.weight()``), which is the same.

AWQ's second step (``clip=True``, the paper's method and its reference implementation ``auto_clip``): after
scaling, each group's range ``[−m, m]`` (``m`` = the group's largest ``|w|``) is shrunk to ``r·m`` with ``r``
searched on ``1, 0.975, …, 0.5``, keeping for every (output row, group) the ``r`` whose *partial output*
``X_g ŵ_gᵀ`` (the group's contribution to the output, on calibration tokens) is closest to the float one::

    r* = argmin_r mean_tokens (X_g w_gᵀ − X_g Q(clamp(w_g, −r·m, r·m))ᵀ)²

Clipping trades a larger error on the few largest weights for a finer step on all the others.

Explained in notebooks/16_transformer_compression.ipynb
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from labkit.llm.rtn import QuantizedWeight, check_weight_args, rtn_quantize
from labkit.validate import require_float, require_float_tensor, require_int


@dataclass
class AWQResult:
    """The chosen exponent ``alpha``, the quantized weight, the output error for each tried ``alpha`` (before
    clipping) and, with ``clip=True``, the chosen clip ratio of every (row, group) float32 ``[out, groups]``."""

    alpha: float
    quantized: QuantizedWeight
    alphas: list[float]
    errors: list[float]
    clip_ratios: torch.Tensor | None = None


def activation_scales(inputs: torch.Tensor, alpha: float) -> torch.Tensor:
    """``s = mean|X|^α`` per input channel, normalised so ``max(s)·min(s) = 1``; float32 ``[in]``."""
    s = inputs.abs().mean(0).clamp(min=1e-4).pow(alpha)
    return (s / torch.sqrt(s.max() * s.min())).float()


def clip_search(weight: torch.Tensor, inputs: torch.Tensor, bits: int, group_size: int, grid: int = 20,
                max_shrink: float = 0.5, max_tokens: int = 512) -> torch.Tensor:
    """AWQ's clip ratio ``r`` float32 ``[out, in / group_size]`` of every (row, group) of ``weight`` float
    ``[out, in]``: the ``r ∈ {1 − k·max_shrink/grid}`` whose quantized group, clamped to ``±r·max|w_g|``, gives the
    partial output closest (mean squared, over at most ``max_tokens`` of ``inputs`` ``[n, in]``) to the float one."""
    w, bits, group_size = check_weight_args(weight, bits, group_size)
    grid = require_int("grid", grid, 1, 1000)
    max_shrink = require_float("max_shrink", max_shrink, 0.0, 1.0, high_open=True)
    x = inputs.float()[:: max(1, inputs.shape[0] // require_int("max_tokens", max_tokens, 1, None))]
    out, groups = w.shape[0], w.shape[1] // group_size
    xg = x.view(x.shape[0], groups, group_size)
    wg = w.view(out, groups, group_size)
    reference = torch.einsum("ngk,ogk->nog", xg, wg)
    peak = wg.abs().amax(-1, keepdim=True)
    best_err = torch.full((out, groups), float("inf"))
    best_ratio = torch.ones(out, groups)
    for k in range(grid):
        ratio = 1 - k * max_shrink / grid
        clipped = torch.maximum(torch.minimum(wg, ratio * peak), -ratio * peak).reshape(out, -1)
        q = rtn_quantize(clipped, bits, group_size).weight().view(out, groups, group_size)
        err = ((torch.einsum("ngk,ogk->nog", xg, q) - reference) ** 2).mean(0)
        better = err < best_err
        best_err[better], best_ratio[better] = err[better], ratio
    return best_ratio


def clip_weight(weight: torch.Tensor, ratios: torch.Tensor, group_size: int) -> torch.Tensor:
    """``weight`` ``[out, in]`` with every group clamped to ``±ratio·max|w_g|`` (``ratios`` ``[out, groups]``)."""
    wg = weight.float().view(weight.shape[0], -1, group_size)
    bound = ratios.unsqueeze(-1) * wg.abs().amax(-1, keepdim=True)
    return torch.maximum(torch.minimum(wg, bound), -bound).reshape(weight.shape)


def awq_quantize(weight: torch.Tensor, inputs: torch.Tensor, bits: int = 4, group_size: int | None = 64,
                 grid: int = 20, clip: bool = False) -> AWQResult:
    """Search ``α`` on ``grid`` points ``0, 1/grid, …, (grid−1)/grid`` for ``weight`` float ``[out, in]``
    and calibration ``inputs`` ``[n, in]``; returns the best scaling and its quantized weight. With
    ``clip=True`` the scaled weight's groups are then clipped by ``clip_search`` (on the inputs ``X/s`` the
    scaled weight meets) before rounding: the paper's full method.
    Explained in notebooks/16_transformer_compression.ipynb.
    """
    w, bits, group_size = check_weight_args(weight, bits, group_size)
    inputs = require_float_tensor("inputs", inputs, allow_empty=False)
    if inputs.dim() != 2 or inputs.shape[1] != w.shape[1]:
        raise ValueError(f"inputs must be [n, in] with in = {w.shape[1]}, got shape {tuple(inputs.shape)}")
    grid = require_int("grid", grid, 1, 1000)
    if not isinstance(clip, bool):
        raise TypeError(f"clip must be True or False, got {clip!r}")
    x = inputs.float()
    reference = x @ w.T
    alphas, errors, best = [], [], None
    for k in range(grid):
        alpha = k / grid
        s = activation_scales(x, alpha)
        q = rtn_quantize(w * s, bits, group_size)
        q = QuantizedWeight(q.codes, q.qparams, s)
        err = float(((x @ q.weight().T - reference) ** 2).mean())
        alphas.append(alpha), errors.append(err)
        if best is None or err < best[0]:
            best = (err, alpha, q)
    if not clip:
        return AWQResult(best[1], best[2], alphas, errors)
    s = best[2].input_scale
    ratios = clip_search(w * s, x / s, bits, group_size)
    q = rtn_quantize(clip_weight(w * s, ratios, group_size), bits, group_size)
    return AWQResult(best[1], QuantizedWeight(q.codes, q.qparams, s), alphas, errors, ratios)
