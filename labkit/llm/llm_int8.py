"""LLM.int8() (Dettmers, Lewis, Belkada & Zettlemoyer, "LLM.int8(): 8-bit Matrix Multiplication for
Transformers at Scale", NeurIPS 2022): a mixed-precision decomposition of ``X Wᵀ``.

The input channels ``O`` whose calibration maximum ``max|X_j|`` reaches ``threshold`` (6.0 in the paper)
are *outlier features*; they are multiplied in floating point, everything else in int8 with
*vector-wise* scales (one per token row of ``X``, one per output row of ``W``)::

    X Wᵀ ≈ X_O W_Oᵀ  +  diag(c_X) · (X̄_int8 W̄_int8ᵀ) · diag(c_W)         (int32 accumulation)

so ``threshold = 0`` (every channel an outlier) is exactly the float layer and ``threshold = ∞`` is
plain vector-wise int8. The paper detects outliers in every forward pass; outlier dimensions are
systematic (the same channels in every layer and token), so here they are fixed from calibration
statistics and their weight columns stored in float32 beside the int8 rest.

Explained in notebooks/16_transformer_compression.ipynb
"""
from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn import functional as F

from labkit.llm.model import TinyGPT, linear_layers
from labkit.quant.affine import dequantize, quantize_tensor
from labkit.validate import require_float

THRESHOLD = 6.0


def _int8_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 codes per row of ``x`` ``[r, c]`` and the row scales ``[r]``."""
    codes, qp = quantize_tensor(x, 8, symmetric=True, signed=True, granularity="channel", axis=0)
    return codes, qp.scale


class Int8MixedLinear(nn.Module):
    """``nn.Linear`` computed by LLM.int8()'s decomposition; ``outliers`` bool ``[in]`` marks float channels."""

    def __init__(self, linear: nn.Linear, outliers: torch.Tensor):
        super().__init__()
        w = linear.weight.detach()
        if outliers.dtype != torch.bool or outliers.shape != (w.shape[1],):
            raise ValueError(f"outliers must be a bool mask [in] = [{w.shape[1]}], got {outliers.dtype} {tuple(outliers.shape)}")
        self.register_buffer("outliers", outliers.clone())
        self.register_buffer("w_outlier", w[:, outliers].clone())
        regular = w[:, ~outliers]
        codes, scale = _int8_rows(regular) if regular.shape[1] else (regular.to(torch.int8), torch.ones(w.shape[0]))
        self.register_buffer("w_codes", codes)
        self.register_buffer("w_scale", scale)
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1])
        y = F.linear(flat[:, self.outliers], self.w_outlier, self.bias)
        regular = flat[:, ~self.outliers]
        if regular.shape[1]:
            x_codes, x_scale = _int8_rows(regular)
            acc = x_codes.double() @ self.w_codes.double().T          # exact: |acc| < 2^53
            y = y + (acc * x_scale.double().unsqueeze(1) * self.w_scale.double().unsqueeze(0)).float()
        return y.reshape(*x.shape[:-1], y.shape[-1])

    def storage(self) -> dict:
        """int8 codes and scales of the regular columns, float32 outlier columns, the channel mask, the bias."""
        out = {"w_codes": self.w_codes, "w_scale": self.w_scale, "w_outlier": self.w_outlier,
               "outliers": self.outliers}
        return out if self.bias is None else {**out, "bias": self.bias}


def llm_int8_model(model: TinyGPT, act_absmax: dict[str, torch.Tensor], threshold: float = THRESHOLD) -> TinyGPT:
    """A copy of ``model`` whose block linears are ``Int8MixedLinear`` with outliers ``absmax ≥ threshold``."""
    threshold = require_float("threshold", threshold, 0.0, None)
    twin = copy.deepcopy(model)
    for name, linear in linear_layers(twin).items():
        if name not in act_absmax:
            raise ValueError(f"act_absmax has no statistics for {name}: compute them with channel_absmax")
        parent_name, child = name.rsplit(".", 1)
        twin.get_submodule(parent_name).register_module(child, Int8MixedLinear(linear, act_absmax[name] >= threshold))
    return twin
