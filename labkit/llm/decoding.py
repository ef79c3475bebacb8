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
operations besides the 12 linears, so the speed of the linears moves tokens/s little (Amdahl).

Explained in notebooks/16_transformer_compression.ipynb
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from labkit import kernels
from labkit.llm.model import TinyGPT, generate, linear_layers
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
    return sum(t.numel() * t.element_size() for layer in linear_layers(model).values()
               for t in layer.state_dict().values())


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
