"""labkit.quant.affine: scale/zero point, round trips, granularity, SQNR, seed 001 §4.1.2, bad input."""
import math

import pytest
import torch
from torch import nn

from labkit.quant import affine
from labkit.quant.affine import (dequantize, fake_quantize, grid_levels, mse, qparams_from_range, qrange,
                                 quantize, quantize_activation, quantize_tensor, quantize_weight, sqnr_db,
                                 weight_quantization_error)


def test_qrange_signed_and_unsigned():
    assert qrange(8, False) == (0, 255)
    assert qrange(8, True) == (-128, 127)
    assert qrange(1, True) == (-1, 0)
    assert qrange(4, False) == (0, 15)
    assert qrange(16, False) == (0, 65535)


def test_hand_example_asymmetric():
    # s = (3 - (-1)) / 255, z = 0 - round(-1 / s) = round(63.75) = 64
    qp = qparams_from_range(-1.0, 3.0, bits=8)
    assert qp.scale.item() == pytest.approx(4 / 255)
    assert qp.zero_point.item() == 64
    q = quantize(torch.tensor([-1.0, 0.0, 3.0, 10.0]), qp)
    assert q.dtype == torch.uint8
    assert q.tolist() == [0, 64, 255, 255]  # 10.0 is clipped to qmax


def test_hand_example_symmetric_signed_and_unsigned():
    qp = qparams_from_range(-2.0, 1.0, bits=8, symmetric=True, signed=True)
    assert qp.scale.item() == pytest.approx(2 / 127.5)  # torch.ao divides by (qmax - qmin) / 2
    assert qp.zero_point.item() == 0
    qp_u = qparams_from_range(-2.0, 1.0, bits=8, symmetric=True, signed=False)
    assert qp_u.zero_point.item() == 128 and qp_u.scale.item() == qp.scale.item()


@pytest.mark.parametrize("lo,hi", [(-1.3, 2.7), (2.0, 5.0), (-5.0, -2.0), (0.0, 0.0), (-0.1, 1e-3)])
@pytest.mark.parametrize("symmetric,signed", [(False, False), (False, True), (True, True), (True, False)])
def test_zero_is_exactly_representable(lo, hi, symmetric, signed):
    qp = qparams_from_range(lo, hi, bits=4, symmetric=symmetric, signed=signed)
    assert fake_quantize(torch.zeros(3), qp).eq(0).all()
    assert (grid_levels(qp) == 0).any()


def test_zero_width_range_uses_eps_not_a_crash():
    qp = qparams_from_range(0.0, 0.0, bits=8)
    assert qp.scale.item() == affine.FLOAT32_EPS and qp.zero_point.item() == 0
    x = torch.full((5,), 3.0)
    q, qp = quantize_tensor(x)  # min == max == 3: range widened to [0, 3]
    assert qp.scale.item() == pytest.approx(3 / 255)
    assert torch.allclose(dequantize(q, qp), x)


@pytest.mark.parametrize("bits", [1, 2, 4, 8, 12, 16])  # 1 bit: two levels, one of them 0
@pytest.mark.parametrize("granularity", ["tensor", "channel", "group"])
@pytest.mark.parametrize("symmetric,signed", [(False, False), (True, True), (False, True)])
def test_round_trip_error_at_most_half_a_step(bits, granularity, symmetric, signed):
    x = torch.randn(6, 4, 3, 3, generator=torch.Generator().manual_seed(bits)) * torch.arange(1, 7).reshape(6, 1, 1, 1)
    q, qp = quantize_tensor(x, bits, symmetric, signed, granularity, axis=0, group_size=12)
    assert q.shape == x.shape
    assert int(q.min()) >= qp.qmin and int(q.max()) <= qp.qmax
    err = (dequantize(q, qp) - x).abs()
    if granularity == "group":
        half = affine._ungrouped(qp.scale.unsqueeze(-1).expand(6, 3, 12), x, 0) / 2
    else:
        half = affine.broadcast_channels(qp.scale, x.dim(), qp.axis) / 2
    assert (err <= half + 1e-6 * x.abs() + 1e-7).all()  # float32 rounding of x/s aside
    assert torch.equal(fake_quantize(x, qp), dequantize(q, qp))


@pytest.mark.parametrize("bits", [1, 4, 8])
def test_per_group_along_axis_1(bits):
    # [6, 4, 3, 3] with axis=1: 4 channels of 6·3·3 = 54 values, cut into 3 groups of 18
    x = torch.randn(6, 4, 3, 3, generator=torch.Generator().manual_seed(bits)) * torch.arange(1, 5).reshape(1, 4, 1, 1)
    q, qp = quantize_tensor(x, bits, symmetric=False, granularity="group", axis=1, group_size=18)
    assert qp.scale.shape == (4, 3) and qp.axis == 1
    groups = x.movedim(1, 0).reshape(4, 3, 18)  # each group's own values, in memory order
    expected = qparams_from_range(groups.amin(dim=2), groups.amax(dim=2), bits)
    assert torch.equal(qp.scale, expected.scale) and torch.equal(qp.zero_point, expected.zero_point)
    err = (dequantize(q, qp) - x).movedim(1, 0).reshape(4, 3, 18).abs()
    assert (err <= qp.scale.unsqueeze(-1) / 2 + 1e-6 * groups.abs() + 1e-7).all()


