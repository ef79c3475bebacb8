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
Not implemented here: AWQ's second step, the per-group weight-clipping search.

Explained in notebooks/16_transformer_compression.ipynb
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from labkit.llm.rtn import QuantizedWeight, check_weight_args, rtn_quantize
from labkit.validate import require_float_tensor, require_int


@dataclass
class AWQResult:
    """The chosen exponent ``alpha``, the quantized weight, and the output error for each tried ``alpha``."""

    alpha: float
    quantized: QuantizedWeight
    alphas: list[float]
    errors: list[float]


def activation_scales(inputs: torch.Tensor, alpha: float) -> torch.Tensor:
    """``s = mean|X|^α`` per input channel, normalised so ``max(s)·min(s) = 1``; float32 ``[in]``."""
    s = inputs.abs().mean(0).clamp(min=1e-4).pow(alpha)
    return (s / torch.sqrt(s.max() * s.min())).float()


def awq_quantize(weight: torch.Tensor, inputs: torch.Tensor, bits: int = 4, group_size: int | None = 64,
                 grid: int = 20) -> AWQResult:
    """Search ``α`` on ``grid`` points ``0, 1/grid, …, (grid−1)/grid`` for ``weight`` float ``[out, in]``
    and calibration ``inputs`` ``[n, in]``; returns the best scaling and its quantized weight.
    Explained in notebooks/16_transformer_compression.ipynb.
    """
    w, bits, group_size = check_weight_args(weight, bits, group_size)
    inputs = require_float_tensor("inputs", inputs, allow_empty=False)
    if inputs.dim() != 2 or inputs.shape[1] != w.shape[1]:
        raise ValueError(f"inputs must be [n, in] with in = {w.shape[1]}, got shape {tuple(inputs.shape)}")
    grid = require_int("grid", grid, 1, 1000)
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
    return AWQResult(best[1], best[2], alphas, errors)
