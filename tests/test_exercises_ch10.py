"""Checkers of notebook 10: each passes the solution and fails wrong answers with a pointed hint."""
import numpy as np
import pytest
import torch
from torch import nn

from labkit import prune
from labkit.exercises import ExerciseError, ch10

# Worked by hand. Ex. 1: last pruning step 1,400, τ = 0.4: s = 0.9·(1 − 0.6³) = 0.7056;
# slope at 1,450 (τ = 0.45): 3·0.9/1000·0.55² = 8.1675e-4 per step.
SPARSITY, SLOPE = 0.7056, 8.1675e-4
# Ex. 2: fc3 1000 → 900 → 810 → 729 → 656 → 590; fc1/fc2 keep 0.8 per round with rounding.
FC3, FRACTION = 590, 87_490 / 266_200
# Ex. 3: loss per kB: conv2 0.5/80 = 0.00625, fc1 0.2/30 = 0.00667, fc2 2.0/200 = 0.01.
CHOSEN, RATIO = "conv2", 0.00625


def test_solutions_pass():
    assert ch10.check_agp_step(SPARSITY, SLOPE)[2:].startswith("after step 1,450")
    assert ch10.check_imp_remaining(FC3, FRACTION)[2:].startswith("fc3 keeps 590")
    assert ch10.check_netadapt_choice(CHOSEN, RATIO)[2:].startswith("NetAdapt keeps conv2")
    assert ch10.check_agp_step(np.float64(SPARSITY), torch.tensor(SLOPE, dtype=torch.float64))[2:]
    assert ch10.check_imp_remaining(590.0, np.float32(FRACTION))[2:]


def test_independent_references_agree_with_labkit():
    schedule = prune.AGPSchedule(0.9, end=2000, start=1000, frequency=100)
    assert ch10.agp_reference() == pytest.approx((schedule.sparsity(1450), schedule.rate(1450)))
    assert ch10.agp_reference() == pytest.approx((SPARSITY, SLOPE))
    model = nn.Sequential(nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(), nn.Linear(100, 10))
    for _ in range(5):
        left = prune.prune_remaining(model, 0.2, layer_rates={"4": 0.1})
    assert round(left["4"] * 1000) == FC3 == ch10.imp_reference()[0]
    assert 1 - prune.sparsity(model)["global"] == pytest.approx(FRACTION) == pytest.approx(ch10.imp_reference()[1])
    assert ch10.netadapt_reference() == (CHOSEN, pytest.approx(RATIO))


@pytest.mark.parametrize("args, hint", [
    ((0.9 * (1 - 0.55 ** 3), SLOPE), "last one ≤ 1,450"),
    ((0.9 * 0.6 ** 3, SLOPE), "not s_f(1 − τ)³"),
    ((0.9 * (1 - 0.6 ** 2), SLOPE), "exponent is 3"),
    ((0.9, SLOPE), "not from step 0"),
    ((0.9 + 0.9 * 0.4 ** 3, SLOPE), "counts from the start step"),
    ((0.5, SLOPE), "s = s_f + (s_i − s_f)"),
    ((SPARSITY, SLOPE / 3), "factor 3"),
    ((SPARSITY, SLOPE * 1000), "divide by D"),
    ((SPARSITY, 0.0027 * 0.36), "not at the pruning step"),
    ((SPARSITY, 1.0), "ds/dt = 3(s_f − s_i)/D"),
    ((None, SLOPE), None),
    (("0.7", SLOPE), None),
    ((SPARSITY, [SLOPE, SLOPE]), "one number"),
])
def test_agp_step_wrong(args, hint):
    with pytest.raises(ExerciseError) as info:
        ch10.check_agp_step(*args)
    if hint:
        assert hint in str(info.value)


@pytest.mark.parametrize("args, hint", [
    ((328, FRACTION), "half the rate"),
    ((500, FRACTION), "of what *remains*"),
    ((600, FRACTION), "n ← n − round(0.1·n)"),
    ((590.5, FRACTION), "whole number"),
    ((FC3, 0.8 ** 5), "weight the layers by size"),
    ((FC3, 0.0), "multiplicative"),
    ((FC3, 100 * FRACTION), "not a percentage"),
    ((FC3, 0.33), "divide by 266,200"),
])
def test_imp_remaining_wrong(args, hint):
    with pytest.raises(ExerciseError) as info:
        ch10.check_imp_remaining(*args)
    assert hint in str(info.value)


@pytest.mark.parametrize("args, hint", [
    (("fc1", RATIO), "highest accuracy"),
    (("fc2", RATIO), "saves the most bytes"),
    (("conv9", RATIO), "layer name as a string"),
    ((2, RATIO), "layer name as a string"),
    ((CHOSEN, RATIO / 100), "accuracy *points*"),
    ((CHOSEN, RATIO * 1000), "per kB"),
    ((CHOSEN, 0.1), "80 kB saved"),
    ((None, RATIO), None),
])
def test_netadapt_choice_wrong(args, hint):
    with pytest.raises(ExerciseError) as info:
        ch10.check_netadapt_choice(*args)
    if hint:
        assert hint in str(info.value)
