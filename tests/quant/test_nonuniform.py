"""Power-of-two and logarithmic quantization against uniform at the same bit width."""
import math

import pytest
import torch

from labkit.quant import nonuniform as N


def is_power_of_two(v: torch.Tensor) -> torch.Tensor:
    mantissa, _ = torch.frexp(v.abs())
    return mantissa == 0.5


def test_pow2_levels_count_and_values():
    levels = N.pow2_levels(3, 0)
    assert levels.tolist() == [-1.0, -0.5, -0.25, 0.0, 0.25, 0.5, 1.0]
    assert N.pow2_levels(5, -2).numel() == 2 ** 5 - 1


def test_pow2_values_are_powers_of_two_by_hand():
    x = torch.tensor([0.3, -0.7, 0.01, 1.6, 0.13, 0.0, -0.2])
    # max|x| = 1.6 -> k_max = round(log2 1.6) = 1; 3 bits -> magnitudes {2, 1, 0.5} and 0
    q = N.pow2_quantize(x, 3)
    assert q.tolist() == [0.5, -0.5, 0.0, 2.0, 0.0, 0.0, -0.0]
    # log-domain rounding: 0.7 -> round(log2 0.7 = -0.51) = -1 -> 0.5;  1.6 -> 2
    assert N.pow2_quantize(x, 3, rounding="log").tolist()[:4] == [0.5, -0.5, 0.0, 2.0]
    y = torch.randn(5000)
    for bits in (2, 4, 8):
        for rounding in ("nearest", "log"):
            qy = N.pow2_quantize(y, bits, rounding=rounding)
            nz = qy[qy != 0]
            assert is_power_of_two(nz).all()
            assert qy.unique().numel() <= 2 ** bits - 1
            assert (torch.sign(qy[qy != 0]) == torch.sign(y[qy != 0])).all()


def test_pow2_nearest_is_nearest_level():
    y = torch.randn(2000)
    q = N.pow2_quantize(y, 4, max_exponent=1)
    levels = N.pow2_levels(4, 1)
    brute = levels[(y[:, None] - levels[None, :]).abs().argmin(1)]
    assert torch.equal(q, brute)


def test_log_quantize_levels_anchor_at_max():
    x = torch.tensor([0.8, -0.4, 0.21, 0.05])
    q = N.log_quantize(x, 3)          # levels 0, ±0.8 · {1, 1/2, 1/4}
    assert torch.allclose(q, torch.tensor([0.8, -0.4, 0.2, 0.0]))
    q2 = N.log_quantize(torch.randn(1000), 4, base=math.sqrt(2))
    mags = q2[q2 != 0].abs().unique()
    ratios = mags[1:] / mags[:-1]
    assert torch.allclose(ratios, torch.full_like(ratios, math.sqrt(2)), atol=1e-5)


def test_uniform_quantize_matches_formula():
    x = torch.tensor([-1.0, -0.4, 0.1, 0.55, 0.7])
    # 3 bits: qmax = 3, s = 1/3
    assert torch.allclose(N.uniform_quantize(x, 3), torch.tensor([-1.0, -1 / 3, 0.0, 2 / 3, 2 / 3]))


def test_error_metrics_and_comparison():
    x = torch.tensor([1.0, -2.0, 0.5, 0.0])
    q = torch.tensor([1.0, -2.0, 0.0, 0.0])
    err = N.quantization_error(x, q)
    assert err["mse"] == pytest.approx(0.0625)
    assert err["sqnr_db"] == pytest.approx(10 * math.log10(5.25 / 0.25))
    assert err["max_abs"] == pytest.approx(0.5)
    assert err["rel_error"] == pytest.approx(1 / 3)
    assert N.quantization_error(x, x)["sqnr_db"] == math.inf
    # one SQNR and one MSE in labkit: the non-uniform report is affine's functions
    from labkit.quant import affine
    assert err["sqnr_db"] == affine.sqnr_db(x, q) and err["mse"] == affine.mse(x, q)
    assert N.quantization_error(torch.zeros(3), torch.ones(3))["sqnr_db"] == -math.inf

    g = torch.Generator().manual_seed(0)
    laplace = torch.distributions.Laplace(0.0, 1.0)
    torch.manual_seed(0)
    lap = laplace.sample((20000,))
    gauss = torch.randn(20000, generator=g)
    for x in (gauss, lap):
        table = N.compare_quantizers(x, 3)
        assert set(table) == {"uniform", "pow2", "log2", "log_sqrt2"}
        # at 3 bits, dense levels near zero beat uniform steps on bell-shaped weights ...
        assert table["pow2"]["sqnr_db"] > table["uniform"]["sqnr_db"]
        assert table["pow2"]["rel_error"] < table["uniform"]["rel_error"]
    # ... but power-of-two levels double at each step: SQNR saturates while uniform keeps gaining ~6 dB/bit
    hi = N.compare_quantizers(gauss, 8)
    assert hi["uniform"]["sqnr_db"] > hi["pow2"]["sqnr_db"] + 10
    assert N.compare_quantizers(gauss, 8)["pow2"]["sqnr_db"] == pytest.approx(
        N.compare_quantizers(gauss, 6)["pow2"]["sqnr_db"], abs=0.5)


