"""requantize and quantize_multiplier: the reference checked from first principles (exact rational
arithmetic), then every code path checked against the reference."""
import math
from fractions import Fraction

import numpy as np
import pytest

from labkit import kernels
from labkit.kernels import reference

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def round_half_up(q: Fraction) -> int:
    return math.floor(q + Fraction(1, 2))


def round_half_away(q: Fraction) -> int:
    return int(math.copysign(math.floor(abs(q) + Fraction(1, 2)), q))


def first_principles(acc: int, m: int, shift: int, zero_point: int, relu: bool) -> int:
    """reference.py step 4 with exact rationals: saturate(acc*2^left), round x*m/2^31 with ties
    up, then divide by 2^right rounding ties away from zero, add z, clamp."""
    left, right = max(shift, 0), max(-shift, 0)
    x = min(max(acc * 2**left, INT32_MIN), INT32_MAX)
    h = round_half_up(Fraction(x * m, 2**31))
    q = round_half_away(Fraction(h, 2**right))
    return min(max(q + zero_point, zero_point if relu else 0), 255)


def random_multipliers(rng, n):
    return rng.integers(2**30, 2**31, size=n).astype(np.int32)


def test_reference_matches_first_principles(rng):
    cases = [(INT32_MIN, 2**31 - 1, 0), (INT32_MAX, 2**31 - 1, 0), (INT32_MIN, 2**30, -31),
             (-(2**30), 2**30, 0), (2**30, 2**30, 0), (-3, 2**30, -1), (3, 2**30, -1), (-1, 2**30, 1),
             (INT32_MAX, 2**31 - 1, 30), (INT32_MIN, 2**31 - 1, 30), (12345, 1, -31)]
    for _ in range(3000):
        scale = int(rng.integers(0, 32))
        cases.append((int(rng.integers(-(2**scale), 2**scale)), int(rng.integers(1, 2**31)),
                      int(rng.integers(-31, 31))))
    for acc, m, shift in cases:
        for zero_point, relu in ((0, False), (128, True), (255, False)):
            got = reference.requantize(np.array([acc], np.int32), m, shift, zero_point, relu)[0]
            assert got == first_principles(acc, m, shift, zero_point, relu), (acc, m, shift, zero_point, relu)


def test_high_mul_ties_go_up_and_pot_ties_away():
    x = np.array([2**30, -(2**30), 3 * 2**30, -3 * 2**30], dtype=np.int64)  # x*m/2^31 = ±0.5, ±1.5
    np.testing.assert_array_equal(reference.saturating_rounding_doubling_high_mul(x, np.int64(1)), [1, 0, 2, -1])
    h = np.array([3, -3, 1, -1, 5, -5], dtype=np.int64)
    np.testing.assert_array_equal(reference.rounding_divide_by_pot(h, np.int64(1)), [2, -2, 1, -1, 3, -3])


def test_random_per_tensor(isa, rng):
    for _ in range(1000):
        rows, cols = rng.integers(1, 24, size=2)
        acc = rng.integers(-(2**int(rng.integers(1, 32))), 2**31, size=(rows, cols)).astype(np.int32)
        m, shift = int(rng.integers(1, 2**31)), int(rng.integers(-31, 31))
        zero_point, relu = int(rng.integers(0, 256)), bool(rng.integers(0, 2))
        np.testing.assert_array_equal(kernels.requantize(acc, m, shift, zero_point, relu),
                                      reference.requantize(acc, m, shift, zero_point, relu))


def test_random_per_channel(isa, rng):
    for _ in range(1000):
        rows, cols = rng.integers(1, 40, size=2)
        acc = rng.integers(-(2**20), 2**20, size=(rows, cols)).astype(np.int32)
        m = random_multipliers(rng, cols)
        shift = rng.integers(-20, 3, size=cols).astype(np.int32)
        zero_point, relu = int(rng.integers(0, 256)), bool(rng.integers(0, 2))
        np.testing.assert_array_equal(kernels.requantize(acc, m, shift, zero_point, relu),
                                      reference.requantize(acc, m, shift, zero_point, relu))


def test_every_shift_and_extreme_accumulator(isa):
    acc = np.array([[INT32_MIN, INT32_MIN + 1, -(2**30), -65536, -255, -1, 0, 1, 255, 65536, 2**30,
                     INT32_MAX - 1, INT32_MAX]], dtype=np.int32)
    for shift in range(-31, 31):
        for m in (1, 2**30, 1518500250, 2**31 - 1):
            for zero_point, relu in ((0, False), (37, True), (255, False)):
                np.testing.assert_array_equal(kernels.requantize(acc, m, shift, zero_point, relu),
                                              reference.requantize(acc, m, shift, zero_point, relu))


def test_relu_clamps_at_the_zero_point(isa):
    acc = np.arange(-100, 100, dtype=np.int32).reshape(2, 100)
    out = kernels.requantize(acc, 2**30, 1, 50, relu=True)   # M = 1.0
    assert out.min() == 50 and out.max() == 149


