"""Checkers of notebook 02: each passes the solution and fails wrong answers with a pointed hint."""
import math

import numpy as np
import pytest
import torch

from labkit.exercises import ExerciseError, ch02
from labkit.quant import binary

W_TWN = torch.tensor(ch02.TWN_WEIGHT)
W_XNOR = torch.tensor(ch02.XNOR_WEIGHT)

# Solutions worked out by hand, as in the notebook: mean|W| = 4.0 / 8 = 0.5, Δ = 0.35,
# kept |W| = 1.2, 0.6, 1.0, 0.6 → α = 3.4 / 4 = 0.85.
DELTA, ALPHA = 0.35, 0.85
W_TERNARY = [[0.85, 0.0, 0.85, 0.0], [-0.85, 0.0, -0.85, 0.0]]
# Row means of |W|: 1.0/4, 3.0/4, 0.4/4; squared errors 0.05 + 0.11 + 0.025.
XNOR_ALPHA = [0.25, 0.75, 0.1]
XNOR_ERROR = 0.185
FC1_TERNARY_BYTES = 120 * 400 * 2 // 8 + 4 + 120 * 4                       # 12,484


def test_solutions_pass():
    assert ch02.check_twn(DELTA, ALPHA, W_TERNARY).startswith("✓ Δ = 0.7 · 0.5 = 0.35; 4 of 8")
    assert ch02.check_xnor_alphas(XNOR_ALPHA, XNOR_ERROR).startswith("✓ α = [0.25, 0.75, 0.1]")
    assert "12,484 B" in ch02.check_ternary_layer_bytes(FC1_TERNARY_BYTES)


def test_solutions_pass_as_float32_tensors_computed_with_torch():
    """What a learner typically writes: torch float32 arithmetic, 0-d tensors, a [3, 1] α."""
    delta = 0.7 * W_TWN.abs().mean()
    keep = W_TWN.abs() > delta
    alpha = W_TWN.abs()[keep].mean()
    assert ch02.check_twn(delta, alpha, alpha * torch.sign(W_TWN) * keep).startswith("✓")
    a = W_XNOR.abs().mean(dim=1, keepdim=True)
    err = ((W_XNOR - a * torch.where(W_XNOR >= 0, 1.0, -1.0)) ** 2).sum()
    assert ch02.check_xnor_alphas(a, err).startswith("✓")
    assert ch02.check_ternary_layer_bytes(np.int64(FC1_TERNARY_BYTES)).startswith("✓")


def test_independent_references_agree_with_labkit():
    """The checkers' float64 formulas and labkit.quant.binary compute the same tensors."""
    delta, alpha, w_hat = ch02.twn_reference(W_TWN)
    assert math.isclose(delta, float(binary.ternary_threshold(W_TWN)), rel_tol=1e-6)
    assert np.allclose(w_hat, binary.ternarize(W_TWN).numpy(), atol=1e-6)
    alphas, w_bin = ch02.xnor_reference(W_XNOR)
    assert np.allclose(w_bin, binary.xnor_binarize(W_XNOR, per_channel=True).numpy(), atol=1e-6)
    assert np.allclose(alphas, XNOR_ALPHA)
    assert (delta, alpha) == pytest.approx((DELTA, ALPHA))


@pytest.mark.parametrize("wrong_delta, hint", [
    (0.7 * 0.05, "absolute"),                 # 0.7 · mean(W), signed
    (0.5, "multiply the mean |W| by the TWN factor 0.7"),
    (0.7 * 1.2, "not the largest |W|"),
    (0.3, "over all n = 8 weights"),
])
def test_twn_wrong_delta(wrong_delta, hint):
    with pytest.raises(ExerciseError, match="`delta` is") as info:
        ch02.check_twn(wrong_delta, ALPHA, W_TERNARY)
    assert hint in info.value.hint


@pytest.mark.parametrize("wrong_alpha, hint", [
    (0.5, "XNOR's α"),
    (3.4 / 8, "number of kept weights (4)"),
    (0.15, "zeroed weights do not enter"),
    (1.2, "least-squares scale"),
])
def test_twn_wrong_alpha(wrong_alpha, hint):
    with pytest.raises(ExerciseError, match="`alpha` is") as info:
        ch02.check_twn(DELTA, wrong_alpha, W_TERNARY)
    assert hint in info.value.hint


@pytest.mark.parametrize("wrong_w, hint", [
    ([[1, 0, 1, 0], [-1, 0, -1, 0]], "ternary codes"),
    ([[0.85, -0.85, 0.85, 0.85], [-0.85, 0.85, -0.85, 0.85]], "no threshold"),
    ([[0.85, 0.0, 0.85, 0.0], [-0.85, 0.85, -0.85, 0.0]], "0 in between"),
])
def test_twn_wrong_tensor(wrong_w, hint):
    with pytest.raises(ExerciseError, match="`w_ternary` is off") as info:
        ch02.check_twn(DELTA, ALPHA, wrong_w)
    assert hint in info.value.hint


