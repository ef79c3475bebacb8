"""Checkers for notebooks/04_integer_inference.ipynb: the integer pipeline done by hand.

Each checker recomputes the expected value with plain Python integers (never with
``labkit.kernels``, whose results the notebook is checking), raises ``ExerciseError`` with a hint on
a wrong answer and returns a ``✓`` line otherwise.
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np

from labkit.exercises import ExerciseError, checker, expect_answered, expect_equal, passed


def _round_half_away(value: Fraction) -> int:
    whole = int(abs(value) + Fraction(1, 2))        # floor(|v| + 1/2)
    return whole if value >= 0 else -whole


def expected_multiplier(real: float) -> tuple[int, int]:
    """(m, shift) with m in [2**30, 2**31) and real ≈ m · 2**(shift − 31), from exact fractions."""
    value = Fraction(real)
    shift = 0
    while value >= 1:                                # bring the fraction into [0.5, 1)
        value /= 2
        shift += 1
    while value < Fraction(1, 2):
        value *= 2
        shift -= 1
    m = _round_half_away(value * 2**31)
    if m == 2**31:
        m, shift = 2**30, shift + 1
    return m, shift


@checker
def check_quantize_multiplier(real: float, answer) -> str:
    """Exercise: the fixed-point form ``(m, shift)`` of a real multiplier ``M = m · 2^(shift−31)``.

    Expected: write ``M = f · 2^shift`` with ``f ∈ [0.5, 1)``, then ``m = round(f · 2^31)`` (half away
    from zero; if it reaches ``2^31``, halve it and add one to ``shift``).
    """
    expect_answered("answer", answer)
    if not isinstance(answer, (tuple, list)) or len(answer) != 2:
        raise ExerciseError(f"`answer` must be a pair (m, shift), got {answer!r}.",
                            "return two integers: the Q0.31 mantissa m and the exponent shift.")
    m, shift = expected_multiplier(real)
    got_m, got_shift = (int(v) if float(v).is_integer() else v for v in answer)
    if got_shift != shift:
        hint = ("that is −n with M = M0·2^−n; labkit's shift is the exponent itself, M = m·2^(shift−31)."
                if got_shift == -shift else
                "halve or double M until it lies in [0.5, 1): the number of steps is the exponent.")
        raise ExerciseError(f"shift should make m · 2^(shift−31) ≈ {real}; got shift = {got_shift}.", hint)
    if got_m != m:
        hint = ("m must be in [2^30, 2^31): it is f · 2^31 with f in [0.5, 1)."
                if not 2**30 <= (got_m if isinstance(got_m, int) else 0) < 2**31 else
                "round f · 2^31 to the nearest integer (half away from zero); off by one means a truncation.")
        raise ExerciseError(f"m is not round({real} · 2^(31−shift)); got m = {got_m}.", hint)
    return passed(f"M = {real} ≈ {m} · 2^({shift}−31) = {m * 2.0 ** (shift - 31):.12g}.")


@checker
def check_zero_point_correction(x, x_zero_point: int, w, answer) -> str:
    """Exercise: the term subtracted from the raw product ``Σ_k x·w`` to undo the input zero point,
    one value per output row: ``x_zero_point · Σ_k w[n, k]`` (weights symmetric, z_w = 0).

    Expected: ``z_x`` times each weight row's sum (the sums are precomputed once per layer).
    """
    expect_answered("answer", answer)
    w = np.asarray(w).astype(np.int64)
    x = np.asarray(x).astype(np.int64).reshape(-1)
    row_sums = [sum(int(v) for v in row) for row in w]
    expected = np.array([int(x_zero_point) * s for s in row_sums], dtype=np.int64)
    got = np.asarray(answer)
    raw = np.array([sum(int(a) * int(b) for a, b in zip(x, row)) for row in w], dtype=np.int64)
    hint = "z_x · (sum of each weight row): a vector with one entry per output."
    if got.shape == expected.shape and np.array_equal(got, raw - expected):
        hint = "that is the corrected accumulator Σ(x − z_x)·w; the question asks for the correction term itself."
    elif got.shape == expected.shape and np.array_equal(got, np.array(row_sums)):
        hint = "those are the row sums; multiply them by the input zero point."
    elif got.shape == () and int(got) == int(x_zero_point) * int(x.sum()):
        hint = "that would be the term for a zero point on the weights (z_w Σ x); here z_w = 0 and z_x ≠ 0."
    expect_equal("answer", got.astype(np.int64) if got.dtype.kind in "iuf" else got, expected, hint)
    return passed(f"correction = {x_zero_point} · {row_sums} = {expected.tolist()}; "
                  f"Σ(x − z_x)·w = {(raw - expected).tolist()}.")


def _doubling_high_mul(a: int, b: int) -> int:
    """``round(a·b / 2³¹)``, ties away from zero: gemmlowp's SaturatingRoundingDoublingHighMul (SRDHM),
    the high 32 bits of the doubled 64-bit product ``2·a·b``. Its saturation covers only
    ``a = b = −2³¹``, which a multiplier ``m`` in [2³⁰, 2³¹) never is, so Python's integers need none."""
    product = a * b
    nudge = 2**30 if product >= 0 else 1 - 2**30
    q = abs(product + nudge) // 2**31                # truncation toward zero
    return q if product + nudge >= 0 else -q


