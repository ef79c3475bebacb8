"""Weight-only quantization of a whole ``TinyGPT``: every block linear layer by RTN, GPTQ or AWQ
(GPTQ in column order or with act-order; AWQ's scale search alone or followed by its clip search).

``quantize_weights(model, method, bits, group_size, calibration)`` returns a copy whose block linear
layers are ``GroupQuantLinear`` (codes + group scales; computes with the dequantized weight). GPTQ and
AWQ are applied *sequentially*, layer by layer in forward order: the calibration inputs of a layer are
captured from the partly quantized model, so each layer corrects for the error of those before it
(GPTQ's practice). Embeddings, LayerNorms and the output head stay float32.

Explained in notebooks/16_transformer_compression.ipynb
"""
from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn import functional as F

from labkit.llm.activations import capture_inputs
from labkit.llm.awq import awq_quantize
from labkit.llm.gptq import gptq_quantize, hessian
from labkit.llm.model import TinyGPT, check_ids, linear_layers
from labkit.llm.rtn import QuantizedWeight, rtn_quantize
from labkit.measure import pack_bits, unpack_bits
from labkit.quant.affine import QParams
from labkit.validate import require_choice

METHODS = ("rtn", "gptq", "gptq-act", "awq", "awq-clip")


class GroupQuantLinear(nn.Module):
    """A linear layer holding a group-quantized weight (any of 2–8 bits) and computing ``x Ŵᵀ + b``."""

    def __init__(self, quantized: QuantizedWeight, bias: torch.Tensor | None):
        super().__init__()
        self.quantized = quantized
        self.register_buffer("weight", quantized.weight())
        self.register_buffer("bias", None if bias is None else bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)

    def storage(self) -> dict:
        """Bit-packed codes (``ceil(out·in·bits/8)`` bytes), float32 scales, uint8 zero points, AWQ's scale, bias,
        and ``format`` = int32 ``[bits, group_size, out, in]``."""
        q = self.quantized
        packed = torch.frombuffer(bytearray(pack_bits(q.codes.numpy(), q.bits)), dtype=torch.uint8)
        out = {"kind": "weight-only", "codes": packed, "scale": q.qparams.scale,
               "zero_point": q.qparams.zero_point.to(torch.uint8),
               "format": torch.tensor([q.bits, q.group_size, *q.codes.shape], dtype=torch.int32)}
        if q.input_scale is not None:
            out["input_scale"] = q.input_scale
        return out if self.bias is None else {**out, "bias": self.bias}


def quantize_weights(model: TinyGPT, method: str = "rtn", bits: int = 4, group_size: int | None = 64,
                     calibration: torch.Tensor | None = None) -> TinyGPT:
    """A copy of ``model`` with every block linear quantized by ``method``: ``"rtn"``, ``"gptq"``, ``"gptq-act"``
    (GPTQ with act-order), ``"awq"`` (AWQ's scale search only) or ``"awq-clip"`` (scales + clip search, the paper's).

    ``calibration``: int64 ids ``[B, T]`` (needed by GPTQ and AWQ; e.g. 32 random training windows).
    Explained in notebooks/16_transformer_compression.ipynb.
    """
    method = require_choice("method", method, METHODS)
    if method != "rtn":
        if calibration is None:
            raise ValueError(f"method={method!r} needs calibration ids [B, T] (int64): it quantizes from activations")
        check_ids(calibration, model.config)
    twin = copy.deepcopy(model)
    for name in linear_layers(twin):
        linear = twin.get_submodule(name)
        if method == "rtn":
            q = rtn_quantize(linear.weight, bits, group_size)
        else:
            x = capture_inputs(twin, calibration, [name])[name]
            q = (gptq_quantize(linear.weight, hessian(x), bits, group_size, act_order=method == "gptq-act")
                 if method.startswith("gptq") else awq_quantize(linear.weight, x, bits, group_size,
                                                                clip=method == "awq-clip").quantized)
        parent, child = name.rsplit(".", 1)
        twin.get_submodule(parent).register_module(child, GroupQuantLinear(q, linear.bias))
    return twin


def fp32_nbytes(model: nn.Module) -> int:
    """``4 ·`` the number of parameters: the float32 size of a model's weights."""
    return 4 * sum(p.numel() for p in model.parameters())


def from_storage(stored: dict) -> GroupQuantLinear:
    """Rebuild a ``GroupQuantLinear`` from its ``storage()`` dict (the inverse, bit-exact)."""
    bits, group_size, rows, cols = (int(v) for v in stored["format"])
    codes = torch.from_numpy(unpack_bits(stored["codes"].numpy().tobytes(), bits, rows * cols).astype("uint8"))
    qp = QParams(stored["scale"], stored["zero_point"].to(torch.int32), bits, False, False, 0, group_size)
    q = QuantizedWeight(codes.reshape(rows, cols), qp, stored.get("input_scale"))
    return GroupQuantLinear(q, stored.get("bias"))
