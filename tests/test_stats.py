"""labkit.stats: Wilson intervals, seed intervals and paired differences, against hand-worked values."""
import math

import numpy as np
import pytest
import torch

from labkit import stats, train


def test_wilson_interval_matches_the_formula_and_statsmodels_values():
    # 98 of 100 at 95 %: z = 1.959964; the Wilson interval is [0.92999, 0.99450] (statsmodels'
    # proportion_confint(98, 100, method="wilson") gives the same to 5 digits).
    e = stats.accuracy_interval(98, 100)
    assert e.value == 0.98 and e.n == 100
    assert math.isclose(e.low, 0.92999, abs_tol=1e-5) and math.isclose(e.high, 0.99450, abs_tol=1e-5)
    # per-image results give the same interval as the count
    results = np.r_[np.ones(98, bool), np.zeros(2, bool)]
    assert stats.accuracy_interval(results) == e
    assert stats.accuracy_interval(torch.tensor(results)) == e


def test_wilson_interval_stays_inside_zero_one_and_shrinks_with_n():
    top = stats.accuracy_interval(100, 100)
    assert top.high == 1.0 and 0.95 < top.low < 1.0
    assert stats.accuracy_interval(0, 10).low == 0.0
    small, large = stats.accuracy_interval(99, 100), stats.accuracy_interval(9900, 10000)
    assert large.half_width < small.half_width / 5
    # one MNIST test image is 0.01 points; a 99 % accuracy is known to about +-0.2 points
    assert 0.0015 < large.half_width < 0.0025


def test_seed_interval_is_mean_plus_minus_t_std_over_root_n():
    e = stats.seed_interval([0.97, 0.98, 0.99])
    assert math.isclose(e.value, 0.98) and math.isclose(e.std, 0.01)
    half = 4.302652729911275 * 0.01 / math.sqrt(3)          # t_{0.975, 2}
    assert math.isclose(e.high - e.value, half, rel_tol=1e-9) and e.n == 3


def test_paired_difference_counts_only_discordant_images():
    a = np.ones(10_000, bool)
    b = a.copy()
    a[:30] = False          # A wrong on 30 images
    b[10:25] = False        # B wrong on 15 of those
    d = stats.paired_difference(a, b)
    assert math.isclose(d.value, 15 / 10_000)
    half = 1.959963984540054 * math.sqrt(15 - 10_000 * (15 / 10_000) ** 2) / 10_000
    assert math.isclose(d.high - d.value, half, rel_tol=1e-9)
    assert d.resolved and "B beats A" in stats.describe_difference("A", "B", d)
    same = stats.paired_difference(a, a)
    assert same.value == 0 and not same.resolved
    assert "not resolved" in stats.describe_difference("A", "A", same)


def test_a_difference_of_two_images_is_not_resolved():
    a = np.ones(359, bool)
    b = a.copy()
    a[:3] = False
    b[:1] = False           # B gets 2 more of 359 right: +0.56 points, but only 2 discordant images
    d = stats.paired_difference(a, b)
    assert math.isclose(d.value, 2 / 359) and not d.resolved


def test_estimates_print_in_points():
    e = stats.accuracy_interval(9837, 10_000)
    assert str(e) == "98.37 % [98.10, 98.60]"
    d = stats.Estimate(0.0012, -0.0005, 0.0029, 10_000, "paired")
    assert d.signed_points() == "+0.12 pt [-0.05, +0.29]"


def test_correct_gives_per_image_results_that_evaluate_averages():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    x, y = torch.randn(50, 1, 2, 2), torch.randint(0, 3, (50,))
    results = train.correct(model, (x, y))
    assert results.dtype == torch.bool and results.shape == (50,)
    assert math.isclose(results.float().mean().item(), train.evaluate(model, (x, y)))
    assert torch.equal(results, model(x).argmax(1) == y)


@pytest.mark.parametrize("call, error, word", [
    (lambda: stats.accuracy_interval(5), ValueError, "correct"),
    (lambda: stats.accuracy_interval(11, 10), ValueError, "correct"),
    (lambda: stats.accuracy_interval(5, 0), ValueError, "n"),
    (lambda: stats.accuracy_interval(5, 10, confidence=1.0), ValueError, "confidence"),
    (lambda: stats.accuracy_interval(np.array([0, 2, 1])), ValueError, "correct"),
    (lambda: stats.seed_interval([0.9]), ValueError, "values"),
    (lambda: stats.seed_interval([0.9, float("nan")]), ValueError, "values"),
    (lambda: stats.paired_difference([1, 0], [1, 0, 1]), ValueError, "correct_a and correct_b"),
    (lambda: stats.paired_difference([], []), ValueError, "correct_a"),
])
def test_bad_arguments_are_named(call, error, word):
    with pytest.raises(error, match=word):
        call()


def test_paired_over_seeds_pairs_each_seed_and_averages_the_differences():
    a = {0: np.array([1, 1, 0, 0, 1] * 20, bool), 1: np.array([1, 0, 0, 1, 1] * 20, bool)}
    b = {1: np.array([1, 1, 1, 1, 1] * 20, bool), 0: np.array([1, 1, 1, 0, 1] * 20, bool)}   # order does not matter
    per_seed, over = stats.paired_over_seeds(a, b)
    assert [round(d.value, 6) for d in per_seed] == [0.2, 0.4]                              # seed 0, then seed 1
    assert per_seed[0] == stats.paired_difference(a[0], b[0])
    assert over.value == pytest.approx(0.3) and over == stats.seed_interval([0.2, 0.4])
    listed, _ = stats.paired_over_seeds([a[0], a[1]], [b[0], b[1]])
    assert listed == per_seed
    with pytest.raises(ValueError, match="same seeds"):
        stats.paired_over_seeds(a, {0: b[0], 2: b[1]})
    with pytest.raises(TypeError, match="both be dicts"):
        stats.paired_over_seeds(a, [b[0], b[1]])
    with pytest.raises(ValueError, match="at least 2 measurements"):
        stats.paired_over_seeds([a[0]], [b[0]])
