"""The chapter's experiment in one place: compress the shipped model by each method and measure it.

``compress(model, method, ...)`` returns the compressed model for ``METHODS``: ``"fp32"``, ``"rtn"``,
``"gptq"``, ``"gptq-act"``, ``"awq"``, ``"awq-clip"`` (weight-only, ``bits``/``group_size``), ``"w8a8"``
(naive W8A8), ``"smoothquant"``
(W8A8 after migration with ``alpha``) and ``"llm.int8"`` (outlier decomposition at ``threshold``).
Calibration ids are random training windows drawn with ``seed`` (``calibration_ids``); evaluation uses
non-overlapping held-out windows (``held_out_windows``). ``measure(model, windows, reference_nll)``
returns perplexity with its window interval, the paired ratio to a reference and bytes on disk.
``weight_only_point(model, bits, group_size, windows, prompt)`` is one point of the bits × group-size
grid (RTN): perplexity, bytes on disk and a greedy sample of generated text (the chapter's widget).

Explained in notebooks/16_transformer_compression.ipynb
"""
from __future__ import annotations

import torch

from labkit.llm.activations import capture_inputs, channel_absmax
from labkit.llm.corpus import random_windows, split_ids, vocab
from labkit.llm.evaluate import eval_windows, perplexity, perplexity_ratio, window_nll
from labkit.llm.llm_int8 import THRESHOLD, llm_int8_model
from labkit.llm.model import TinyGPT, generate
from labkit.llm.smoothquant import smooth_model, w8a8_model
from labkit.llm.storage import nbytes_on_disk
from labkit.llm.weight_only import METHODS as WEIGHT_ONLY, quantize_weights
from labkit.validate import require_choice, require_int

METHODS = ("fp32", "rtn", "gptq", "gptq-act", "awq", "awq-clip", "w8a8", "smoothquant", "llm.int8")


def calibration_ids(seed: int = 0, windows: int = 32, context: int = 64) -> torch.Tensor:
    """``windows`` random training windows int64 ``[windows, context]`` drawn with ``seed``."""
    seed = require_int("seed", seed, 0, None)
    gen = torch.Generator().manual_seed(seed)
    return random_windows(split_ids()[0], windows, context - 1, gen)


def held_out_windows(context: int = 64, max_windows: int | None = None) -> torch.Tensor:
    """Non-overlapping held-out windows ``[W, context + 1]`` (all 726 of them by default, for T = 64)."""
    return eval_windows(split_ids()[1], context, max_windows)


def activation_absmax(model: TinyGPT, calibration: torch.Tensor) -> dict[str, torch.Tensor]:
    """``channel_absmax`` of every block linear's input on ``calibration``."""
    return {k: channel_absmax(v) for k, v in capture_inputs(model, calibration).items()}


def compress(model: TinyGPT, method: str, bits: int = 4, group_size: int | None = 64, *, seed: int = 0,
             alpha: float = 0.5, threshold: float = THRESHOLD, calibration: torch.Tensor | None = None) -> TinyGPT:
    """``model`` compressed by ``method`` (see the module docstring); ``calibration`` defaults to
    ``calibration_ids(seed)``."""
    method = require_choice("method", method, METHODS)
    if method == "fp32":
        return model
    if calibration is None and method not in ("rtn", "w8a8", "llm.int8"):
        calibration = calibration_ids(seed, context=model.config.context)
    if method in WEIGHT_ONLY:
        return quantize_weights(model, method, bits, group_size, calibration)
    if method == "w8a8":
        return w8a8_model(model)
    if method == "llm.int8":
        return llm_int8_model(model, threshold)            # outliers found in every forward pass: no calibration
    return w8a8_model(smooth_model(model, activation_absmax(model, calibration), alpha))


def measure(model: TinyGPT, windows: torch.Tensor, reference_nll: torch.Tensor | None = None) -> dict:
    """``{"nll", "ppl", "ratio", "bytes"}``: window NLLs, perplexity with its interval, the paired
    ratio to ``reference_nll`` (same windows; ``None`` without one) and bytes on disk."""
    nll = window_nll(model, windows)
    ratio = None if reference_nll is None else perplexity_ratio(reference_nll, nll)
    return {"nll": nll, "ppl": perplexity(nll), "ratio": ratio, "bytes": nbytes_on_disk(model)}


def weight_only_point(model: TinyGPT, bits: int, group_size: int, windows: torch.Tensor, prompt: str,
                      new_tokens: int = 60, reference_nll: torch.Tensor | None = None) -> dict:
    """``measure`` of ``model`` with every block linear round-to-nearest at ``bits``/``group_size``, plus
    ``"sample"``: the greedy continuation (``new_tokens`` characters) of ``prompt`` (a str) by that model."""
    compressed = compress(model, "rtn", bits, group_size)
    return {**measure(compressed, windows, reference_nll), "sample": generate_text(compressed, prompt, new_tokens)}


def generate_text(model: TinyGPT, prompt: str, new_tokens: int = 60) -> str:
    """The greedy continuation of ``prompt`` (a str of corpus characters): ``new_tokens`` characters."""
    if not isinstance(prompt, str) or not prompt:
        raise ValueError(f"prompt must be a non-empty str, got {prompt!r}")
    return vocab().decode(generate(model, vocab().encode(prompt), new_tokens)[len(prompt):])
