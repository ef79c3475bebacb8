"""Checkers for notebooks/13_lowrank_lightweight.ipynb: the cost of a rank-r SVD factorisation of
LeNet-300-100's fc1 with its break-even rank, and the MACs of a depthwise-separable convolution
against a standard one.

Every expected value is computed here from the formulas (integer arithmetic), never with
``labkit.lowrank`` or ``labkit.measure`` and never from the learner's answer; the tests check that
these independent values agree with labkit. A wrong answer raises ``ExerciseError`` with a hint aimed
at the most likely mistake; a right one returns a ``✓`` line.
"""
from __future__ import annotations

from labkit.exercises import checker, expect_answered, expect_count, passed, whole_number

# Exercise 1: fc1 of LeNet-300-100, weight [m, n] = [300, 784] with a bias, factorised at rank 32.
SVD_SHAPE = (300, 784)
SVD_RANK = 32

# Exercise 2: a 3×3 convolution 32 → 64 channels, stride 1, padding 1, on a 14×14 feature map.
CONV_K, CONV_C_IN, CONV_C_OUT, CONV_HW = 3, 32, 64, 14


def svd_reference(shape=SVD_SHAPE, rank: int = SVD_RANK) -> tuple[int, int]:
    """``(params of the factorised layer with bias, largest rank that still saves weights)``:
    ``r·(m + n) + m`` and the largest integer ``r`` with ``r·(m + n) < m·n``."""
    m, n = shape
    return rank * (m + n) + m, (m * n - 1) // (m + n)


def separable_reference(k=CONV_K, c_in=CONV_C_IN, c_out=CONV_C_OUT, hw=CONV_HW) -> tuple[int, int]:
    """``(standard MACs, depthwise-separable MACs)`` of one example: ``H·W·k²·C_in·C_out`` and
    ``H·W·(k²·C_in + C_in·C_out)``."""
    return hw * hw * k * k * c_in * c_out, hw * hw * (k * k * c_in + c_in * c_out)


@checker
def check_svd_cost(factorised_params, break_even_rank) -> str:
    """Exercise: parameters (weights + bias) of fc1 ``[300, 784]`` factorised at rank 32 into
    ``Linear(784→32, no bias)`` + ``Linear(32→300)``, and the largest integer rank that still has
    fewer weights than the original ``300 × 784`` matrix."""
    expect_answered("factorised_params", factorised_params)
    expect_answered("break_even_rank", break_even_rank)
    (m, n), r = SVD_SHAPE, SVD_RANK
    expected, exp_break = svd_reference()
    hint = {
        r * (m + n): "add the bias of the second Linear: it keeps the original m = 300 biases.",
        r * (m + n) + m + r: "the first Linear has no bias (the original bias is added once, after the second).",
        r * (m + n) + n: "the bias has one entry per *output* (m = 300), not per input.",
        r * m * n: "the factors are [m, r] and [r, n]: r·(m + n) weights, not r·m·n.",
        m * n + m: "that is the original layer; the factorised one has r·(m + n) weights + m biases.",
        r * r + m: "each factor is a thin matrix: U_r√Σ is [m, r] and √ΣV_rᵀ is [r, n].",
    }.get(whole_number(factorised_params),
          "two Linears: 784 → 32 (no bias) and 32 → 300 (with the original 300 biases).")
    expect_count("factorised_params", factorised_params, expected, hint)
    got = whole_number(break_even_rank)
    hint = ("m·n/(m + n) ≈ 216.97 is not an integer rank; the largest integer below it is what is asked."
            if got is None and break_even_rank is not None else
            "at r = 217 the factorisation has 217·1084 = 235,228 > 235,200 weights: round down, not up."
            if got == exp_break + 1 else
            "rank min(m, n) = 300 is full rank: it reproduces the layer but costs far more."
            if got == min(m, n) else
            "solve r·(m + n) < m·n for r: r < m·n / (m + n) = 235,200 / 1,084.")
    expect_count("break_even_rank", break_even_rank, exp_break, hint)
    return passed(f"rank {r}: {r}·({m} + {n}) + {m} = {expected:,} parameters vs {m * n + m:,} "
                  f"({(m * n + m) / expected:.1f}× fewer); any rank ≤ {exp_break} saves weights.")


@checker
def check_separable_macs(standard_macs, separable_macs) -> str:
    """Exercise: MACs of one example through a 3×3 conv 32 → 64 (stride 1, padding 1) on a 14×14 map,
    as a standard convolution and as depthwise 3×3 + pointwise 1×1 (bias additions not counted)."""
    expect_answered("standard_macs", standard_macs)
    expect_answered("separable_macs", separable_macs)
    k, c_in, c_out, hw = CONV_K, CONV_C_IN, CONV_C_OUT, CONV_HW
    exp_std, exp_sep = separable_reference()
    hint = {
        k * k * c_in * c_out: "those are the weights; every one is used at each of the 14·14 output positions.",
        hw * k * k * c_in * c_out: "the map is 14 × 14: multiply by H·W = 196, not by 14.",
        (hw - 2) ** 2 * k * k * c_in * c_out: "with padding 1 and stride 1 the output stays 14 × 14.",
    }.get(whole_number(standard_macs), "H·W·k²·C_in·C_out: each of the 196·64 outputs sums 9·32 products.")
    expect_count("standard_macs", standard_macs, exp_std, hint)
    hint = {
        k * k * c_in + c_in * c_out: "those are the weights of the two layers; multiply by the 196 positions.",
        hw * hw * (k * k * c_in * c_in + c_in * c_out): "the depthwise conv filters each channel on its own: "
                                                      "k²·C_in per position, not k²·C_in·C_in.",
        hw * hw * (k * k * c_out + c_in * c_out): "the depthwise conv works on the C_in = 32 input channels.",
        hw * hw * k * k * c_in: "add the pointwise 1×1 conv: C_in·C_out per position.",
        hw * hw * c_in * c_out: "add the depthwise 3×3 conv: k²·C_in per position.",
    }.get(whole_number(separable_macs), "H·W·(k²·C_in + C_in·C_out): depthwise then pointwise.")
    expect_count("separable_macs", separable_macs, exp_sep, hint)
    return passed(f"standard {exp_std:,} MACs vs separable {exp_sep:,}: {exp_std / exp_sep:.1f}× fewer "
                  f"(ratio 1/C_out + 1/k² = {1 / c_out + 1 / k ** 2:.3f}).")
