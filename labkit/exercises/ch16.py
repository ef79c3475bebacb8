"""Checkers for notebooks/16_transformer_compression.ipynb: packing int4 codes by hand, SmoothQuant's
migration scales, and one GPTQ step on a two-column weight.

Every expected value is computed here from first principles (numpy and integer arithmetic), never with
``labkit.llm`` and never from the learner's answer; the tests check that these independent values agree
with labkit. A wrong answer raises ``ExerciseError`` with a hint aimed at the most likely mistake.
"""
from __future__ import annotations

import numpy as np

from labkit.exercises import checker, expect_close_or_known_mistake, float_array, passed

# Exercise 1: one row of 4-bit codes, packed two per byte (low nibble = even column).
CODES = [3, 12, 0, 15, 7, 8]

# Exercise 2: activation and weight maxima of three input channels, migration strength alpha.
ACT_ABSMAX = [16.0, 1.0, 0.25]
WEIGHT_ABSMAX = [0.5, 2.0, 1.0]
ALPHA = 0.75

# Exercise 3: a 1×2 weight [w0, w1], its inverse Hessian, a grid of step 0.5 (w0 rounds to the nearest level).
W = [0.8, -0.3]
H_INV = [[2.0, -1.0], [-1.0, 4.0]]
STEP = 0.5


def packed_reference(codes=CODES) -> np.ndarray:
    """``byte k = c[2k] + 16·c[2k+1]``."""
    c = np.asarray(codes, dtype=np.int64)
    return c[0::2] + 16 * c[1::2]


def smoothing_reference(act=ACT_ABSMAX, weight=WEIGHT_ABSMAX, alpha=ALPHA) -> np.ndarray:
    """``s_j = max|X_j|^α / max|W_j|^(1−α)``."""
    return np.asarray(act, dtype=np.float64) ** alpha / np.asarray(weight, dtype=np.float64) ** (1 - alpha)


def gptq_step_reference(w=W, h_inv=H_INV, step=STEP) -> tuple[float, float]:
    """``q0 = step·round(w0/step)``; ``w1 ← w1 − (w0 − q0)/[H⁻¹]₀₀ · [H⁻¹]₀₁``. Returns ``(q0, updated w1)``."""
    q0 = step * round(w[0] / step)
    return q0, w[1] - (w[0] - q0) / h_inv[0][0] * h_inv[0][1]


@checker
def check_packed_bytes(packed) -> str:
    """Exercise: the bytes (as integers 0…255) that ``CODES`` pack into."""
    got = float_array("packed", packed)
    c = np.asarray(CODES)
    mistakes = [
        (16 * c[0::2] + c[1::2], "the even column goes in the *low* nibble: byte = c[2k] | c[2k+1] << 4."),
        (c, "two codes share one byte: 6 codes make 3 bytes."),
        (None, "byte k = c[2k] + 16·c[2k+1]."),
    ]
    expect_close_or_known_mistake("packed", got, packed_reference(), mistakes, rtol=0, atol=0)
    return passed(f"packed = {packed_reference().tolist()} (hex {[hex(b) for b in packed_reference()]}): "
                  f"{len(CODES)} codes in {len(CODES) // 2} bytes, 8× fewer than float32.")


@checker
def check_smoothing_scales(scales) -> str:
    """Exercise: SmoothQuant's ``s`` for ``ACT_ABSMAX``, ``WEIGHT_ABSMAX`` at ``ALPHA``."""
    got = float_array("scales", scales)
    act, wt = np.asarray(ACT_ABSMAX), np.asarray(WEIGHT_ABSMAX)
    mistakes = [
        (act ** (1 - ALPHA) / wt ** ALPHA, "α is the activation's exponent: s = max|X|^α / max|W|^(1−α)."),
        (wt ** (1 - ALPHA) / act ** ALPHA, "that is 1/s: the activation is *divided* by s, so s grows with max|X|."),
        (act / wt, "that is α = 1 in both places; the weight's exponent is 1 − α."),
        (None, "s_j = max|X_j|^α / max|W_j|^(1−α), channel by channel."),
    ]
    expect_close_or_known_mistake("scales", got, smoothing_reference(), mistakes, rtol=1e-6, atol=1e-9)
    after = act / smoothing_reference()
    return passed(f"s = {np.round(smoothing_reference(), 4).tolist()}; activation maxima become "
                  f"{np.round(after, 3).tolist()} (spread {act.max() / act.min():.0f}× → {after.max() / after.min():.1f}×).")


@checker
def check_gptq_step(q0, w1_updated) -> str:
    """Exercise: quantize ``W[0]`` to the grid of step ``STEP``, then GPTQ's update of ``W[1]``."""
    q0_exp, w1_exp = gptq_step_reference()
    got = float_array("[q0, w1_updated]", [q0, w1_updated])
    mistakes = [
        ([q0_exp, W[1]], "GPTQ does not leave w1 alone (that is round-to-nearest): it absorbs w0's error "
                         "through the inverse Hessian."),
        ([q0_exp, W[1] + (W[0] - q0_exp) / H_INV[0][0] * H_INV[0][1]], "the sign: w1 ← w1 − δ/[H⁻¹]₀₀·[H⁻¹]₀₁ "
                                                                      "with δ = w0 − q0."),
        ([q0_exp, W[1] - (W[0] - q0_exp) * H_INV[0][1]], "divide the error by the diagonal [H⁻¹]₀₀."),
        (None, "q0 = 0.5·round(w0/0.5); w1 − (w0 − q0)/[H⁻¹]₀₀·[H⁻¹]₀₁."),
    ]
    expect_close_or_known_mistake("[q0, w1_updated]", got, [q0_exp, w1_exp], mistakes, rtol=1e-9, atol=1e-9)
    return passed(f"q0 = {q0_exp}, w1 → {w1_exp:.3f}: the rounding error {W[0] - q0_exp:+.1f} of w0 moved into w1, "
                  f"where the correlated input makes up for it.")
