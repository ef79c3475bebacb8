"""Checkers for notebooks/01_quantization_basics.ipynb: scale and zero point by hand, quantizing a
vector, per-channel parameters of a small weight matrix.

Each checker recomputes the expected answer from first principles in Python floats (float64) —
``s = (max⁺ - min⁻) / (qmax - qmin)``, ``z = qmin - round(min⁻ / s)``, ``x_q = clamp(round(x/s) + z)``
— never from the learner's answer nor from ``labkit.quant`` (the tests cross-check the two). A wrong
answer raises ``ExerciseError`` with a hint aimed at the usual mistake (2^b levels instead of
2^b − 1 steps, a forgotten clamp or zero point, a range that does not contain 0...).
"""
from __future__ import annotations

import math
from numbers import Real

import numpy as np

from labkit.exercises import ExerciseError, checker, expect_answered, expect_close, expect_equal, passed

# Exercise 1: the float range [MIN, MAX] onto unsigned 4-bit codes [0, 15].
EX1_MIN, EX1_MAX, EX1_BITS = -0.8, 2.2, 4
# Exercise 2: quantize this vector with the parameters of exercise 1.
EX2_VECTOR = (-1.0, -0.35, 0.0, 0.55, 1.37, 2.6)
# Exercise 3: per-output-channel (per-row) asymmetric unsigned 8-bit parameters of this matrix.
EX3_WEIGHT = ((-0.5, 0.1, 0.3, 1.0),
              (0.2, 0.4, 0.6, 0.8),
              (-2.0, -1.0, 0.5, 0.0))
EX3_BITS = 8


# --- first-principles reference (float64, Python's round = round half to even, like torch) ------

def _unsigned_qparams(lo: float, hi: float, bits: int) -> tuple[float, int]:
    qmin, qmax = 0, 2 ** bits - 1
    lo, hi = min(lo, 0.0), max(hi, 0.0)          # 0.0 must be a level
    scale = (hi - lo) / (qmax - qmin)
    zero_point = min(max(qmin - round(lo / scale), qmin), qmax)
    return scale, zero_point


def _quantize(values, scale: float, zero_point: int, bits: int) -> list[int]:
    return [min(max(round(v / scale) + zero_point, 0), 2 ** bits - 1) for v in values]


def _as_number(name: str, value, hint: str) -> float:
    expect_answered(name, value, hint)
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:   # numpy / torch scalars
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(float(value)):
        raise ExerciseError(f"`{name}` should be a finite number, got {type(value).__name__} {value!r}.", hint)
    return float(value)


def _as_vector(name: str, value, length: int, hint: str) -> np.ndarray:
    expect_answered(name, value, hint)
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    try:
        array = np.asarray(value, dtype=np.float64).reshape(-1) if np.ndim(value) else None
    except (TypeError, ValueError):
        array = None
    if array is None or array.size != length or not np.all(np.isfinite(array)):
        raise ExerciseError(f"`{name}` should hold {length} finite numbers (a list, array or tensor), "
                            f"got {type(value).__name__} {str(value)[:80]}.", hint)
    return array


def _whole(name: str, array: np.ndarray, hint: str) -> np.ndarray:
    if not np.all(array == np.round(array)):
        raise ExerciseError(f"`{name}` should hold whole numbers (integer codes), got {array.tolist()}.", hint)
    return array.astype(np.int64)


# --- exercise 1 ------------------------------------------------------------------------------------