def test_one_dimensional_accumulator(isa):
    acc = np.array([-5, 0, 5, 1000], dtype=np.int32)
    np.testing.assert_array_equal(kernels.requantize(acc, 2**30, -1, 10), reference.requantize(acc, 2**30, -1, 10))


# ---- quantize_multiplier ----------------------------------------------------------------------
def check_multiplier(real: float):
    m, shift = kernels.quantize_multiplier(real)
    assert (m, shift) == reference.quantize_multiplier(real)
    assert 2**30 <= m < 2**31 and -31 <= shift <= 30
    # From first principles: m is real * 2^(31 - shift) rounded half away from zero, where the
    # exponent comes from frexp (or one more when the fraction rounds up to 1).
    fraction, exponent = math.frexp(real)
    exact = Fraction(real) * 2**(31 - exponent)
    expected = round_half_away(exact)
    if expected == 2**31:
        expected, exponent = 2**30, exponent + 1
    assert (m, shift) == (expected, exponent)
    assert abs(Fraction(m) * Fraction(2)**(shift - 31) - Fraction(real)) <= Fraction(2)**(shift - 32)


@pytest.mark.parametrize("real", [2**-32, 1e-9, 1e-6, 0.000123, 0.5, 0.75, 1 - 2**-40, 1 - 1e-12,
                                  1.0, 1 + 1e-12, 1.5, 3.0, 255.0, 2**29, 2**30 - 0.5])
def test_quantize_multiplier_chosen_values(real):
    check_multiplier(real)


def test_quantize_multiplier_random(rng):
    for exponent in rng.uniform(-32, 30, size=1000):
        check_multiplier(float(2.0**exponent))


def test_quantize_multiplier_rounds_up_to_the_next_power_of_two():
    assert kernels.quantize_multiplier(1 - 2**-40) == (2**30, 1)
    assert kernels.quantize_multiplier(1.0) == (2**30, 1)
    assert kernels.quantize_multiplier(0.5) == (2**30, 0)


@pytest.mark.parametrize("real", [0.0, -1.0, float("nan"), float("inf"), 2**-40, 2**30 - 2**-3, 2**30, 1e12])
def test_quantize_multiplier_refuses(real):
    with pytest.raises(ValueError, match="real_multiplier"):
        kernels.quantize_multiplier(real)
    with pytest.raises(ValueError, match="real_multiplier"):
        reference.quantize_multiplier(real)


def test_quantize_multiplier_type():
    with pytest.raises(TypeError, match="real_multiplier"):
        kernels.quantize_multiplier("0.5")


def test_any_number_of_leading_axes(isa, rng):
    acc = rng.integers(-2**20, 2**20, size=(2, 3, 5)).astype(np.int32)
    multiplier = rng.integers(2**30, 2**31, size=5).astype(np.int32)
    got = kernels.requantize(acc, multiplier, -12, 4)
    assert got.shape == (2, 3, 5)
    np.testing.assert_array_equal(got, reference.requantize(acc, multiplier, -12, 4))


def unaligned_copy(array: np.ndarray) -> np.ndarray:
    """The same values in an array one byte off its dtype's alignment (numpy.frombuffer at offset 1)."""
    view = np.frombuffer(bytearray(array.nbytes + 1), dtype=array.dtype, count=array.size, offset=1)
    view = view.reshape(array.shape)
    view[...] = array
    assert not view.flags.aligned and view.flags.c_contiguous
    return view


def test_unaligned_arrays_are_accepted(isa, rng):
    """The wrapper copies unaligned arrays (the compiled module refuses them: test_errors.py)."""
    acc = rng.integers(-2**20, 2**20, size=(37, 11)).astype(np.int32)
    multiplier = random_multipliers(rng, 11)
    shift = rng.integers(-20, 0, size=11).astype(np.int32)
    expected = reference.requantize(acc, multiplier, shift, 3)
    got = kernels.requantize(unaligned_copy(acc), unaligned_copy(multiplier), unaligned_copy(shift), 3)
    np.testing.assert_array_equal(got, expected)
    x = rng.integers(0, 256, size=(5, 20), dtype=np.uint8)
    w = rng.integers(-128, 128, size=(11, 20), dtype=np.int8)
    bias = rng.integers(-5000, 5000, size=11).astype(np.int32)
    np.testing.assert_array_equal(kernels.qlinear(x, 7, w, unaligned_copy(bias), multiplier, shift, 3),
                                  reference.qlinear(x, 7, w, bias, multiplier, shift, 3))


def test_multiplier_error_prints_tiny_values_in_full():
    """quantize_multiplier(1e-40) names the value (std::to_string used to print 0.000000)."""
    with pytest.raises(ValueError, match=r"got 1e-40|got 9\.99999\d*e-41"):
        kernels.quantize_multiplier(1e-40)
    if kernels.api._ext is not None:
        with pytest.raises(ValueError, match=r"got 9\.99999\d*e-41|got 1e-40"):
            kernels.api._ext.quantize_multiplier(1e-40)
