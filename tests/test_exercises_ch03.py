"""Checkers of notebook 03: each passes the solution and fails wrong answers with a hint."""
import math

import numpy as np
import pytest
import torch

from labkit.exercises import ExerciseError, ch03
from labkit.quant import fold_batchnorm, make_observer

# Exercise 1, worked out by hand: min/max sees [-0.4, 3.1]; the moving average (c = 0.5) moves from
# the first batch's [-0.4, 1.9] halfway to the second's [0.1, 3.1]: [-0.15, 2.5].
MM_SCALE, MM_ZERO = 3.5 / 255, 29          # round(0.4 / (3.5/255)) = round(29.14)
EMA_SCALE, EMA_ZERO = 2.65 / 255, 14       # round(0.15 / (2.65/255)) = round(14.43)


def test_exercise1_hand_answer_matches_labkit_observers():
    expected = {"minmax": (MM_SCALE, MM_ZERO), "moving_average": (EMA_SCALE, EMA_ZERO)}
    for name, kwargs in (("minmax", {}), ("moving_average", {"averaging_constant": 0.5})):
        observer = make_observer(name, bits=8, **kwargs)
        for batch in ch03.EX1_BATCHES:
            observer(torch.tensor(batch))
        qp = observer.calculate_qparams()
        assert qp.scale.item() == pytest.approx(expected[name][0], rel=1e-6)
        assert qp.zero_point.item() == expected[name][1]


def test_exercise1_solution_passes():
    line = ch03.check_observer_qparams(MM_SCALE, MM_ZERO, EMA_SCALE, EMA_ZERO)
    assert line.startswith("✓") and "z = 29" in line and "z = 14" in line
    assert ch03.check_observer_qparams(np.float32(MM_SCALE), torch.tensor(29), EMA_SCALE, 14.0).startswith("✓")


@pytest.mark.parametrize("answer, hint", [
    ((3.5 / 256, MM_ZERO, EMA_SCALE, EMA_ZERO), "divide by 2^b − 1 = 255"),
    ((3.0 / 255, MM_ZERO, EMA_SCALE, EMA_ZERO), "every* batch"),
    ((2.3 / 255, MM_ZERO, EMA_SCALE, EMA_ZERO), "running extremes"),
    ((3.1 / 255, MM_ZERO, EMA_SCALE, EMA_ZERO), "negative minimum"),
    ((MM_SCALE, -29, EMA_SCALE, EMA_ZERO), "z is positive"),
    ((MM_SCALE, 30, EMA_SCALE, EMA_ZERO), "not up"),
    ((MM_SCALE, MM_ZERO, MM_SCALE, EMA_ZERO), "only moves halfway"),
    ((MM_SCALE, MM_ZERO, 3.1 / 255, EMA_ZERO), "last batch alone"),      # [0.1, 3.1] widened to [0, 3.1]
    ((MM_SCALE, MM_ZERO, 2.3 / 255, EMA_ZERO), "first batch alone"),
    ((MM_SCALE, MM_ZERO, EMA_SCALE, 15), "moving-average lo"),
])
def test_exercise1_fails_on_wrong_answers(answer, hint):
    with pytest.raises(ExerciseError) as info:
        ch03.check_observer_qparams(*answer)
    assert hint in info.value.hint


def test_exercise1_unanswered():
    with pytest.raises(ExerciseError, match="no answer yet"):
        ch03.check_observer_qparams(None, 29, 0.01, 14)
    assert ch03.check_observer_qparams(MM_SCALE, ..., EMA_SCALE, EMA_ZERO).startswith("Not attempted yet")


def test_exercise1_rejects_non_numbers():
    with pytest.raises(ExerciseError, match="finite number"):
        ch03.check_observer_qparams("0.0137", 29, EMA_SCALE, EMA_ZERO)


# --- exercise 2 ------------------------------------------------------------------------------------

def _hand_folded():
    """The solution, written out from the constants: σ = sqrt(var + eps), factor = γ/σ."""
    factors = [g / math.sqrt(v + ch03.EX2_EPS) for g, v in zip(ch03.EX2_GAMMA, ch03.EX2_VAR)]
    w = torch.tensor(ch03.EX2_WEIGHT).unsqueeze(1) * torch.tensor(factors).reshape(-1, 1, 1, 1)
    b = torch.tensor([(b - m) * f + beta for b, m, f, beta in
                      zip(ch03.EX2_BIAS, ch03.EX2_MEAN, factors, ch03.EX2_BETA)])
    return w, b