@checker
def check_scale_zero_point(scale, zero_point) -> str:
    """Exercise 1: scale and zero point mapping ``[EX1_MIN, EX1_MAX]`` onto unsigned 4-bit codes.

    Expected: ``s = (max - min) / (2^4 - 1)``, ``z = 0 - round(min / s)`` (the range already contains 0).
    """
    lo, hi, bits = EX1_MIN, EX1_MAX, EX1_BITS
    s_ref, z_ref = _unsigned_qparams(lo, hi, bits)
    got_s = _as_number("scale", scale, "s = (max − min) / (qmax − qmin).")
    steps = 2 ** bits - 1
    s_hint = {round((hi - lo) / 2 ** bits, 9): f"{2 ** bits} levels have {steps} steps between them: divide by "
                                               f"2^{bits} − 1 = {steps}, not by 2^{bits}.",
              round((hi - lo) / (2 ** (bits - 1) - 1), 9): "that is the step of a signed symmetric grid; here the "
                                                           "whole range [min, max] maps onto [0, 15].",
              round(hi / steps, 9): "the range is max − min, not max.",
              round(steps / (hi - lo), 9): "that is 1/s: the scale is the float width of one step."}
    expect_close("scale", got_s, s_ref, rtol=1e-5,
                 hint=s_hint.get(round(got_s, 9), f"s = ({hi} − ({lo})) / (2^{bits} − 1)."))
    got_z = _as_number("zero_point", zero_point, "z = qmin − round(min / s).")
    if not got_z.is_integer():
        raise ExerciseError(f"`zero_point` is {got_z:g}, but a zero point is an integer code (the code that "
                            "stands for 0.0).", "round it: z = qmin − round(min / s), so that 0.0 is exactly "
                                                "representable.")
    z_hint = {z_ref - 2 ** (bits - 1): "that is the zero point of signed codes −8..7; here the codes are "
                                       "unsigned, 0..15.",
              z_ref + 1: "z must be an integer: round(min / s), do not take the ceiling or floor."}
    z_hint[-z_ref] = ("mind the sign: z = qmin − round(min / s), and min is negative, so z > 0"
                      + (" (or: you used signed codes −8..7; here they are unsigned, 0..15)."
                         if -z_ref == z_ref - 2 ** (bits - 1) else "."))
    expect_equal("zero_point", int(got_z), z_ref,
                 hint=z_hint.get(int(got_z), f"z = 0 − round({lo} / s): the code where 0.0 lands."))
    return passed(f"s = {s_ref:.4g}, z = {z_ref}: the 16 codes 0..15 stand for {lo:g}, {lo + s_ref:.2g}, …, "
                  f"{(15 - z_ref) * s_ref:.2g}, and code {z_ref} is exactly 0.0.")


# --- exercise 2 ------------------------------------------------------------------------------------

@checker
def check_quantized_vector(x_q, x_hat) -> str:
    """Exercise 2: codes and dequantized values of ``EX2_VECTOR`` with exercise 1's ``(s, z)``.

    Expected: ``x_q = clamp(round(x/s) + z, 0, 15)``, ``x̂ = (x_q − z)·s``.
    """
    scale, zero_point = _unsigned_qparams(EX1_MIN, EX1_MAX, EX1_BITS)
    x, qmax = EX2_VECTOR, 2 ** EX1_BITS - 1
    q_ref = _quantize(x, scale, zero_point, EX1_BITS)
    unclamped = [round(v / scale) + zero_point for v in x]
    hints = {
        tuple(unclamped): f"codes must stay in [0, {qmax}]: clamp after rounding (the seeds forget this too).",
        tuple(min(max(round(v / scale), 0), qmax) for v in x): f"add the zero point z = {zero_point} before "
                                                               "clamping.",
        tuple(min(max(int(v / scale) + zero_point, 0), qmax) for v in x): "int() truncates towards zero; "
                                                                          "round to the nearest integer.",
        tuple(min(max(math.floor(v / scale) + zero_point, 0), qmax) for v in x): "floor is not rounding; round "
                                                                                 "to the nearest integer.",
    }
    got_q = _whole("x_q", _as_vector("x_q", x_q, len(x), "x_q = clamp(round(x / s) + z, 0, 15)."),
                   "codes are integers.")
    expect_equal("x_q", got_q, np.array(q_ref, dtype=np.int64),
                 hint=hints.get(tuple(got_q.tolist()), "x_q = clamp(round(x / s) + z, 0, 15), element by element."))
    x_hat_ref = np.array([(q - zero_point) * scale for q in q_ref])
    got_x_hat = _as_vector("x_hat", x_hat, len(x), "x̂ = (x_q − z)·s.")
    hint = "x̂ = (x_q − z)·s."
    if np.allclose(got_x_hat, np.array(q_ref) * scale, atol=1e-6):
        hint = "subtract the zero point before multiplying by s: x̂ = (x_q − z)·s."
    elif np.allclose(got_x_hat, x, atol=1e-6):
        hint = "x̂ is computed from the codes, not copied from x."
    expect_close("x_hat", got_x_hat, x_hat_ref, rtol=1e-5, atol=1e-6, hint=hint)
    clipped = [v for v in x if not EX1_MIN <= v <= EX1_MAX]
    return passed(f"x_q = {q_ref}. {' and '.join(f'{v:g}' for v in clipped)} lie outside [{EX1_MIN}, {EX1_MAX}] "
                  f"and are clipped (errors up to {max(abs(np.array(x) - x_hat_ref)):.2f}); every other error "
                  f"is a rounding error ≤ s/2 = {scale / 2:.2g}.")


