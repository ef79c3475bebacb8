"""Checkers of notebook 12: each passes the solution and fails wrong answers with a pointed hint."""
import numpy as np
import pytest
import torch

from labkit import distill
from labkit.exercises import ExerciseError, ch12

F_ = torch.tensor(ch12.FEATURES, dtype=torch.float64)
E = torch.tensor(ch12.POINTS, dtype=torch.float64)


def test_solutions_pass():
    amap = (F_.abs() ** 2).sum(0)
    assert ch12.check_attention_map(amap).startswith("✓ attention map")
    q = amap.flatten() / amap.flatten().norm()
    assert ch12.check_normalized_attention(q).startswith("✓ q̂ =")
    d = torch.cdist(E, E)
    assert ch12.check_rkd_distances(d / (d.sum() / 6)).startswith("✓ ψ_D")


def test_solutions_pass_in_other_forms():
    assert ch12.check_attention_map(distill.attention_map(F_[None].float(), 2)).startswith("✓")   # [1, 2, 2]
    assert ch12.check_normalized_attention(distill.normalized_attention(F_[None], 2).tolist()).startswith("✓")
    assert ch12.check_rkd_distances(distill.rkd_distance_matrix(E).numpy()).startswith("✓")


def test_references_agree_with_labkit_distill():
    assert np.allclose(ch12.attention_reference(), distill.attention_map(F_[None], 2)[0].numpy())
    assert np.allclose(ch12.normalized_reference(), distill.normalized_attention(F_[None], 2)[0].numpy())
    assert np.allclose(ch12.rkd_reference(), distill.rkd_distance_matrix(E).numpy())


A = (F_ ** 2).sum(0)


@pytest.mark.parametrize("wrong, hint", [
    (F_.abs().sum(0), "p = 1"),
    (A / 2, "mean over the channels"),
    (F_.sum(0) ** 2, "then* sum"),
    ((F_ ** 2).sum((1, 2)), "axis 0"),
    (F_.abs().amax(0) ** 2, "largest one"),
    (A + 1, "A[h, w]"),
])
def test_attention_map_wrong(wrong, hint):
    with pytest.raises(ExerciseError) as info:
        ch12.check_attention_map(wrong)
    assert hint in info.value.hint


@pytest.mark.parametrize("wrong, hint", [
    (A.flatten() / A.sum(), "L1"),
    (A.flatten() / A.max(), "largest entry"),
    (A.flatten() / A.sum().sqrt(), "not sqrt(Σ A)"),
    (A.flatten(), "Not normalised"),
    (A.flatten().flip(0) / A.norm(), "squares of the four"),
])
def test_normalized_attention_wrong(wrong, hint):
    with pytest.raises(ExerciseError) as info:
        ch12.check_normalized_attention(wrong)
    assert hint in info.value.hint


D = torch.cdist(E, E)


@pytest.mark.parametrize("wrong, hint", [
    (D, "raw distances"),
    (D / D.mean(), "zero diagonal"),
    (D ** 2 / (D ** 2).sum() * 6, "Squared distances"),
    (D / D.max(), "largest distance"),
    (D / 3, "ψ_D[i, j]"),
])
def test_rkd_distances_wrong(wrong, hint):
    with pytest.raises(ExerciseError) as info:
        ch12.check_rkd_distances(wrong)
    assert hint in info.value.hint


def test_unanswered_and_wrong_shapes():
    for check in (ch12.check_attention_map, ch12.check_normalized_attention, ch12.check_rkd_distances):
        with pytest.raises(ExerciseError, match="no answer yet"):
            check(None)
    with pytest.raises(ExerciseError, match="3 × 3 matrix"):
        ch12.check_rkd_distances(D[:2])
    with pytest.raises(ExerciseError):
        ch12.check_attention_map(A[:1])
    with pytest.raises(ExerciseError, match="should be numbers"):
        ch12.check_rkd_distances("zero")