def test_per_channel_axis_other_than_zero():
    x = torch.randn(3, 5) * torch.tensor([0.01, 0.1, 1.0, 10.0, 100.0])
    q, qp = quantize_tensor(x, 8, granularity="channel", axis=1)
    assert qp.scale.shape == (5,) and qp.axis == 1
    q_neg, qp_neg = quantize_tensor(x, 8, granularity="channel", axis=-1)
    assert torch.equal(q, q_neg) and torch.equal(qp.scale, qp_neg.scale)


def test_per_channel_beats_per_tensor_on_uneven_channels():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(16, 32, generator=g) * torch.logspace(-2, 1, 16).reshape(16, 1)
    per_tensor = quantize_weight(w, 4, "symmetric", "tensor")
    per_channel = quantize_weight(w, 4, "symmetric", "channel")
    assert per_channel.mse < per_tensor.mse / 2
    assert per_channel.sqnr_db > per_tensor.sqnr_db + 4

    def worst_channel_sqnr(r):
        return min(sqnr_db(w[c], r.dequantized[c]) for c in range(16))
    # one scale for all: the small channels fall below half a step and become all zeros (0 dB)
    assert worst_channel_sqnr(per_tensor) < 1.0
    assert worst_channel_sqnr(per_channel) > 15.0


def test_per_group_beats_per_channel_when_ranges_vary_inside_a_row():
    g = torch.Generator().manual_seed(1)
    w = torch.randn(8, 64, generator=g) * torch.logspace(-2, 0, 64)  # scale varies along the row
    per_channel = quantize_weight(w, 4, "asymmetric", "channel")
    per_group = quantize_weight(w, 4, "asymmetric", "group", group_size=16)
    assert per_group.qparams.scale.shape == (8, 4)
    assert per_group.sqnr_db > per_channel.sqnr_db + 3


@pytest.mark.parametrize("bits", [4, 6, 8, 10, 12])
def test_sqnr_follows_the_6_02_db_per_bit_rule(bits):
    x = torch.rand(200_000, generator=torch.Generator().manual_seed(bits)) * 2 - 1
    q, qp = quantize_tensor(x, bits)
    s = sqnr_db(x, dequantize(q, qp))
    # uniform data over the full range: SQNR = 20·log10(2^b - 1) ≈ 6.02·b dB
    assert s == pytest.approx(20 * math.log10(2 ** bits - 1), abs=0.15)
    assert s == pytest.approx(6.02 * bits, abs=0.6)


def test_sqnr_and_mse_edge_values():
    x = torch.tensor([1.0, -2.0])
    assert sqnr_db(x, x) == math.inf
    assert mse(x, x) == 0.0
    assert mse(x, torch.zeros(2)) == pytest.approx(2.5)
    assert sqnr_db(x, torch.zeros(2)) == pytest.approx(0.0)


def test_quantize_activation_seed_formula_hand_example():
    # [a, b] = [0, 1], k = 2: Δ = 1/3; 0.5/Δ = 1.5 rounds half to even → 2; 1.5 and -0.3 are clamped
    x = torch.tensor([0.0, 0.2, 0.5, 0.9, 1.5, -0.3])
    q, x_hat = quantize_activation(x, 0.0, 1.0, 2)
    assert q.tolist() == [0, 1, 2, 3, 3, 0]
    assert torch.allclose(x_hat, q.float() / 3)
    q, x_hat = quantize_activation(x, 0.5, 0.5, 8)
    assert q.eq(0).all() and x_hat.eq(0.5).all()


def test_grid_levels_are_the_values_fake_quantize_can_produce():
    qp = qparams_from_range(-1.0, 2.0, bits=3)
    levels = grid_levels(qp)
    assert levels.shape == (8,)
    dense = fake_quantize(torch.linspace(-3, 4, 10_001), qp)
    assert torch.equal(torch.unique(dense), levels)
    _, qp_c = quantize_tensor(torch.randn(4, 9), 2, granularity="channel")
    assert grid_levels(qp_c).shape == (4, 4)


def test_quantize_weight_reports_bytes_and_levels():
    w = torch.randn(16, 8)
    r = quantize_weight(w, 8, "symmetric", "channel")
    assert r.codes.dtype == torch.int8
    assert r.fp32_nbytes == 512
    assert r.nbytes == 128 + 16 * 4  # codes + one float32 scale per channel (zero point is constant)
    r4 = quantize_weight(w, 4, "asymmetric", "tensor")
    assert r4.nbytes == 64 + 8 and r4.levels.shape == (16,)
    assert r.sqnr_db > r4.sqnr_db


