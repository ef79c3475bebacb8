"""Decoding speed: tokens per second of greedy decoding with a KV cache, several models timed together.

One token costs one forward pass over one position (``model.KVCache``): every block linear is then a
matrix-vector product, whose time is set by the bytes of weights it reads — the reason weight-only
4-bit quantization speeds up the decoding of large language models. ``decoding_speed(models)`` wraps
each model in ``GreedyDecoder`` (the prompt, then ``new_tokens`` steps) and times them in interleaved
rounds with ``measure.compare_latency``: per model the median tokens/s over the calls with p10-p90,
the speed-up over the first model per round (median and p10-p90), and ``linear_weight_bytes`` — the
bytes of the block linears' weights as that model stores them (float32, int8 codes + scales, packed
int4 + group scales and zero points; embeddings and head stay float32 in every model).
At the lab's size (d_model 128) the weights stay in the L2 cache and each token runs ~80 small torch
operations besides the 12 linears, so the speed of the linears moves tokens/s little (Amdahl):
``without_linears(model)`` — every block linear replaced by a stub returning zeros — times the rest,
the bound no linear kernel can beat. ``large_layer_speed()`` times one 4096 × 4096 layer at batch 1,
fp32 against ``Int4Linear`` on the compiled kernel: weights from memory, the regime of real LLMs.

Explained in notebooks/16_transformer_compression.ipynb
"""
from __future__ import annotations

from collections.abc import Mapping

import copy

import torch
from torch import nn

from labkit import kernels
from labkit.llm.int4 import Int4Linear
from labkit.llm.model import TinyGPT, generate, linear_layers
from labkit.llm.rtn import rtn_quantize
from labkit.measure import compare_latency
from labkit.validate import require_int


class GreedyDecoder(nn.Module):
    """``forward(prompt)`` → ``generate(model, prompt[0], new_tokens, use_cache=True)``: prompt int64
    ``[1, T0]``, with ``T0 + new_tokens <= context`` so that every step uses the KV cache."""

    def __init__(self, model: TinyGPT, new_tokens: int):
        super().__init__()
        if not isinstance(model, TinyGPT):
            raise TypeError(f"model must be a TinyGPT, got {type(model).__name__}")
        self.model = model
        self.new_tokens = require_int("new_tokens", new_tokens, 1, model.config.context - 1)

    def forward(self, prompt: torch.Tensor) -> torch.Tensor:
        if prompt.dim() != 2 or prompt.shape[0] != 1 or prompt.shape[1] + self.new_tokens > self.model.config.context:
            raise ValueError(f"prompt must be [1, T0] with T0 + new_tokens <= {self.model.config.context}, "
                             f"got {list(prompt.shape)}")
        return generate(self.model, prompt[0], self.new_tokens, use_cache=True)


def linear_weight_bytes(model: TinyGPT) -> int:
    """Bytes of every block linear's stored tensors (weights or codes, scales, zero points, biases)."""
    return sum(linear_bytes(layer) for layer in linear_layers(model).values())


def decoding_speed(models: Mapping, prompt: torch.Tensor, new_tokens: int = 63, *, rounds: int = 8,
                   repeats: int = 2, threads: int = 1) -> dict:
    """``{name: {"tokens_per_s", "p10", "p90", "speedup", "speedup_p10", "speedup_p90", "noisy",
    "weight_bytes"}}`` for greedy decoding of ``new_tokens`` after ``prompt`` (int64 ``[1, T0]``) by each
    ``TinyGPT`` in ``models`` (the first is the reference), torch and labkit.kernels on ``threads``
    threads. tokens/s percentiles come from the per-call times (p10 of tokens/s = p90 of time)."""
    if not isinstance(models, Mapping) or not models:
        raise TypeError("models must be a non-empty dict {name: TinyGPT}")
    threads = require_int("threads", threads, 1)
    decoders = {name: GreedyDecoder(model, new_tokens) for name, model in models.items()}
    before = kernels.get_num_threads()
    kernels.set_num_threads(threads)
    try:
        timing = compare_latency(decoders, prompt, rounds=rounds, repeats=repeats, warmup=1, threads=threads)
    finally:
        kernels.set_num_threads(before)
    out = {}
    for name, t in timing.items():
        rate = 1000.0 * new_tokens
        out[name] = {"tokens_per_s": rate / t["median_ms"], "p10": rate / t["p90_ms"], "p90": rate / t["p10_ms"],
                     "speedup": t["speedup"], "speedup_p10": t["speedup_p10"], "speedup_p90": t["speedup_p90"],
                     "noisy": t["noisy"], "weight_bytes": linear_weight_bytes(models[name])}
    return out


class FreeLinear(nn.Module):
    """Stands in for a block linear and returns zeros of its output shape: a timing device, not a layer."""

    def __init__(self, out_features: int):
        super().__init__()
        self.out_features = out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.new_zeros(*x.shape[:-1], self.out_features)


def without_linears(model: TinyGPT) -> TinyGPT:
    """A copy of ``model`` whose block linears cost (almost) nothing (``FreeLinear``): its tokens are
    meaningless, its decoding time is everything but the linears — Amdahl's bound for any linear kernel."""
    twin = copy.deepcopy(model)
    for name, layer in linear_layers(twin).items():
        parent, child = name.rsplit(".", 1)
        twin.get_submodule(parent).register_module(child, FreeLinear(layer.out_features))
    return twin


def large_layer_speed(size: int = 4096, group_size: int = 64, *, rounds: int = 5, repeats: int = 3,
                      seed: int = 0) -> dict:
    """One ``size × size`` layer at batch 1 (x ``[1, 1, size]``): ``nn.Linear`` in fp32 against ``Int4Linear``
    (RTN-4 of the same random weight, the compiled kernel where available), timed together
    (``measure.compare_latency``, 1 thread). Returns ``{"fp32_us", "int4_us", "speedup", "speedup_p10",
    "speedup_p90", "noisy", "fp32_bytes", "int4_bytes"}``."""
    size = require_int("size", size, 64, 16384)
    gen = torch.Generator().manual_seed(seed)
    quantized = rtn_quantize(torch.randn(size, size, generator=gen).mul_(0.02), 4, group_size)
    fp = nn.Linear(size, size)
    fp.weight = nn.Parameter(quantized.weight(), requires_grad=False)   # the same weights, dequantized
    layers = {"fp32": fp, "int4": Int4Linear(quantized, fp.bias.detach())}
    before = kernels.get_num_threads()
    kernels.set_num_threads(1)
    try:
        t = compare_latency(layers, torch.randn(1, 1, size, generator=gen), rounds=rounds, repeats=repeats,
                            threads=1)
    finally:
        kernels.set_num_threads(before)
    return {"fp32_us": 1000 * t["fp32"]["median_ms"], "int4_us": 1000 * t["int4"]["median_ms"],
            "speedup": t["int4"]["speedup"], "speedup_p10": t["int4"]["speedup_p10"],
            "speedup_p90": t["int4"]["speedup_p90"], "noisy": t["int4"]["noisy"],
            "fp32_bytes": linear_bytes(layers["fp32"]), "int4_bytes": linear_bytes(layers["int4"])}


def linear_bytes(layer: nn.Module) -> int:
    """Bytes of one layer's stored tensors."""
    return sum(t.numel() * t.element_size() for t in layer.state_dict().values())