def test_twn_wrong_shape_and_placeholders():
    with pytest.raises(ExerciseError, match="should be a 2×4 array"):
        ch02.check_twn(DELTA, ALPHA, [0.85, 0.0, 0.85, 0.0])
    for args in [(None, ALPHA, W_TERNARY), (DELTA, ALPHA, None)]:
        with pytest.raises(ExerciseError, match="no answer yet"):
            ch02.check_twn(*args)
    assert ch02.check_twn(DELTA, ..., W_TERNARY).startswith("Not attempted yet")


@pytest.mark.parametrize("wrong_alpha, hint", [
    (4.4 / 12, "per-tensor XNOR"),
    ([4.4 / 12] * 3, "per-tensor XNOR"),
    ([1.45 / 3, 0.8 / 3, 1.05 / 3, 1.1 / 3], "columns"),
    ([0.0, -0.05, 0.025], "absolute"),
    ([0.4, 1.0, 0.2], "not the largest"),
    ([0.2, 0.7, 0.1], "mean absolute value of row c"),
])
def test_xnor_wrong_alpha(wrong_alpha, hint):
    with pytest.raises(ExerciseError) as info:
        ch02.check_xnor_alphas(wrong_alpha, XNOR_ERROR)
    assert "`alpha`" in info.value.message
    assert hint in info.value.hint


def _per_tensor_error():
    w = np.asarray(ch02.XNOR_WEIGHT)
    return float(((w - np.abs(w).mean() * np.where(w >= 0, 1, -1)) ** 2).sum())


@pytest.mark.parametrize("wrong_error, hint", [
    (_per_tensor_error(), "per-tensor α"),
    (0.4 + 0.6 + 0.3, "square the differences"),     # Σ |W − Ŵ| per row: 0.4, 0.6, 0.3
    (XNOR_ERROR / 12, "not the mean"),
    (math.sqrt(XNOR_ERROR), "no square root"),
    (0.2, "sign(0) = +1"),
])
def test_xnor_wrong_error(wrong_error, hint):
    with pytest.raises(ExerciseError, match="`squared_error` is") as info:
        ch02.check_xnor_alphas(XNOR_ALPHA, wrong_error)
    assert hint in info.value.hint


def test_xnor_placeholders():
    with pytest.raises(ExerciseError, match="no answer yet"):
        ch02.check_xnor_alphas(None, XNOR_ERROR)
    assert ch02.check_xnor_alphas(XNOR_ALPHA, ...).startswith("Not attempted yet")


@pytest.mark.parametrize("wrong, hint", [
    (6000 + 4 + 480, "needs 2 bits"),
    (9600 + 4 + 480, "base-3 packing"),
    (math.ceil(48000 * math.log2(3) / 8) + 4 + 480, "entropy bound"),
    (12000 + 480, "scale α"),
    (12000 + 4, "120 biases stay float32"),
    (12000 + 480 + 480, "not one per channel"),
    (48000 + 484, "one byte per weight"),
    (4 * 48120, "float32 size"),
    (8 * FC1_TERNARY_BYTES, "that is bits"),
    (12345, "48,000 weights × 2 bits"),
])
def test_ternary_bytes_wrong(wrong, hint):
    with pytest.raises(ExerciseError, match="expected 12,484") as info:
        ch02.check_ternary_layer_bytes(wrong)
    assert hint in info.value.hint


def test_ternary_bytes_other_layer_and_bad_layer():
    conv2 = -(-2400 * 2 // 8) + 4 + 16 * 4                                    # 668
    assert "668 B" in ch02.check_ternary_layer_bytes(conv2, layer="conv2")
    with pytest.raises(ExerciseError):
        ch02.check_ternary_layer_bytes(conv2 + 1, layer="conv2")
    with pytest.raises(ValueError, match="layer must name a LeNet-5 layer with weights"):
        ch02.check_ternary_layer_bytes(1, layer="relu1")
    with pytest.raises(ExerciseError, match="whole number"):
        ch02.check_ternary_layer_bytes(12484.5)
    with pytest.raises(ExerciseError, match="no answer yet"):
        ch02.check_ternary_layer_bytes(None)


def test_a_huge_answer_fails_with_an_exercise_error_not_an_overflow():
    with pytest.raises(ExerciseError):
        ch02.check_ternary_layer_bytes(10**400)  # float(10**400) raises OverflowError
