"""Group-wise weight quantization of a linear layer, and its simplest method: round-to-nearest (RTN).

A weight ``W`` float32 ``[out, in]`` is cut, row by row, into groups of ``group_size`` consecutive input
columns; each group gets its own asymmetric ``bits``-bit grid (``labkit.quant.affine``, unsigned codes
``0 … 2^b − 1``, one float32 scale ``s`` and one integer zero point ``z`` per group)::

    q = clamp(round(w / s) + z, 0, 2^b − 1),        ŵ = (q − z) · s

RTN picks each weight's nearest level independently; GPTQ and AWQ (``gptq.py``, ``awq.py``) keep the
same grid and storage but choose codes, or rescale columns, so that the layer's *output* changes less.
``QuantizedWeight`` is what every weight-only method returns: codes, parameters, and the float
weight the quantized model computes with (for AWQ the codes belong to ``W·diag(s)``, see ``awq.py``).

Explained in notebooks/16_transformer_compression.ipynb
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from labkit.quant.affine import QParams, dequantize, quantize_tensor
from labkit.validate import require_float_tensor, require_int

MIN_BITS, MAX_BITS = 2, 8


@dataclass
class QuantizedWeight:
    """A group-quantized ``[out, in]`` weight.

    ``codes`` uint8 ``[out, in]`` in ``[0, 2^bits − 1]``; ``qparams.scale`` float32 / ``.zero_point``
    int32 ``[out, in / group_size]``; ``input_scale`` float32 ``[in]`` or ``None`` (AWQ's per-channel
    scale ``s``: the codes encode ``W·diag(s)``, and the layer computes with ``dequantize / s``).
    """

    codes: torch.Tensor
    qparams: QParams
    input_scale: torch.Tensor | None = None

    @property
    def bits(self) -> int:
        return self.qparams.bits

    @property
    def group_size(self) -> int:
        return self.qparams.group_size

    def weight(self) -> torch.Tensor:
        """The float32 weight ``[out, in]`` the quantized layer computes with: ``(q − z)·s`` (÷ AWQ's ``s``)."""
        w = dequantize(self.codes, self.qparams)
        return w if self.input_scale is None else w / self.input_scale

    def nbytes(self) -> int:
        """Storage: ``ceil(out·in·bits / 8)`` bytes of packed codes, a float32 scale and a uint8 zero point
        per group, and 4 bytes per AWQ input scale."""
        groups = self.qparams.scale.numel()
        extra = 0 if self.input_scale is None else 4 * self.input_scale.numel()
        return math.ceil(self.codes.numel() * self.bits / 8) + 5 * groups + extra


def check_weight_args(weight, bits, group_size) -> tuple[torch.Tensor, int, int]:
    """Validate a ``[out, in]`` float weight, ``bits`` in [2, 8] and a ``group_size`` that divides ``in``
    (``None`` = one group per row). Returns ``(weight float32, bits, group_size)``."""
    weight = require_float_tensor("weight", weight, allow_empty=False)
    if weight.dim() != 2:
        raise ValueError(f"weight must be a 2-D [out, in] tensor, got shape {tuple(weight.shape)}")
    bits = require_int("bits", bits, MIN_BITS, MAX_BITS)
    in_features = weight.shape[1]
    if group_size is None:
        group_size = in_features
    group_size = require_int("group_size", group_size, 1, in_features)
    if in_features % group_size:
        raise ValueError(f"group_size must divide the input width {in_features}, got {group_size}")
    return weight.detach().float(), bits, group_size


def rtn_quantize(weight: torch.Tensor, bits: int = 4, group_size: int | None = 64) -> QuantizedWeight:
    """Round every weight to the nearest level of its group's asymmetric ``bits``-bit grid (min/max range).

    ``weight`` float ``[out, in]``; ``group_size`` must divide ``in`` (``None``: per output channel).
    Explained in notebooks/16_transformer_compression.ipynb.
    """
    weight, bits, group_size = check_weight_args(weight, bits, group_size)
    codes, qp = quantize_tensor(weight, bits, symmetric=False, signed=False, granularity="group",
                                axis=0, group_size=group_size)
    return QuantizedWeight(codes, qp)