# --- exercise 3 ------------------------------------------------------------------------------------

@checker
def check_per_channel_qparams(scales, zero_points) -> str:
    """Exercise 3: one asymmetric unsigned 8-bit ``(s, z)`` per output channel (row) of ``EX3_WEIGHT``.

    Expected, for each row ``r``: ``min⁻ = min(min r, 0)``, ``max⁺ = max(max r, 0)``,
    ``s = (max⁺ − min⁻) / 255``, ``z = −round(min⁻ / s)``.
    """
    rows, bits = EX3_WEIGHT, EX3_BITS
    steps = 2 ** bits - 1
    ref = [_unsigned_qparams(min(r), max(r), bits) for r in rows]
    s_ref = np.array([s for s, _ in ref])
    z_ref = np.array([z for _, z in ref], dtype=np.int64)
    channels = len(rows)
    got_s = _as_vector("scales", scales, channels,
                       f"one scale per output channel: the matrix has {channels} rows, so {channels} scales.")
    flat = [v for r in rows for v in r]
    per_tensor = (max(max(flat), 0.0) - min(min(flat), 0.0)) / steps
    no_widening = np.array([(max(r) - min(r)) / steps for r in rows])
    columns = len(rows[0])
    if np.allclose(got_s, per_tensor, rtol=1e-4):
        hint = "all scales are equal: that is per-tensor; take min and max of each row separately."
    elif np.allclose(got_s, no_widening, rtol=1e-4):
        hint = "widen each row's range to contain 0 first (min⁻ = min(min, 0), max⁺ = max(max, 0))."
    elif np.allclose(got_s, s_ref * steps / 2 ** bits, rtol=1e-4):
        hint = f"divide by 2^{bits} − 1 = {steps} steps, not by 2^{bits}."
    else:
        hint = f"per row r: s = (max(max r, 0) − min(min r, 0)) / {steps} (rows are output channels, not the " \
               f"{columns} columns)."
    expect_close("scales", got_s, s_ref, rtol=1e-5, hint=hint)
    got_z = _whole("zero_points", _as_vector("zero_points", zero_points, channels,
                                             f"one zero point per row ({channels})."), "zero points are integer codes.")
    hint = "z = −round(min⁻ / s) per row, with min⁻ = min(min r, 0)."
    if np.array_equal(got_z, -z_ref):
        hint = "mind the sign: z = qmin − round(min⁻ / s) and min⁻ ≤ 0, so z ≥ 0."
    expect_equal("zero_points", got_z, z_ref, hint=hint)
    return passed(f"scales {np.round(s_ref, 5).tolist()}, zero points {z_ref.tolist()}: row 1 has no negative "
                  "weight, so its range is widened to [0, max] and its zero point is 0.")