def test_bad_inputs():
    x = torch.randn(10)
    for bits in (1, 9):
        with pytest.raises(ValueError, match="bits"):
            N.pow2_quantize(x, bits)
        with pytest.raises(ValueError, match="bits"):
            N.log_quantize(x, bits)
    with pytest.raises(TypeError, match="bits"):
        N.uniform_quantize(x, 4.0)
    with pytest.raises(ValueError, match="x must contain only finite"):
        N.pow2_quantize(torch.tensor([1.0, float("inf")]), 4)
    with pytest.raises(ValueError, match="x must not be empty"):
        N.log_quantize(torch.empty(0), 4)
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        N.pow2_quantize([0.5], 4)
    with pytest.raises(ValueError, match="rounding"):
        N.pow2_quantize(x, 4, rounding="up")
    with pytest.raises(ValueError, match="base"):
        N.log_quantize(x, 4, base=1.0)
    with pytest.raises(ValueError, match="x_quantized must have the shape"):
        N.quantization_error(x, x[:5])


BIT_TAKERS = {  # every public function of the module with a bit width, called with bits=b
    "pow2_levels": lambda b: N.pow2_levels(b, 0),
    "pow2_quantize": lambda b: N.pow2_quantize(torch.randn(10), b),
    "log_levels": lambda b: N.log_levels(b, 1.0),
    "log_quantize": lambda b: N.log_quantize(torch.randn(10), b),
    "uniform_quantize": lambda b: N.uniform_quantize(torch.randn(10), b),
    "compare_quantizers": lambda b: N.compare_quantizers(torch.randn(10), b),
}


@pytest.mark.parametrize("name", sorted(BIT_TAKERS))
def test_bit_width_range_2_to_8_is_documented_and_named_in_the_error(name):
    call = BIT_TAKERS[name]
    assert "[2, 8]" in getattr(N, name).__doc__
    call(2)  # both ends of the range are accepted
    call(8)
    for bits in (1, 9):
        with pytest.raises(ValueError, match=r"bits must be an integer in \[2, 8\]"):
            call(bits)


def test_pow2_of_tiny_float64_values_uses_levels_that_small():
    # before: "max_exponent must be an integer in [-126, 127], got -166" for an argument never passed
    x = torch.tensor([1e-50, -3e-50, 0.0], dtype=torch.float64)
    q = N.pow2_quantize(x, bits=4)
    assert q.dtype == torch.float64 and q[2] == 0
    # k_max = round(log2 3e-50) = -165: -3e-50 is clipped to -2^-165, 1e-50 goes to its nearest level 2^-166
    assert q[0] == 2.0 ** -166 and q[1] == -(2.0 ** -165)
    huge = N.pow2_quantize(torch.tensor([1e308, 3.0], dtype=torch.float64), bits=8)
    assert huge[0] == 2.0 ** 1023  # round(log2 1e308) = 1023, the largest float64 exponent
    tiny32 = torch.tensor([1e-40, -2e-40])  # float32 subnormals: exponent -133
    assert torch.equal(N.pow2_quantize(tiny32, 4).abs().log2(), torch.tensor([-133.0, -132.0]))
    with pytest.raises(ValueError, match=r"^max_exponent must be an integer in \[-149, 127\], got 200"):
        N.pow2_quantize(torch.ones(3), 4, max_exponent=200)
