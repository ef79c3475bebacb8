"""W8A8 linear layers on the compiled int8 kernels: int8 weights, activations quantized per token at run time.

``smoothquant.w8a8_model`` *simulates* W8A8 in float (fake quantization: the right numbers, no speed).
Here the integers are multiplied for real, by ``labkit.kernels.PackedLinear.gemm`` (uint8 × int8 → exact
int32, the AVX2 / AVX-512 VNNI / AMX kernels of chapter 4). Per layer, once: the weight ``W`` [N, K] is
quantized symmetrically per output channel, ``w_q = round(W / s_w)`` in ``[−127, 127]`` with
``s_w[n] = max_k |W[n, k]| / 127``, packed, and its row sums ``Σ_k w_q[n, k]`` kept. Per call, per token
(row ``m`` of x): ``[lo, hi] = [min(0, min_k x), max(0, max_k x)]``, ``s_x = (hi − lo)/255``,
``z_x = round(−lo/s_x)``, ``x_q = clamp(round(x/s_x) + z_x, 0, 255)`` (uint8); then

    y[m, n] = s_x[m] · s_w[n] · ( Σ_k x_q[m, k] w_q[n, k]  −  z_x[m] · Σ_k w_q[n, k] ) + b[n]

— the zero point of x enters once per output through the weight's row sums (the column-sum
correction), so the kernel multiplies plain uint8 by int8. The result equals the float product of the
dequantized operands, ``(x_q − z_x)·s_x`` times ``w_q·s_w``, up to float32 rounding of the rescale.
``to_int8_kernel_model(model)`` swaps every block linear of a ``TinyGPT`` for one.

Explained in notebooks/16_transformer_compression.ipynb
"""
from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from labkit.llm.model import TinyGPT, linear_layers

W_LEVELS, X_LEVELS = 127, 255


class Int8KernelLinear(nn.Module):
    """An ``nn.Linear`` run as W8A8 on ``labkit.kernels.PackedLinear`` (module docstring): x float32
    ``[..., in]`` → y float32 ``[..., out]``. Weights int8 per output channel (``weight_codes``,
    ``weight_scale``), activations uint8 per token, int32 accumulation."""

    def __init__(self, layer: nn.Linear):
        super().__init__()
        from labkit import kernels

        if not isinstance(layer, nn.Linear):
            raise TypeError(f"layer must be an nn.Linear, got {type(layer).__name__}")
        if layer.in_features > kernels.api.MAX_K:
            raise ValueError(f"in_features must be <= {kernels.api.MAX_K} (exact int32 sums), got {layer.in_features}")
        weight = layer.weight.detach().double()
        scale = weight.abs().amax(dim=1).clamp_min(1e-12) / W_LEVELS
        codes = torch.round(weight / scale[:, None]).clamp(-W_LEVELS, W_LEVELS).to(torch.int8)
        self.register_buffer("weight_codes", codes)
        self.register_buffer("weight_scale", scale.float())
        self.register_buffer("bias", None if layer.bias is None else layer.bias.detach().float().clone())
        self._packed = kernels.PackedLinear(codes.numpy())
        self._row_sums = codes.numpy().sum(axis=1, dtype=np.int32)
        self.in_features, self.out_features = layer.in_features, layer.out_features

    def __getstate__(self) -> dict:
        """Copies and pickles leave the packed kernel object behind; it is packed again from the codes."""
        return {**self.__dict__, "_packed": None}

    def __setstate__(self, state: dict) -> None:
        from labkit import kernels

        super().__setstate__(state)
        self._packed = kernels.PackedLinear(self._buffers["weight_codes"].numpy())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.in_features:
            raise ValueError(f"x has {x.shape[-1]} input features, the layer {self.in_features}")
        rows = x.detach().float().numpy().reshape(-1, self.in_features)
        lo = np.minimum(rows.min(axis=1), 0.0)
        hi = np.maximum(rows.max(axis=1), 0.0)
        x_scale = np.maximum(hi - lo, np.float32(1e-12)) / X_LEVELS
        x_zero = np.round(-lo / x_scale)
        codes = np.clip(np.round(rows / x_scale[:, None]) + x_zero[:, None], 0, X_LEVELS).astype(np.uint8)
        acc = self._packed.gemm(codes) - x_zero.astype(np.int32)[:, None] * self._row_sums
        y = acc * (x_scale[:, None] * self._buffers["weight_scale"].numpy())
        if self._buffers["bias"] is not None:
            y += self._buffers["bias"].numpy()
        return torch.from_numpy(y.astype(np.float32, copy=False)).reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, W8A8 per-token, int8 kernels"


def to_int8_kernel_model(model: TinyGPT) -> TinyGPT:
    """A copy of ``model`` whose block linears (``linear_layers``) are ``Int8KernelLinear``."""
    twin = copy.deepcopy(model)
    for name, layer in linear_layers(twin).items():
        parent, child = name.rsplit(".", 1)
        twin.get_submodule(parent).register_module(child, Int8KernelLinear(layer))
    return twin
