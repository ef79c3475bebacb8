"""Checkers of notebook 16: each passes the solution, fails wrong answers, and agrees with labkit.llm."""
import numpy as np
import pytest
import torch

from labkit.exercises import ExerciseError, NotAttempted, ch16
from labkit.llm.gptq import inverse_hessian_factor
from labkit.llm.int4 import pack_int4
from labkit.llm.smoothquant import smoothing_scales

# By hand: [3 + 16·12, 0 + 16·15, 7 + 16·8] = [195, 240, 135]
PACKED = [195, 240, 135]
# 16^0.75 / 0.5^0.25 = 8 / 0.8409 = 9.5137; 1 / 2^0.25 = 0.8409; 0.25^0.75 / 1 = 0.35355
SCALES = [9.513656920021768, 0.8408964152537145, 0.3535533905932738]
# q0 = 1.0 (0.8 → nearest of 0.5, 1.0); w1 = -0.3 - (0.8 - 1.0)/2·(-1) = -0.4
Q0, W1 = 1.0, -0.4


def test_solutions_pass():
    assert ch16.check_packed_bytes(PACKED).startswith("✓ packed = [195, 240, 135]")
    assert ch16.check_smoothing_scales(SCALES).startswith("✓")
    assert ch16.check_gptq_step(Q0, W1).startswith("✓ q0 = 1.0, w1 → -0.400")


@pytest.mark.parametrize("answer, hint", [([60, 15, 120], "low"), ([3, 12, 0, 15, 7, 8], "3 bytes"), ([1, 2, 3], "byte k")])
def test_wrong_packing_fails(answer, hint):
    with pytest.raises(ExerciseError, match=hint):
        ch16.check_packed_bytes(answer)


@pytest.mark.parametrize("answer, hint", [
    (np.array(ch16.ACT_ABSMAX) ** 0.25 / np.array(ch16.WEIGHT_ABSMAX) ** 0.75, "activation's exponent"),
    (1 / np.array(SCALES), "1/s"),
    (np.array(ch16.ACT_ABSMAX) / np.array(ch16.WEIGHT_ABSMAX), "1 − α"),
    ([1.0, 1.0, 1.0], "channel by channel")])
def test_wrong_scales_fail(answer, hint):
    with pytest.raises(ExerciseError, match=hint):
        ch16.check_smoothing_scales(answer)


@pytest.mark.parametrize("q0, w1, hint", [(1.0, -0.3, "round-to-nearest"), (1.0, -0.2, "sign"),
                                          (1.0, -0.5, "diagonal"), (0.5, -0.3, "q0 = 0.5")])
def test_wrong_gptq_step_fails(q0, w1, hint):
    with pytest.raises(ExerciseError, match=hint):
        ch16.check_gptq_step(q0, w1)


def test_unanswered_is_not_attempted():
    assert isinstance(ch16.check_packed_bytes(...), NotAttempted)
    assert isinstance(ch16.check_gptq_step(..., ...), NotAttempted)


def test_references_agree_with_labkit():
    codes = torch.tensor([ch16.CODES], dtype=torch.uint8)
    assert pack_int4(codes)[0].tolist() == ch16.packed_reference().tolist() == PACKED
    weight = torch.tensor([ch16.WEIGHT_ABSMAX, [-x / 2 for x in ch16.WEIGHT_ABSMAX]])
    s = smoothing_scales(torch.tensor(ch16.ACT_ABSMAX), weight, ch16.ALPHA)
    np.testing.assert_allclose(s.numpy(), ch16.smoothing_reference(), rtol=1e-6)
    np.testing.assert_allclose(ch16.smoothing_reference(), SCALES, rtol=1e-12)
    # GPTQ's update uses the rows of U (H⁻¹ = UᵀU): U₀₁/U₀₀ = [H⁻¹]₀₁/[H⁻¹]₀₀, the same step as by hand
    h = torch.linalg.inv(torch.tensor(ch16.H_INV, dtype=torch.float64))
    u = inverse_hessian_factor(h, damp=0.0)
    delta = ch16.W[0] - Q0
    assert float(ch16.W[1] - delta / u[0, 0] * u[0, 1]) == pytest.approx(W1)
    assert ch16.gptq_step_reference() == pytest.approx((Q0, W1))
