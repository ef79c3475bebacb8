"""Checkers for notebooks/00_why_compress.ipynb: counting bytes and MACs by hand.

Each checker rebuilds what it needs from ``labkit.models`` and torch (never from the learner's
answer), raises ``ExerciseError`` with a hint on a wrong answer and returns a ``✓`` line otherwise.
"""
from __future__ import annotations

import torch

from labkit import models
from labkit.exercises import checker, expect_answered, expect_count, passed, whole_number

MNIST_SHAPE = (1, 28, 28)


def _lenet300_parameter_count() -> int:
    return sum(p.numel() for p in models.build("lenet300").parameters())


@checker
def check_fp32_bytes(answer) -> str:
    """Exercise: bytes that LeNet-300-100's parameters take in float32 (weights and biases).

    Expected: ``4 · Σ numel(p)`` over the parameters of a freshly built ``lenet300`` on 1×28×28.
    """
    expect_answered("fp32_bytes", answer)
    params = _lenet300_parameter_count()
    expected = 4 * params
    weights_only = 4 * sum(p.numel() for name, p in models.build("lenet300").named_parameters()
                           if name.endswith("weight"))
    hint = {params: "that is the number of parameters; each float32 takes 4 bytes.",
            8 * expected: "that is bits; a byte has 8 of them.",
            weights_only: "the biases are parameters too (300 + 100 + 10 of them).",
            expected // 2: "float32 is 4 bytes per value (2 would be float16)."}.get(
        whole_number(answer), "count the weights (in × out) and biases (out) of fc1 784→300, fc2 300→100, "
                               "fc3 100→10, then multiply by 4 bytes.")
    expect_count("fp32_bytes", answer, expected, hint)
    return passed(f"LeNet-300-100 has {params:,} parameters: {expected:,} bytes "
                  f"({expected / 2**20:.2f} MiB) in float32.")


@checker
def check_conv_macs(answer, layer: str = "conv2") -> str:
    """Exercise: multiply-accumulates of one LeNet-5 conv layer for one 1×28×28 image.

    Expected: run a fresh ``lenet5`` on zeros, capture ``layer``'s output ``Y`` with a hook; then
    ``MACs = Y.numel() · W[0].numel()`` (output elements × weights per output value).
    """
    expect_answered("conv_macs", answer)
    model = models.build("lenet5")
    conv = dict(model.named_children()).get(layer)
    if not isinstance(conv, torch.nn.Conv2d):
        convs = [name for name, m in model.named_children() if isinstance(m, torch.nn.Conv2d)]
        raise ValueError(f"layer must name a conv layer of LeNet-5, one of {convs}; got {layer!r}")
    shapes = {}
    handle = conv.register_forward_hook(
        lambda module, inputs, output: shapes.update(input=inputs[0].shape[1:], output=output.shape[1:]))
    try:
        with torch.no_grad():
            model(torch.zeros(1, *MNIST_SHAPE))
    finally:
        handle.remove()
    c_out, h_out, w_out = shapes["output"]
    c_in, h_in, w_in = shapes["input"]
    per_output = conv.weight[0].numel()  # C_in/groups · kh · kw
    expected = c_out * h_out * w_out * per_output
    kh, kw = conv.kernel_size
    hint = {c_out * h_in * w_in * per_output: f"use the output size {h_out}×{w_out}, not the input size {h_in}×{w_in}.",
            c_out * h_out * w_out * kh * kw: f"each output value sums over all {c_in} input channels too.",
            c_out * h_out * w_out: "that counts output values; each one needs C_in·kh·kw multiply-accumulates.",
            conv.weight.numel(): "that is the number of weights; each is reused at every output position.",
            2 * expected: "one MAC is one multiply *and* its add; do not count them twice."}.get(
        whole_number(answer), f"MACs = C_out · H_out · W_out · C_in · kh · kw; the layer maps {c_in}×{h_in}×{w_in} "
                               f"to {c_out}×{h_out}×{w_out} with {kh}×{kw} kernels.")
    expect_count("conv_macs", answer, expected, hint)
    return passed(f"LeNet-5 {layer}: {c_out}·{h_out}·{w_out} outputs × {c_in}·{kh}·{kw} = {expected:,} MACs per image.")


@checker
def check_int4_bytes(answer) -> str:
    """Exercise: bytes of LeNet-300-100 with int4 weights, fp32 biases and an fp32 scale and zero
    point per weight matrix (no file headers) — the payload of ``measure``'s ``int4`` format.

    Expected, over a freshly built ``lenet300``: ``Σ_weights (ceil(4·numel / 8) + 4 + 4)
    + Σ_biases 4·numel``.
    """
    expect_answered("int4_bytes", answer)
    named = list(models.build("lenet300").named_parameters())
    weights = [p.numel() for name, p in named if p.dim() >= 2]
    biases = [p.numel() for name, p in named if p.dim() < 2]
    codes = sum(-(-4 * n // 8) for n in weights)  # ceil(4n/8) without floats
    expected = codes + 8 * len(weights) + 4 * sum(biases)
    everything_int4 = -(-4 * (sum(weights) + sum(biases)) // 8)
    hint = {codes + 4 * sum(biases): f"each of the {len(weights)} weight matrices also stores its scale and "
                                     "zero point (4 bytes each).",
            codes + 8 * len(weights): f"the {sum(biases)} biases stay in float32 (4 bytes each).",
            everything_int4: "only the weight matrices become 4-bit; biases stay float32, and each matrix "
                             "keeps an fp32 scale and zero point.",
            sum(weights) + 8 * len(weights) + 4 * sum(biases): "that is one byte per weight (int8); 4-bit "
                                                                "codes pack two per byte.",
            8 * expected: "that is bits; a byte has 8 of them.",
            4 * (sum(weights) + sum(biases)): "that is the float32 size; 4-bit codes take 1/8 of it."}.get(
        whole_number(answer), f"weights: {' + '.join(f'{n:,}' for n in weights)} codes of 4 bits; "
                               f"biases: {sum(biases)} floats; plus 8 bytes of scale and zero point per weight matrix.")
    expect_count("int4_bytes", answer, expected, hint)
    fp32 = 4 * (sum(weights) + sum(biases))
    return passed(f"int4 LeNet-300-100: {expected:,} bytes of payload, {fp32 / expected:.2f}× smaller "
                  f"than float32's {fp32:,}.")
