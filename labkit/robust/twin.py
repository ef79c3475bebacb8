"""The fake-quantized twin of a quantized model: the same forward pass, a gradient that attacks can use.

A quantized layer computes ``y = fq_out(relu(W_q ∗ fq_in(x) + b))`` where ``fq`` rounds to the
activation grid. ``round`` has derivative 0 almost everywhere, so ``∂y/∂x = 0``: a gradient attack
on the quantized model sees nothing to climb (gradient masking). The *twin* replaces every rounding
of the activations by the same rounding with a straight-through gradient
(``labkit.quant.fake_quantize_ste``: identity inside the clipping range, 0 outside) — Athalye,
Carlini & Wagner's BPDA ("Obfuscated Gradients Give a False Sense of Security", ICML 2018) applied to
quantization. Forward values are bit-identical to the quantized model's, so an example that fools the
twin fools the model; the gradient is the one of the float network around the quantized point.
Explained in notebooks/15_robustness_faq_trends.ipynb.
"""
from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn import functional as F

from labkit.quant import fake_quantize_ste
from labkit.quant.modules import DynamicQuantLinear, QuantizedConv2d, QuantizedLayer
from labkit.validate import require_module


class StraightThroughQuantized(nn.Module):
    """A ``QuantizedLinear``/``QuantizedConv2d`` whose activation roundings pass the gradient straight through.

    Wraps ``layer`` (kept as ``self.layer``, its buffers shared): forward
    ``y = fq_out(relu(ŵ ∗ fq_in(x) + b))`` exactly as ``QuantizedLayer.forward`` but with
    ``fake_quantize_ste``, so ``x [N, *] → y`` float32 is identical and ``∂y/∂x`` is the clipped STE's.
    Explained in notebooks/15_robustness_faq_trends.ipynb.
    """

    def __init__(self, layer: QuantizedLayer):
        super().__init__()
        if not isinstance(layer, QuantizedLayer):
            raise TypeError(f"layer must be a QuantizedLinear or QuantizedConv2d, got {type(layer).__name__}")
        self.layer = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        layer = self.layer
        if layer.input_qparams is not None:
            x = fake_quantize_ste(x, layer.input_qparams)
        if isinstance(layer, QuantizedConv2d):
            y = F.conv2d(x, layer.weight, layer.bias, layer.stride, layer.padding, layer.dilation, layer.groups)
        else:
            y = F.linear(x, layer.weight, layer.bias)
        if layer.relu:
            y = F.relu(y)
        if layer.output_qparams is not None:
            y = fake_quantize_ste(y, layer.output_qparams)
        return y


def straight_through_twin(model: nn.Module) -> nn.Module:
    """A copy of ``model`` (eval mode) in which every ``QuantizedLinear``/``QuantizedConv2d`` is wrapped in
    ``StraightThroughQuantized``: same outputs for every input, usable gradients.

    ``model`` is a static-PTQ or QAT-converted model (``quant.quantize_static``, ``quant.convert``).
    ``TypeError`` for a ``DynamicQuantLinear`` (its activation range is measured on each batch, so the
    twin would depend on the batch: attack the float model and transfer) and for a model without any
    quantized layer. Explained in notebooks/15_robustness_faq_trends.ipynb.
    """
    require_module("model", model, dtypes=(torch.float32,))
    dynamic = [name for name, m in model.named_modules() if isinstance(m, DynamicQuantLinear)]
    if dynamic:
        raise TypeError(f"model layer {dynamic[0]!r} is a DynamicQuantLinear, whose activation range depends on "
                        f"the batch; attack the float model and score the examples on the quantized one")
    if not any(isinstance(m, QuantizedLayer) for m in model.modules()):
        raise TypeError("model holds no QuantizedLinear/QuantizedConv2d: attack it directly (robust.pgd)")
    twin = copy.deepcopy(model).eval()
    _wrap(twin)
    return twin


def _wrap(parent: nn.Module) -> None:
    for name, child in parent.named_children():
        if isinstance(child, QuantizedLayer):
            setattr(parent, name, StraightThroughQuantized(child))
        else:
            _wrap(child)
