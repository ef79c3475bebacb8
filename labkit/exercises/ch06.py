"""Checkers for notebooks/06_mixed_precision_vector_quantization.ipynb: bytes, ratios and code lengths.

Each checker computes the expected answer from first principles (a freshly built model's layer
shapes, the product-quantization storage count, Huffman's merge procedure written out here with
``heapq``) — never from the learner's value nor from the labkit function the chapter teaches — and
raises ``ExerciseError`` with a hint on a wrong answer.
"""
from __future__ import annotations

import heapq
import math
from collections.abc import Mapping

from torch import nn

from labkit import models
from labkit.exercises import ExerciseError, checker, expect_answered, expect_close, expect_count, passed

# Exercise 1: the mixed allocation whose size the learner computes (LeNet-5, weights only).
ALLOCATION = {"conv1": 3, "conv2": 4, "fc1": 2, "fc2": 3, "fc3": 8}
# Exercise 2: product quantization of LeNet-300-100's fc1 viewed as [784, 300] (one row per input pixel).
PQ_ROWS, PQ_COLS, PQ_SUB_DIM, PQ_BITS = 784, 300, 4, 4
# Exercise 3: the distribution of cluster indices whose Huffman average length the learner computes.
DISTRIBUTION = {0: 0.4, 1: 0.2, 2: 0.2, 3: 0.1, 4: 0.1}


def _hint_for(answer, candidates, default: str) -> str:
    """The hint of the first ``(value, hint)`` candidate that ``answer`` equals (to 1e-9), else ``default``."""
    try:
        value = float(answer)
    except (TypeError, ValueError, OverflowError):  # not a number, or an int too large for a float
        return default
    return next((hint for wrong, hint in candidates if math.isclose(value, wrong, rel_tol=1e-9)), default)


def _lenet5_weight_counts() -> dict[str, int]:
    model = models.build("lenet5")
    return {name: m.weight.numel() for name, m in model.named_children() if isinstance(m, (nn.Conv2d, nn.Linear))}


