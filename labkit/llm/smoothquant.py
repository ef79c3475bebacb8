"""SmoothQuant (Xiao, Lin, Seznec, Wu, Demouth & Han, "SmoothQuant: Accurate and Efficient Post-Training
Quantization for Large Language Models", ICML 2023): move the difficulty of quantizing activations into
the weights, then run the linear layers in W8A8 (int8 weights × int8 activations).

A few input channels with large activations force a large per-tensor int8 step on every other channel.
Dividing channel ``j`` of the activation by ``s_j`` and multiplying column ``j`` of the weight by it is
exact in float (``X W ᵀ = (X diag(s)⁻¹)(W diag(s))ᵀ``), and with migration strength ``α``::

    s_j = max|X_j|^α / max|W_{:,j}|^(1−α)

the channel maxima of activation and weight meet at ``sqrt``-like middle ground (``α = 0.5``). The
division ``1/s`` is folded into the LayerNorm that feeds ``attn.qkv`` and ``mlp.fc1`` (its weight and
bias), so the smoothed float model costs nothing extra. ``W8A8Linear`` simulates the integer layer:
weights int8 per output channel, activations int8 with a dynamic per-tensor (or per-token) scale.

Explained in notebooks/16_transformer_compression.ipynb
"""
from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn import functional as F

from labkit.llm.model import TinyGPT
from labkit.quant.affine import QParams, dequantize, quantize, quantize_tensor, weight_qparams
from labkit.validate import require_choice, require_float

ACT_GRANULARITIES = ("tensor", "token")


def smoothing_scales(act_absmax: torch.Tensor, weight: torch.Tensor, alpha: float = 0.5) -> torch.Tensor:
    """``s = max|X_j|^α / max_i|W_ij|^(1−α)`` float32 ``[in]`` from activation maxima ``[in]`` and a weight
    ``[out, in]`` (stack the weights of every layer that reads the same input)."""
    alpha = require_float("alpha", alpha, 0.0, 1.0)
    if act_absmax.dim() != 1 or weight.dim() != 2 or weight.shape[1] != act_absmax.shape[0]:
        raise ValueError(f"act_absmax must be [in] and weight [out, in] with the same in, got "
                         f"{tuple(act_absmax.shape)} and {tuple(weight.shape)}")
    w_max = weight.detach().abs().amax(0).clamp(min=1e-5)
    return (act_absmax.clamp(min=1e-5).pow(alpha) / w_max.pow(1 - alpha)).float()


def fake_quant_int8(x: torch.Tensor, granularity: str = "tensor") -> torch.Tensor:
    """Symmetric int8 quantize-dequantize of ``x`` ``[..., in]``: one scale for the whole tensor, one per
    token (row of the flattened ``[n, in]``), or (``"channel"``) one per row of a weight ``[out, in]``."""
    flat = x.reshape(-1, x.shape[-1])
    gran = "tensor" if granularity == "tensor" else "channel"
    codes, qp = quantize_tensor(flat, 8, symmetric=True, signed=True, granularity=gran, axis=0)
    return dequantize(codes, qp).reshape(x.shape)


class W8A8Linear(nn.Module):
    """A linear layer computed as int8 weights (per output channel) × int8 activations (dynamic scale).

    ``forward(x)`` = ``F.linear(fake_quant_int8(x), Ŵ, b)``: the same numbers an int8 GEMM with an
    int32 accumulator and a float rescale produces (up to float32 summation order).
    """

    def __init__(self, linear: nn.Linear, act_granularity: str = "tensor"):
        super().__init__()
        qparams = weight_qparams(linear.weight, 8, per_channel=True)   # granularity="channel", axis=0
        codes = quantize(linear.weight.detach(), qparams)
        self._set(codes, qparams, act_granularity, None if linear.bias is None else linear.bias.detach().clone())

    def _set(self, codes, qparams, act_granularity, bias) -> None:
        self.act_granularity = require_choice("act_granularity", act_granularity, ACT_GRANULARITIES)
        self.qparams = qparams
        self.register_buffer("codes", codes)
        self.register_buffer("weight", dequantize(codes, qparams))
        self.register_buffer("bias", bias)

    @classmethod
    def from_storage(cls, stored: dict) -> "W8A8Linear":
        """The layer again from its ``storage()`` dict (bit-identical outputs)."""
        layer = cls.__new__(cls)
        nn.Module.__init__(layer)
        scale = stored["scale"]
        qparams = QParams(scale, torch.zeros(scale.shape, dtype=torch.int32), 8, True, True, 0)
        layer._set(stored["codes"], qparams, stored["act_granularity"], stored.get("bias"))
        return layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(fake_quant_int8(x, self.act_granularity), self.weight, self.bias)

    def storage(self) -> dict:
        """What an int8 deployment stores: int8 codes, float32 per-channel scales, the bias."""
        out = {"kind": "w8a8", "codes": self.codes, "scale": self.qparams.scale,
               "act_granularity": self.act_granularity}
        return out if self.bias is None else {**out, "bias": self.bias}


@torch.no_grad()
def smooth_model(model: TinyGPT, act_absmax: dict[str, torch.Tensor], alpha: float = 0.5) -> TinyGPT:
    """A float copy of ``model`` with SmoothQuant's scales folded into ``ln1 → attn.qkv`` and
    ``ln2 → mlp.fc1`` of every block; ``act_absmax`` maps those layers' names to ``channel_absmax``."""
    alpha = require_float("alpha", alpha, 0.0, 1.0)
    twin = copy.deepcopy(model)
    for i, block in enumerate(twin.blocks):
        for ln, name, linear in ((block.ln1, "attn.qkv", block.attn.qkv), (block.ln2, "mlp.fc1", block.mlp.fc1)):
            key = f"blocks.{i}.{name}"
            if key not in act_absmax:
                raise ValueError(f"act_absmax has no statistics for {key}: compute them with channel_absmax")
            s = smoothing_scales(act_absmax[key], linear.weight, alpha)
            ln.weight /= s
            ln.bias /= s
            linear.weight *= s
    return twin


def w8a8_model(model: TinyGPT, act_granularity: str = "tensor") -> TinyGPT:
    """A copy of ``model`` whose block linear layers are ``W8A8Linear`` (embeddings and head stay float)."""
    twin = copy.deepcopy(model)
    for block in twin.blocks:
        for parent, name in ((block.attn, "qkv"), (block.attn, "proj"), (block.mlp, "fc1"), (block.mlp, "fc2")):
            setattr(parent, name, W8A8Linear(getattr(parent, name), act_granularity))
    return twin
