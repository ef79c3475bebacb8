"""LLM.int8() (Dettmers, Lewis, Belkada & Zettlemoyer, "LLM.int8(): 8-bit Matrix Multiplication for
Transformers at Scale", NeurIPS 2022): a mixed-precision decomposition of ``X Wᵀ``.

The weight is stored in int8 with *vector-wise* scales (one per output row). In **every forward pass**
the input columns ``O`` in which some value reaches ``|X_tj| ≥ threshold`` (6.0 in the paper) are
*outlier features* of this batch; they are multiplied in floating point, everything else in int8 with
one scale per token row of ``X``::

    X Wᵀ ≈ X_O Ŵ_Oᵀ  +  diag(c_X) · (X̄_int8 W̄_int8ᵀ) · diag(c_W)         (int32 accumulation)

``Ŵ = diag(c_W)·W̄_int8`` is the dequantized int8 weight: the model stores int8 weights only, and the
outlier columns are recovered from them (as bitsandbytes' ``Linear8bitLt`` does). So ``threshold = 0``
(every column an outlier) is the float input times the int8 weight (W8A16) and a threshold above every
activation is plain vector-wise W8A8. Nothing is calibrated: a channel that is an outlier for one input and not for
another is treated as such each time (``last_outliers`` holds the mask of the latest call).

Explained in notebooks/16_transformer_compression.ipynb
"""
from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn import functional as F

from labkit.llm.model import TinyGPT, linear_layers
from labkit.quant.affine import quantize_tensor
from labkit.validate import require_float

THRESHOLD = 6.0


def int8_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 codes per row of ``x`` float ``[r, c]`` and the row scales float32 ``[r]``."""
    codes, qp = quantize_tensor(x, 8, symmetric=True, signed=True, granularity="channel", axis=0)
    return codes, qp.scale


class Int8MixedLinear(nn.Module):
    """``nn.Linear`` computed by LLM.int8()'s decomposition with outliers found per forward pass.

    ``Int8MixedLinear(linear, threshold=6.0)``; buffers ``w_codes`` int8 ``[out, in]``, ``w_scale``
    float32 ``[out]``, ``threshold`` (a 0-d float32 tensor, so that it is saved with the model), ``bias``.
    """

    def __init__(self, linear: nn.Linear, threshold: float = THRESHOLD):
        super().__init__()
        codes, scale = int8_rows(linear.weight.detach())
        self._set(codes, scale, threshold, None if linear.bias is None else linear.bias.detach().clone())

    def _set(self, codes, scale, threshold, bias) -> None:
        threshold = require_float("threshold", float(threshold), 0.0, None)
        self.register_buffer("w_codes", codes)
        self.register_buffer("w_scale", scale)
        self.register_buffer("threshold", torch.tensor(threshold, dtype=torch.float32))
        self.register_buffer("bias", bias)
        self.last_outliers: torch.Tensor | None = None

    @classmethod
    def from_storage(cls, stored: dict) -> "Int8MixedLinear":
        """The layer again from its ``storage()`` dict (bit-identical outputs)."""
        layer = cls.__new__(cls)
        nn.Module.__init__(layer)
        layer._set(stored["w_codes"], stored["w_scale"], float(stored["threshold"]), stored.get("bias"))
        return layer

    def weight(self) -> torch.Tensor:
        """The dequantized int8 weight ``diag(c_W)·W̄_int8`` float32 ``[out, in]``."""
        return self.w_codes.float() * self.w_scale.unsqueeze(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1])
        outliers = (flat.abs().amax(0) >= self.threshold) if flat.shape[0] else \
            torch.zeros(flat.shape[1], dtype=torch.bool)
        self.last_outliers = outliers
        y = F.linear(flat[:, outliers], self.weight()[:, outliers], self.bias)
        if not bool(outliers.all()):
            x_codes, x_scale = int8_rows(flat[:, ~outliers])
            acc = x_codes.double() @ self.w_codes[:, ~outliers].double().T          # exact: |acc| < 2^53
            y = y + (acc * x_scale.double().unsqueeze(1) * self.w_scale.double().unsqueeze(0)).float()
        return y.reshape(*x.shape[:-1], y.shape[-1])

    def storage(self) -> dict:
        """What an LLM.int8() deployment stores: int8 codes, row scales, the threshold, the bias."""
        out = {"kind": "llm.int8", "w_codes": self.w_codes, "w_scale": self.w_scale, "threshold": self.threshold}
        return out if self.bias is None else {**out, "bias": self.bias}


def llm_int8_model(model: TinyGPT, threshold: float = THRESHOLD) -> TinyGPT:
    """A copy of ``model`` whose block linears are ``Int8MixedLinear`` (outliers: ``|x| ≥ threshold``)."""
    threshold = require_float("threshold", threshold, 0.0, None)
    twin = copy.deepcopy(model)
    for name, linear in linear_layers(twin).items():
        parent_name, child = name.rsplit(".", 1)
        twin.get_submodule(parent_name).register_module(child, Int8MixedLinear(linear, threshold))
    return twin