def test_exercise2_hand_answer_matches_labkit_fold():
    conv, bn = ch03.tiny_conv_bn()
    folded = fold_batchnorm(torch.nn.Sequential(conv, bn))[0]
    w, b = _hand_folded()
    assert torch.allclose(folded.weight, w, rtol=1e-5) and torch.allclose(folded.bias, b, rtol=1e-5)


def test_exercise2_solution_passes():
    w, b = _hand_folded()
    assert ch03.check_folded_bn(w, b).startswith("✓ folded conv = bn(conv(x))")
    assert ch03.check_folded_bn(w.numpy().tolist(), b.numpy()).startswith("✓")


def _variants():
    gamma, beta = torch.tensor(ch03.EX2_GAMMA), torch.tensor(ch03.EX2_BETA)
    mean, var = torch.tensor(ch03.EX2_MEAN), torch.tensor(ch03.EX2_VAR)
    weight, bias = torch.tensor(ch03.EX2_WEIGHT).unsqueeze(1), torch.tensor(ch03.EX2_BIAS)
    sigma = torch.sqrt(var + ch03.EX2_EPS)
    w_ok, b_ok = _hand_folded()

    def per_channel(factor):
        return weight * factor.reshape(-1, 1, 1, 1)
    return [
        ((per_channel(gamma / torch.sqrt(var)), b_ok), "eps matters"),
        ((per_channel(gamma / (var + ch03.EX2_EPS)), b_ok), "not by the variance"),
        ((per_channel(sigma / gamma), b_ok), "not σ/γ"),
        ((per_channel(gamma), b_ok), "multiplying by γ"),
        ((weight, b_ok), "scaled by γ_c / sqrt(var_c + eps)"),
        ((w_ok, bias * gamma / sigma - mean + beta), "subtract μ *before* scaling"),
        ((w_ok, (bias - mean) * gamma / sigma), "add β at the end"),
        ((w_ok, bias * gamma / sigma + beta), "running mean μ must be subtracted"),
        ((w_ok, -mean * gamma / sigma + beta), "the conv has a bias b"),
        ((w_ok, (bias - mean) * gamma / torch.sqrt(var) + beta), "in the bias too"),
    ]


@pytest.mark.parametrize("index", range(10))
def test_exercise2_fails_on_wrong_answers(index):
    (w, b), hint = _variants()[index]
    with pytest.raises(ExerciseError) as info:
        ch03.check_folded_bn(w, b)
    assert hint in info.value.hint


def test_exercise2_checks_shapes_and_placeholders():
    w, b = _hand_folded()
    with pytest.raises(ExerciseError, match="shape"):
        ch03.check_folded_bn(w.squeeze(1), b)
    with pytest.raises(ExerciseError, match="no answer yet"):
        ch03.check_folded_bn(w, None)
    with pytest.raises(ExerciseError, match="tensor or nested list"):
        ch03.check_folded_bn("w", b)


# --- exercise 3 ------------------------------------------------------------------------------------

def test_exercise3_outcomes_are_what_the_question_says():
    outcomes = ch03.observer_outcomes()
    assert outcomes["minmax"]["clipped"] == 0.0 and outcomes["minmax"]["hi"] == pytest.approx(50.0)
    assert outcomes["percentile"]["clipped"] > 0 and outcomes["percentile"]["hi"] < 1.1
    assert outcomes["percentile"]["mse"] < outcomes["minmax"]["mse"]


def test_exercise3_solution_passes():
    assert ch03.check_clipping_prediction("percentile", "percentile").startswith("✓ min/max: hi = 50.00")


@pytest.mark.parametrize("answer, match", [
    (("minmax", "percentile"), "never clips"),
    (("percentile", "minmax"), "rounded to 0 or to one level"),
])
def test_exercise3_fails_on_wrong_answers(answer, match):
    with pytest.raises(ExerciseError) as info:
        ch03.check_clipping_prediction(*answer)
    assert match in info.value.hint


@pytest.mark.parametrize("answer, match", [((None, "minmax"), "no answer yet"), (("mse", "minmax"), "one of")])
def test_exercise3_rejects_unknown_or_missing_answers(answer, match):
    with pytest.raises(ExerciseError, match=match):
        ch03.check_clipping_prediction(*answer)
