"""Tucker-2 (HOSVD/HOOI) and CP-ALS of Conv2d kernels: exactness, monotone errors, costs, errors."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from labkit import measure
from labkit.lowrank import (cp_als, cp_conv, cp_params, cp_reconstruct, relative_error, tucker2_conv, tucker2_factors,
                            tucker2_params, tucker2_reconstruct)


def conv(c_in=6, c_out=8, k=3, seed=0, **kw):
    torch.manual_seed(seed)
    return nn.Conv2d(c_in, c_out, k, **kw)


@pytest.mark.parametrize("kw", [dict(padding=1), dict(stride=2, padding=1), dict(padding=0, bias=False),
                                dict(stride=(1, 2), padding=(2, 1))])
def test_full_rank_tucker_reproduces_the_conv(kw):
    original = conv(**kw)
    x = torch.randn(2, 6, 11, 11)
    factorised = tucker2_conv(original, (6, 8))
    torch.testing.assert_close(factorised(x), original(x), atol=1e-5, rtol=1e-5)
    assert [m.kernel_size for m in factorised] == [(1, 1), (3, 3), (1, 1)]


def test_hosvd_factors_are_orthonormal_and_match_numpy_unfoldings():
    k = conv().weight.detach().double()
    core, u_out, u_in = tucker2_factors(k, (4, 5))
    torch.testing.assert_close(u_out.T @ u_out, torch.eye(5, dtype=torch.float64))
    torch.testing.assert_close(u_in.T @ u_in, torch.eye(4, dtype=torch.float64))
    # the mode-1 unfolding by hand: rows indexed by input channel
    rows = torch.stack([k[:, i].reshape(-1) for i in range(6)])
    expected = torch.linalg.svd(rows, full_matrices=False)[0][:, :4]
    torch.testing.assert_close((u_in @ u_in.T), expected @ expected.T)
    assert core.shape == (5, 4, 3, 3)


def test_tucker_error_decreases_with_rank_and_hooi_helps():
    k = conv(16, 16).weight.detach().double()
    errors = [relative_error(k, tucker2_reconstruct(*tucker2_factors(k, (r, r)))) for r in range(1, 17)]
    assert all(b <= a + 1e-12 for a, b in zip(errors, errors[1:]))
    assert errors[-1] < 1e-12 and errors[0] > 0.5
    hooi = relative_error(k, tucker2_reconstruct(*tucker2_factors(k, (4, 4), hooi_iters=5)))
    assert hooi <= errors[3] + 1e-12


def test_tucker_params_and_macs_by_hand():
    c_in, c_out, r_in, r_out = 16, 32, 4, 6
    original = conv(c_in, c_out, padding=1)
    factorised = nn.Sequential(tucker2_conv(original, (r_in, r_out)))
    assert measure.count_parameters(factorised) == c_in * r_in + r_in * r_out * 9 + r_out * c_out + c_out
    assert tucker2_params(c_in, c_out, (3, 3), r_in, r_out) == measure.count_parameters(factorised)
    hw = 10 * 10
    assert measure.total_macs(factorised, (c_in, 10, 10)) == hw * (c_in * r_in + 9 * r_in * r_out + r_out * c_out)
    assert measure.total_macs(nn.Sequential(original), (c_in, 10, 10)) == hw * 9 * c_in * c_out


def test_depthwise_separable_costs_by_hand():
    k, c_in, c_out, hw = 3, 16, 32, 8
    standard = nn.Sequential(nn.Conv2d(c_in, c_out, k, padding=1, bias=False))
    separable = nn.Sequential(nn.Conv2d(c_in, c_in, k, padding=1, groups=c_in, bias=False),
                              nn.Conv2d(c_in, c_out, 1, bias=False))
    assert measure.count_parameters(standard) == k * k * c_in * c_out
    assert measure.count_parameters(separable) == k * k * c_in + c_in * c_out
    assert measure.total_macs(standard, (c_in, hw, hw)) == hw * hw * k * k * c_in * c_out
    assert measure.total_macs(separable, (c_in, hw, hw)) == hw * hw * (k * k * c_in + c_in * c_out)


def test_cp_als_recovers_an_exact_low_rank_kernel_and_never_gets_worse():
    g = torch.Generator().manual_seed(1)
    factors = [torch.randn(s, 3, generator=g, dtype=torch.float64) for s in (6, 5, 3, 3)]
    kernel = cp_reconstruct(factors)
    fitted, errors = cp_als(kernel, 3, iters=200)
    assert errors[-1] < 1e-6
    assert all(b <= a + 1e-10 for a, b in zip(errors, errors[1:]))
    assert relative_error(kernel, cp_reconstruct(fitted)) == pytest.approx(errors[-1], abs=1e-12)
    assert cp_als(kernel, 3, iters=20)[1] == cp_als(kernel, 3, iters=20)[1]          # seeded


def test_cp_conv_layers_compute_the_cp_kernel():
    original = conv(5, 6, stride=2, padding=1)
    x = torch.randn(2, 5, 9, 9)
    factorised = cp_conv(original, 4, iters=30)
    fitted, _ = cp_als(original.weight, 4, iters=30)
    expected = F.conv2d(x, cp_reconstruct(fitted).float(), original.bias, stride=2, padding=1)
    torch.testing.assert_close(factorised(x), expected, atol=1e-5, rtol=1e-5)
    assert [m.groups for m in factorised] == [1, 4, 4, 1]
    assert measure.count_parameters(nn.Sequential(factorised)) == cp_params(5, 6, (3, 3), 4) == 4 * (5 + 3 + 3 + 6) + 6


def test_bad_inputs():
    with pytest.raises(TypeError, match="nn.Conv2d"):
        tucker2_conv(nn.Linear(3, 3), 1)
    with pytest.raises(ValueError, match="groups"):
        tucker2_conv(nn.Conv2d(4, 4, 3, groups=4), 2)
    with pytest.raises(ValueError, match="dilat"):
        tucker2_conv(nn.Conv2d(4, 4, 3, dilation=2), 2)
    with pytest.raises(ValueError, match="padding_mode"):
        tucker2_conv(nn.Conv2d(4, 4, 3, padding=1, padding_mode="reflect"), 2)
    with pytest.raises(ValueError, match="R_in"):
        tucker2_conv(conv(), (7, 2))
    with pytest.raises(ValueError, match="R_out"):
        tucker2_conv(conv(), (2, 0))
    with pytest.raises(TypeError, match="ranks"):
        tucker2_conv(conv(), (1, 2, 3))
    with pytest.raises(ValueError, match="exactly one"):
        tucker2_conv(conv())
    with pytest.raises(ValueError, match="energy"):
        tucker2_conv(conv(), energy=0)
    with pytest.raises(ValueError, match="rank"):
        cp_conv(conv(), 0)
    with pytest.raises(ValueError, match="groups"):
        cp_conv(nn.Conv2d(4, 4, 3, groups=2), 2)
    with pytest.raises(ValueError, match="padding"):
        cp_conv(nn.Conv2d(4, 4, 3, padding="same"), 2)
    with pytest.raises(ValueError, match="kernel"):
        cp_als(torch.zeros(3, 3), 1)