def _divide_by_power_of_two(x: int, exponent: int) -> int:
    """``round(x / 2^exponent)``, ties away from zero: gemmlowp's RoundingDivideByPOT (RDBPOT, "POT" =
    power of two), the rounding right shift that applies a multiplier's negative ``shift``."""
    if exponent == 0:
        return x
    quotient = Fraction(x, 2**exponent)
    return _round_half_away(quotient)


def expected_requantize(acc: int, m: int, shift: int, z_out: int, relu: bool = False) -> int:
    """TFLite's requantization with Python integers: SaturatingRoundingDoublingHighMul then
    RoundingDivideByPOT, plus the zero point, clamped to [z_out if relu else 0, 255]."""
    left, right = max(shift, 0), max(-shift, 0)
    x = max(-(2**31), min(2**31 - 1, int(acc) * 2**left))
    q = _divide_by_power_of_two(_doubling_high_mul(x, int(m)), right) + int(z_out)
    return max(int(z_out) if relu else 0, min(255, q))


@checker
def check_requantize(acc: int, m: int, shift: int, z_out: int, answer, relu: bool = False) -> str:
    """Exercise: the uint8 output code of one int32 accumulator ``acc`` with multiplier ``(m, shift)``
    and output zero point ``z_out``.

    Expected: ``h = round(acc · m / 2^31)`` (SaturatingRoundingDoublingHighMul), then
    ``round(h / 2^−shift)`` ties away from zero (RoundingDivideByPOT), ``+ z_out``, clamped to uint8.
    """
    expect_answered("answer", answer)
    expected = expected_requantize(acc, m, shift, z_out, relu)
    real = acc * m * 2.0 ** (shift - 31)
    hint = "h = round(acc·m / 2^31); q = round(h / 2^(−shift)); out = clamp(q + z_out, 0, 255)."
    try:
        value = float(answer)
    except (TypeError, ValueError):
        value = None
    if value is not None:
        if value == expected - z_out:
            hint = "add the output zero point z_out at the end."
        elif value == real + z_out or not float(value).is_integer():
            hint = "the output is an integer code: round (twice, as TFLite does) and clamp to [0, 255]."
        elif value > 255 or value < 0:
            hint = "clamp to the uint8 range [0, 255]."
    if value is None or value != expected:
        raise ExerciseError(f"requantize({acc}) should be {'' if value is None else 'another '}uint8 code; "
                            f"got {answer!r}.", hint)
    return passed(f"acc = {acc} → {acc}·{m}·2^({shift}−31) = {real:.4f} → code {expected} "
                  f"(with z_out = {z_out}).")


def fc_intensity(in_features: int, out_features: int, batch: int, value_bytes: int = 1) -> float:
    """Arithmetic intensity (operations per byte) of a fully connected layer ``[N, K]`` at batch ``b``:
    ``2·b·N·K / (w·N·K + w·b·K + w·b·N)`` with ``w = value_bytes`` per weight and per activation."""
    n, k, b = int(out_features), int(in_features), int(batch)
    return 2 * b * n * k / (value_bytes * (n * k + b * k + b * n))


@checker
def check_fc_intensity(in_features: int, out_features: int, batches, answer) -> str:
    """Exercise: the arithmetic intensity of an int8 fully connected layer at each batch size.

    Expected: ``ops = 2·b·N·K`` (a multiply-add is two operations), ``bytes = N·K + b·K + b·N`` (int8
    weights, uint8 inputs and outputs, one byte each), one intensity ``ops / bytes`` per batch size.
    """
    expect_answered("answer", answer)
    batches = tuple(int(b) for b in batches)
    got = np.asarray(answer, dtype=float) if np.ndim(answer) else None
    if got is None or got.shape != (len(batches),):
        raise ExerciseError(f"`answer` must hold one intensity per batch size {batches}, got {answer!r}.",
                            "a pair (I at the first batch size, I at the second).")
    expected = np.array([fc_intensity(in_features, out_features, b) for b in batches])
    if np.allclose(got, expected, rtol=1e-6):
        return passed("I = " + ", ".join(f"{v:.1f} op/byte at batch {b}" for v, b in zip(expected, batches))
                      + ": the same weights, reused b times.")
    n, k = int(out_features), int(in_features)
    known = {
        "count a multiply-add as two operations (one multiply, one add): ops = 2·b·N·K.":
            expected / 2,
        "the weights are int8 and the activations uint8: one byte per value, not four.":
            np.array([fc_intensity(k, n, b, 4) for b in batches]),
        "count the activations too: the inputs b·K and the outputs b·N are read and written as well.":
            np.array([2 * b * n * k / (n * k) for b in batches]),
        "the weights are moved once per batch, not once per image: bytes = N·K + b·K + b·N.":
            np.array([2 * b * n * k / (b * (n * k + k + n)) for b in batches]),
    }
    hint = next((h for h, value in known.items() if np.allclose(got, value, rtol=1e-6)),
                "I = 2·b·N·K / (N·K + b·K + b·N) for int8 weights and uint8 activations.")
    raise ExerciseError(f"expected intensities of about {', '.join(f'{v:.2f}' for v in expected)} op/byte "
                        f"at batch {batches}; got {', '.join(f'{v:.2f}' for v in got)}.", hint)
