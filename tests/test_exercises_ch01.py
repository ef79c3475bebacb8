"""Checkers of notebook 01: each passes the solution and fails every wrong answer with a hint."""
import numpy as np
import pytest
import torch

from labkit.exercises import ExerciseError, ch01
from labkit.quant import dequantize, qparams_from_range, quantize

# Solutions worked out by hand, as the notebook does: range [-0.8, 2.2] onto 4-bit codes 0..15.
SCALE, ZERO_POINT = 3.0 / 15, 4
CODES = [0, 2, 4, 7, 11, 15]                      # -1.0 and 2.6 are clipped to codes 0 and 15
X_HAT = [-0.8, -0.4, 0.0, 0.6, 1.4, 2.2]
SCALES = [1.5 / 255, 0.8 / 255, 2.5 / 255]         # row 1 (all positive) is widened to [0, 0.8]
ZERO_POINTS = [85, 0, 204]


def test_solutions_pass_in_every_form():
    assert ch01.check_scale_zero_point(SCALE, ZERO_POINT).startswith("✓ s = 0.2, z = 4")
    assert ch01.check_scale_zero_point(np.float32(0.2), 4.0).startswith("✓")          # whole float is fine
    assert ch01.check_scale_zero_point(torch.tensor(0.2), torch.tensor(4)).startswith("✓")
    assert ch01.check_quantized_vector(CODES, X_HAT).startswith("✓ x_q = [0, 2, 4, 7, 11, 15]")
    assert ch01.check_quantized_vector(torch.tensor(CODES, dtype=torch.uint8), torch.tensor(X_HAT)).startswith("✓")
    assert ch01.check_quantized_vector(np.array(CODES, dtype=float), np.array(X_HAT)).startswith("✓")
    assert "zero points [85, 0, 204]" in ch01.check_per_channel_qparams(SCALES, ZERO_POINTS)
    assert ch01.check_per_channel_qparams(torch.tensor(SCALES), torch.tensor(ZERO_POINTS)).startswith("✓")


def test_reference_agrees_with_labkit_quant():
    """The checkers compute from first principles; labkit.quant (float32, torch.ao rules) agrees."""
    qp = qparams_from_range(ch01.EX1_MIN, ch01.EX1_MAX, ch01.EX1_BITS, symmetric=False, signed=False)
    assert qp.scale.item() == pytest.approx(SCALE, rel=1e-6) and qp.zero_point.item() == ZERO_POINT
    x = torch.tensor(ch01.EX2_VECTOR)
    codes = quantize(x, qp)
    assert codes.tolist() == CODES
    assert dequantize(codes, qp).tolist() == pytest.approx(X_HAT, abs=1e-6)
    w = torch.tensor(ch01.EX3_WEIGHT)
    lo, hi = w.aminmax(dim=1)
    qp = qparams_from_range(lo, hi, ch01.EX3_BITS, symmetric=False, signed=False, axis=0)
    assert qp.scale.tolist() == pytest.approx(SCALES, rel=1e-6) and qp.zero_point.tolist() == ZERO_POINTS


@pytest.mark.parametrize("scale, zero_point, hint", [
    (3.0 / 16, 4, "divide by 2^4 − 1 = 15, not by 2^4"),
    (3.0 / 7, 4, "signed symmetric"),
    (2.2 / 15, 4, "max − min, not max"),
    (15 / 3.0, 4, "1/s"),
    (0.25, 4, "s = (2.2 − (-0.8)) / (2^4 − 1)"),
    (0.2, -4, "mind the sign"),
    (0.2, 4.5, "round it"),
    (0.2, 5, "do not take the ceiling"),
    (0.2, 3, "the code where 0.0 lands"),
    (0.2, "4", "finite number"),
    (True, 4, "finite number"),
])
def test_scale_zero_point_fails_on_wrong_answers(scale, zero_point, hint):
    with pytest.raises(ExerciseError) as info:
        ch01.check_scale_zero_point(scale, zero_point)
    assert hint in str(info.value)


@pytest.mark.parametrize("codes, hint", [
    ([-1, 2, 4, 7, 11, 17], "clamp after rounding"),
    ([0, 0, 0, 3, 7, 13], "add the zero point"),
    ([0, 3, 4, 6, 10, 15], "int() truncates"),
    ([0, 2, 4, 6, 10, 15], "floor is not rounding"),
    ([0, 2, 4, 7, 11, 14], "element by element"),
    ([0, 2, 4, 7, 11], "should hold 6 finite numbers"),
    ([0, 2, 4, 7.5, 11, 15], "whole numbers"),
    (None, "no answer yet"),
])
def test_quantized_vector_fails_on_wrong_codes(codes, hint):
    with pytest.raises(ExerciseError) as info:
        ch01.check_quantized_vector(codes, X_HAT)
    assert hint in str(info.value)


@pytest.mark.parametrize("x_hat, hint", [
    ([0.0, 0.4, 0.8, 1.4, 2.2, 3.0], "subtract the zero point"),
    (list(ch01.EX2_VECTOR), "not copied from x"),
    ([-0.8, -0.4, 0.0, 0.6, 1.4, 2.0], "x̂ = (x_q − z)·s"),
    ([[-0.8, -0.4, 0.0], [0.6, 1.4]], "should hold 6 finite numbers"),
])
def test_quantized_vector_fails_on_wrong_dequantized_values(x_hat, hint):
    with pytest.raises(ExerciseError) as info:
        ch01.check_quantized_vector(CODES, x_hat)
    assert hint in str(info.value)


@pytest.mark.parametrize("scales, zero_points, hint", [
    ([3.0 / 255] * 3, ZERO_POINTS, "per-tensor"),
    ([1.5 / 255, 0.6 / 255, 2.5 / 255], ZERO_POINTS, "widen each row's range"),
    ([1.5 / 256, 0.8 / 256, 2.5 / 256], ZERO_POINTS, "not by 2^8"),
    ([0.01, 0.01, 0.02], ZERO_POINTS, "rows are output channels"),
    ([0.5 / 255, 0.6 / 255, 2.5 / 255, 1.5 / 255], ZERO_POINTS, "3 rows, so 3 scales"),
    (SCALES, [-85, 0, -204], "mind the sign"),
    (SCALES, [85, 64, 204], "z = −round(min⁻ / s) per row"),
    (SCALES, [85.2, 0, 204], "integer codes"),
])
def test_per_channel_qparams_fails_on_wrong_answers(scales, zero_points, hint):
    with pytest.raises(ExerciseError) as info:
        ch01.check_per_channel_qparams(scales, zero_points)
    assert hint in str(info.value)


@pytest.mark.parametrize("check", [ch01.check_scale_zero_point, ch01.check_quantized_vector,
                                   ch01.check_per_channel_qparams])
def test_unanswered_exercises_say_so(check):
    with pytest.raises(ExerciseError, match="no answer yet"):
        check(None, None)
    assert check(..., ...).startswith("Not attempted yet")   # the student edition's stub: Run All goes on