def test_weight_quantization_error_per_layer():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))
    rows8 = weight_quantization_error(model, bits=8)
    rows4 = weight_quantization_error(model, bits=4)
    assert [r["layer"] for r in rows8] == ["0", "3"]
    assert rows8[1]["shape"] == (10, 144) and rows8[1]["fp32_bytes"] == 4 * 1440
    assert all(a["sqnr_db"] > b["sqnr_db"] + 15 for a, b in zip(rows8, rows4))


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("bits,error", [(0, ValueError), (17, ValueError), (2.5, TypeError), (True, TypeError)])
def test_bits_out_of_range(bits, error):
    with pytest.raises(error, match="bits"):
        quantize_tensor(torch.randn(4), bits)
    with pytest.raises(error, match="bits"):
        qparams_from_range(0.0, 1.0, bits)


def test_bad_axis_granularity_and_group_size():
    x = torch.randn(4, 6)
    with pytest.raises(ValueError, match="axis"):
        quantize_tensor(x, granularity="channel", axis=2)
    with pytest.raises(ValueError, match="granularity"):
        quantize_tensor(x, granularity="row")
    with pytest.raises(ValueError, match="group_size"):
        quantize_tensor(x, granularity="group")
    with pytest.raises(ValueError, match="group_size"):
        quantize_tensor(x, granularity="group", group_size=4)  # 6 values per channel


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_nan_and_inf_are_rejected(bad):
    x = torch.tensor([0.0, bad, 1.0])
    with pytest.raises(ValueError, match="finite"):
        quantize_tensor(x)
    with pytest.raises(ValueError, match="finite"):
        fake_quantize(x, qparams_from_range(0.0, 1.0))
    with pytest.raises(ValueError, match="min_val"):
        qparams_from_range(bad, 1.0)


def test_invalid_explicit_ranges_raise():
    with pytest.raises(ValueError, match="min_val must be <= max_val"):
        qparams_from_range(2.0, 1.0)
    with pytest.raises(ValueError, match="a must be <= b"):
        quantize_activation(torch.zeros(2), 1.0, 0.0, 4)
    with pytest.raises(ValueError, match="same shape"):
        qparams_from_range(torch.zeros(2), torch.ones(3))


def test_wrong_types_are_rejected():
    with pytest.raises(TypeError, match="x"):
        quantize_tensor([1.0, 2.0])
    with pytest.raises(TypeError, match="floating-point"):
        quantize_tensor(torch.arange(4))
    with pytest.raises(TypeError, match="qp"):
        quantize(torch.zeros(2), (1.0, 0))
    with pytest.raises(ValueError, match="scheme"):
        quantize_weight(torch.zeros(2, 2), scheme="log")
    with pytest.raises(TypeError, match="model"):
        weight_quantization_error("lenet")
    with pytest.raises(ValueError, match="no nn.Conv2d or nn.Linear"):
        weight_quantization_error(nn.Sequential(nn.ReLU()))
    # plain Python ints and 0-d tensors are numbers too: the same parameters as the floats
    from_ints, from_tensors = qparams_from_range(-1, 3), qparams_from_range(torch.tensor(-1.0), torch.tensor(3.0))
    assert from_ints.scale.item() == from_tensors.scale.item() == pytest.approx(4 / 255)
    assert from_ints.zero_point.item() == from_tensors.zero_point.item() == 64


def test_the_two_symmetric_variants_are_named_and_used_where_documented():
    from labkit.quant import affine, integer, nonuniform
    assert affine.symmetric_grid(8, "full") == (127.5, -128, 127)          # torch.ao's: the whole grid
    assert affine.symmetric_grid(8, "restricted") == (127.0, -127, 127)    # TFLite int8 weights: −x ↦ −q
    assert affine.symmetric_grid(4, "restricted") == (7.0, -7, 7)
    with pytest.raises(ValueError, match=r"bits must be an integer in \[2, 16\], got 1"):
        affine.symmetric_grid(1, "restricted")
    with pytest.raises(ValueError, match="variant must be one of 'full', 'restricted'"):
        affine.symmetric_grid(8, "narrow")
    x = torch.tensor([-2.0, 0.3, 1.0])
    assert float(affine.qparams_from_range(x.min(), x.max(), symmetric=True, signed=True).scale) == \
        pytest.approx(2.0 / 127.5)
    codes, scale = integer._symmetric_codes(x.reshape(3, 1), per_channel=False)
    assert scale.tolist() == [2.0 / 127] * 3 and codes.reshape(-1).tolist() == [-127, 19, 64]
    torch.testing.assert_close(nonuniform.uniform_quantize(x, 4), torch.round(x / (2 / 7)).clamp(-7, 7) * (2 / 7))
