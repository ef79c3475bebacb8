"""Checkers of notebook 13: each passes the solution and fails wrong answers with a pointed hint."""
import numpy as np
import pytest
import torch
from torch import nn

from labkit import lowrank, measure
from labkit.exercises import ExerciseError, ch13

# Solutions by hand: 32·(300 + 784) + 300 = 34,988; 235,200 / 1,084 = 216.97 → 216.
SVD_PARAMS, BREAK_EVEN = 34_988, 216
# 14·14·9·32·64 = 3,612,672 and 14·14·(9·32 + 32·64) = 457,856.
STANDARD, SEPARABLE = 3_612_672, 457_856


def test_solutions_pass():
    assert "34,988 parameters" in ch13.check_svd_cost(SVD_PARAMS, BREAK_EVEN)
    assert ch13.check_separable_macs(STANDARD, SEPARABLE).startswith("✓ standard 3,612,672 MACs")
    assert ch13.check_svd_cost(np.int64(SVD_PARAMS), torch.tensor(BREAK_EVEN)).startswith("✓")
    assert ch13.check_separable_macs(float(STANDARD), np.int32(SEPARABLE)).startswith("✓")


def test_independent_references_agree_with_labkit():
    torch.manual_seed(0)
    fc1 = nn.Linear(784, 300)
    factorised = nn.Sequential(lowrank.svd_linear(fc1, ch13.SVD_RANK))
    assert measure.count_parameters(factorised) == ch13.svd_reference()[0] == SVD_PARAMS
    assert int(lowrank.break_even_rank(300, 784)) == ch13.svd_reference()[1] == BREAK_EVEN
    standard = nn.Sequential(nn.Conv2d(32, 64, 3, padding=1, bias=False))
    separable = nn.Sequential(nn.Conv2d(32, 32, 3, padding=1, groups=32, bias=False), nn.Conv2d(32, 64, 1, bias=False))
    assert (measure.total_macs(standard, (32, 14, 14)), measure.total_macs(separable, (32, 14, 14))) \
        == ch13.separable_reference() == (STANDARD, SEPARABLE)


@pytest.mark.parametrize("wrong, hint", [
    (32 * 1084, "add the bias"),
    (32 * 1084 + 300 + 32, "first Linear has no bias"),
    (32 * 1084 + 784, "one entry per *output*"),
    (32 * 300 * 784, "r·(m + n) weights"),
    (235_500, "that is the original layer"),
    (12_345, "two Linears"),
    (34_988.5, "two Linears"),
])
def test_svd_cost_wrong_params(wrong, hint):
    with pytest.raises(ExerciseError) as info:
        ch13.check_svd_cost(wrong, BREAK_EVEN)
    assert hint in info.value.hint


@pytest.mark.parametrize("wrong, hint", [
    (217, "round down"),
    (300, "full rank"),
    (150, "solve r·(m + n) < m·n"),
    (216.97, "not an integer rank"),
])
def test_svd_cost_wrong_break_even(wrong, hint):
    with pytest.raises(ExerciseError) as info:
        ch13.check_svd_cost(SVD_PARAMS, wrong)
    assert hint in info.value.hint


@pytest.mark.parametrize("wrong, hint", [
    (9 * 32 * 64, "those are the weights"),
    (14 * 9 * 32 * 64, "multiply by H·W = 196"),
    (12 * 12 * 9 * 32 * 64, "stays 14 × 14"),
    (1_000_000, "each of the 196·64 outputs"),
])
def test_separable_wrong_standard(wrong, hint):
    with pytest.raises(ExerciseError) as info:
        ch13.check_separable_macs(wrong, SEPARABLE)
    assert hint in info.value.hint


@pytest.mark.parametrize("wrong, hint", [
    (9 * 32 + 32 * 64, "multiply by the 196 positions"),
    (196 * (9 * 32 * 32 + 32 * 64), "each channel on its own"),
    (196 * (9 * 64 + 32 * 64), "C_in = 32 input channels"),
    (196 * 9 * 32, "add the pointwise"),
    (196 * 32 * 64, "add the depthwise"),
    (STANDARD, "depthwise then pointwise"),
])
def test_separable_wrong_separable(wrong, hint):
    with pytest.raises(ExerciseError) as info:
        ch13.check_separable_macs(STANDARD, wrong)
    assert hint in info.value.hint


def test_unanswered():
    with pytest.raises(ExerciseError, match="no answer"):
        ch13.check_svd_cost(None, BREAK_EVEN)
    assert ch13.check_separable_macs(STANDARD, ...).startswith("Not attempted yet")