@checker
def check_mixed_bytes(answer, allocation: Mapping[str, int] = ALLOCATION) -> str:
    """Exercise: bytes of LeNet-5's weight codes under a mixed allocation ``{layer: bits}``.

    Expected: ``Σ_l ceil(n_l · b_l / 8)`` with ``n_l`` the weight count of layer ``l`` of a freshly
    built ``lenet5`` (every layer packed on its own, so each rounds up to whole bytes).
    """
    expect_answered("mixed_bytes", answer)
    counts = _lenet5_weight_counts()
    if set(allocation) != set(counts):
        raise ValueError(f"allocation must give bits for every LeNet-5 layer {list(counts)}, got {list(allocation)}")
    expected = sum(-(-counts[n] * b // 8) for n, b in allocation.items())
    total_bits = sum(counts[n] * b for n, b in allocation.items())
    with_biases = expected + 4 * sum(m.bias.numel() for m in models.build("lenet5").modules()
                                     if isinstance(m, (nn.Conv2d, nn.Linear)))
    uneven = next(((n, b) for n, b in allocation.items() if counts[n] * b % 8), None)
    example = "" if uneven is None else (f" ({uneven[0]}'s {counts[uneven[0]]} weights at {uneven[1]} bits are "
                                         f"{counts[uneven[0]] * uneven[1] / 8:g} bytes → "
                                         f"{-(-counts[uneven[0]] * uneven[1] // 8)})")
    rounding = f"round up per layer: a layer of n weights at b bits needs ceil(n·b/8) whole bytes{example}."
    hint = _hint_for(answer, (
        (total_bits, "that is bits; divide each layer's bits by 8 (and round up) to get bytes."),
        (total_bits / 8, rounding),
        (total_bits // 8, rounding),
        (4 * sum(counts.values()), "that is float32; use each layer's own bit width."),
        (with_biases, "only the weight codes count here; biases and scales are stored separately."),
        (sum(counts.values()), "that is the number of weights, one byte each; use each layer's bit width."),
    ), "for each layer multiply its weight count (conv1 6·1·5·5, conv2 16·6·5·5, fc1 400·120, fc2 120·84, "
       "fc3 84·10) by its bits, divide by 8, round up, and add the layers.")
    expect_count("mixed_bytes", answer, expected, hint)
    return passed(f"{expected:,} bytes of weight codes ({4 * sum(counts.values()) / expected:.1f}× smaller than "
                  f"float32's {4 * sum(counts.values()):,}).")


@checker
def check_pq_ratio(answer, rows: int = PQ_ROWS, cols: int = PQ_COLS, sub_dim: int = PQ_SUB_DIM,
                   bits: int = PQ_BITS) -> str:
    """Exercise: compression ratio of product quantization against float32, codebooks included.

    Expected: ``m = cols / d`` sub-spaces, each with ``k = 2^b`` float32 codewords of ``d`` values and
    one ``b``-bit code per row: ``r = 32·rows·cols / (32·m·k·d + rows·m·b)``.
    """
    expect_answered("pq_ratio", answer)
    m, k = cols // sub_dim, 2 ** bits
    expected = 32 * rows * cols / (32 * m * k * sub_dim + rows * m * bits)
    no_codebook = 32 * rows * cols / (rows * m * bits)
    one_codebook = 32 * rows * cols / (32 * k * sub_dim + rows * m * bits)
    codes_per_column = 32 * rows * cols / (32 * m * k * sub_dim + rows * cols * bits)
    hint = _hint_for(answer, (
        (no_codebook, "the codebooks are stored too: m of them, k·d float32 values each."),
        (one_codebook, "every sub-space has its own codebook: m = cols/d of them."),
        (codes_per_column, "one code per *sub-vector* (d values), not per weight: rows·m codes."),
        (1 / expected, "that is the inverse: original size divided by compressed size."),
    ), "count bits before (32·rows·cols) and after: m codebooks of k·d float32 values, plus m codes of b bits "
       "per row.")
    expect_close("pq_ratio", answer, expected, rtol=1e-4, hint=hint)
    return passed(f"r = {expected:.2f}: {m} sub-spaces × {k} codewords × {sub_dim} floats + {rows}×{m} codes of "
                  f"{bits} bits ({(32 * m * k * sub_dim + rows * m * bits) / (rows * cols):.2f} bits per weight).")


def _huffman_average_length(probabilities: Mapping[int, float]) -> float:
    """Huffman's optimum written out: each merge of the two lightest groups adds their weight once
    to the average length (every symbol under the new node gets one bit longer)."""
    heap = [float(p) for p in probabilities.values()]
    heapq.heapify(heap)
    total = 0.0
    while len(heap) > 1:
        merged = heapq.heappop(heap) + heapq.heappop(heap)
        total += merged
        heapq.heappush(heap, merged)
    return total


@checker
def check_huffman_average(answer, distribution: Mapping[int, float] = DISTRIBUTION) -> str:
    """Exercise: average codeword length (bits per symbol) of a Huffman code for ``distribution``.

    Expected: the sum of the weights of all merged nodes in Huffman's procedure (equivalently
    ``Σ p_s · len_s`` for any Huffman code of the distribution — ties change the lengths, not the sum).
    """
    expect_answered("huffman_average", answer)
    total = sum(distribution.values())
    probabilities = {s: p / total for s, p in distribution.items()}
    expected = _huffman_average_length(probabilities)
    entropy = -sum(p * math.log2(p) for p in probabilities.values() if p > 0)
    fixed = math.ceil(math.log2(len(probabilities)))
    hint = ("merge the two least probable symbols, repeat; a symbol's code length is the number of merges "
            "above it; then average the lengths weighted by the probabilities.")
    try:
        value = float(answer)
        if math.isclose(value, entropy, rel_tol=1e-3):
            hint = "that is the entropy H, the lower bound; a real code uses whole bits per symbol."
        elif math.isclose(value, fixed, rel_tol=1e-9):
            hint = f"that is the fixed-length code (ceil(log2 {len(probabilities)}) bits); Huffman does better."
        elif value < entropy - 1e-9:
            hint = (f"no prefix code averages fewer than the entropy H = {entropy:.3f} bits; "
                    "check that the code lengths satisfy Kraft's inequality Σ 2^-len ≤ 1.")
    except (TypeError, ValueError, OverflowError):
        raise ExerciseError(f"`huffman_average` should be a number (bits per symbol), got {answer!r}.", hint) from None
    expect_close("huffman_average", answer, expected, rtol=1e-6, hint=hint)
    return passed(f"{expected:.2f} bits per symbol, against the entropy H = {entropy:.3f} bits and "
                  f"{fixed} bits for a fixed-length code.")
