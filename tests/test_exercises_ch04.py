"""Checkers of notebook 04: each passes the solution and fails a wrong answer with a hint."""
import numpy as np
import pytest

from labkit import kernels
from labkit.exercises import ExerciseError, ch04

X = np.array([3, 0, 7, 2])
W = np.array([[1, -2, 3, 0], [-1, 1, 1, 4]])
ZX = 5


def test_quantize_multiplier_solution_and_agreement_with_kernels():
    # 0.0037 = 0.9472 · 2^-8 → m = round(0.9472 · 2^31)
    m = round(0.0037 * 2**8 * 2**31)
    assert ch04.check_quantize_multiplier(0.0037, (m, -8)).startswith("✓")
    for real in (0.0037, 0.5, 0.75, 1.0, 3.0, 2**-20, 0.999999999999):
        assert ch04.expected_multiplier(real) == tuple(kernels.quantize_multiplier(real))


@pytest.mark.parametrize("wrong, hint", [((1, -8), r"2\^30"), ((round(0.0037 * 2**39), 8), "−n"),
                                         ((round(0.0037 * 2**39), -7), "exponent"), (5, "pair")])
def test_quantize_multiplier_wrong(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        ch04.check_quantize_multiplier(0.0037, wrong)


def test_zero_point_correction():
    assert ch04.check_zero_point_correction(X, ZX, W, ZX * W.sum(axis=1)).startswith("✓")
    with pytest.raises(ExerciseError, match="row sums"):
        ch04.check_zero_point_correction(X, ZX, W, W.sum(axis=1))
    with pytest.raises(ExerciseError, match="correction term itself"):
        ch04.check_zero_point_correction(X, ZX, W, (X - ZX) @ W.T)
    with pytest.raises(ExerciseError):
        ch04.check_zero_point_correction(X, ZX, W, None)


def test_requantize_solution_matches_kernels():
    rng = np.random.default_rng(0)
    for _ in range(200):
        acc = int(rng.integers(-2**20, 2**20))
        m, shift = kernels.quantize_multiplier(float(rng.uniform(1e-5, 0.1)))
        z = int(rng.integers(0, 256))
        relu = bool(rng.integers(0, 2))
        got = int(kernels.requantize(np.array([[acc]], np.int32), m, shift, z, relu)[0, 0])
        assert ch04.expected_requantize(acc, m, shift, z, relu) == got
    m, shift = kernels.quantize_multiplier(0.0123)
    out = ch04.expected_requantize(5000, m, shift, 10)
    assert ch04.check_requantize(5000, m, shift, 10, out).startswith("✓")


@pytest.mark.parametrize("delta, hint", [(-10, "zero point"), (0.4, "integer code"), (300, "uint8")])
def test_requantize_wrong(delta, hint):
    m, shift = kernels.quantize_multiplier(0.0123)
    out = ch04.expected_requantize(5000, m, shift, 10)
    with pytest.raises(ExerciseError, match=hint):
        ch04.check_requantize(5000, m, shift, 10, out + delta)


def test_fc_intensity_solution_and_known_mistakes():
    n, k = 120, 400
    right = tuple(2 * b * n * k / (n * k + b * k + b * n) for b in (1, 256))
    assert abs(right[0] - 1.9789) < 1e-3 and abs(right[1] - 135.69) < 1e-2
    assert ch04.check_fc_intensity(k, n, (1, 256), right).startswith("✓")
    assert ch04.check_fc_intensity(k, n, (1, 256), list(right)).startswith("✓")
    mistakes = {"two operations": tuple(v / 2 for v in right),
                "one byte per value": tuple(v / 4 for v in right),
                "activations too": (2.0, 512.0),
                "once per batch": (right[0], 2 * n * k / (n * k + k + n)),
                "one intensity per batch": 1.98}
    for hint, wrong in mistakes.items():
        with pytest.raises(ExerciseError, match=hint):
            ch04.check_fc_intensity(k, n, (1, 256), wrong)
    with pytest.raises(ExerciseError, match="expected intensities"):
        ch04.check_fc_intensity(k, n, (1, 256), (right[0], right[1] * 1.1))
    with pytest.raises(ExerciseError):
        ch04.check_fc_intensity(k, n, (1, 256), None)
