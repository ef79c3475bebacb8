"""Truncated SVD of a Linear: exact at full rank, Eckart–Young error, rank selection, costs, errors."""
import math

import pytest
import torch
from torch import nn

from labkit import measure
from labkit.lowrank import (break_even_rank, cumulative_energy, energy_rank, relative_error, singular_values,
                            svd_factors, svd_linear, svd_params, truncation_error)


def layer(m=12, n=20, bias=True, seed=0):
    torch.manual_seed(seed)
    return nn.Linear(n, m, bias=bias)


@pytest.mark.parametrize("m, n", [(12, 20), (20, 12), (7, 7)])
def test_full_rank_reproduces_the_layer(m, n):
    original = layer(m, n)
    x = torch.randn(16, n)
    factorised = svd_linear(original, min(m, n))
    torch.testing.assert_close(factorised(x), original(x), atol=1e-5, rtol=1e-5)
    assert factorised.first.weight.shape == (min(m, n), n) and factorised.first.bias is None
    assert factorised.second.weight.shape == (m, min(m, n))
    torch.testing.assert_close(factorised.second.bias, original.bias)


@pytest.mark.parametrize("rank", [1, 3, 6, 11])
def test_error_is_the_discarded_energy_eckart_young(rank):
    original = layer()
    w = original.weight.detach().double()
    sigma = torch.linalg.svdvals(w)
    a, b = svd_factors(original.weight.double(), rank)
    error2 = float(torch.linalg.norm(w - a @ b) ** 2)
    assert error2 == pytest.approx(float((sigma[rank:] ** 2).sum()), rel=1e-9, abs=1e-12)
    assert relative_error(w, a @ b) == pytest.approx(math.sqrt(float((sigma[rank:] ** 2).sum() / (sigma ** 2).sum())))
    assert truncation_error(sigma, rank) == pytest.approx(relative_error(w, a @ b), rel=1e-9)   # without the factors
    # √Σ split evenly: both factors carry the same singular values
    torch.testing.assert_close(torch.linalg.svdvals(a), sigma[:rank].sqrt())
    torch.testing.assert_close(torch.linalg.svdvals(b), sigma[:rank].sqrt())
    # another rank-r matrix (the truncation of a perturbed W) does worse
    g = torch.Generator().manual_seed(0)
    a2, b2 = svd_factors(w + 0.05 * torch.randn(w.shape, generator=g, dtype=torch.float64), rank)
    assert torch.linalg.matrix_rank(a @ b) == rank == torch.linalg.matrix_rank(a2 @ b2)
    assert float(torch.linalg.norm(w - a2 @ b2) ** 2) > error2


def test_singular_values_match_torch():
    original = layer()
    torch.testing.assert_close(singular_values(original), torch.linalg.svdvals(original.weight.double()))


def test_energy_rank_by_hand():
    sigma = torch.tensor([3.0, 2.0, 1.0, 0.0])         # energies 9, 4, 1 of 14
    assert energy_rank(sigma, 9 / 14) == 1
    assert energy_rank(sigma, 9 / 14 + 1e-6) == 2
    assert energy_rank(sigma, 0.9) == 2 and energy_rank(sigma, 13 / 14) == 2
    assert energy_rank(sigma, 0.95) == 3 and energy_rank(sigma, 1.0) == 3
    assert energy_rank(sigma, 0.01) == 1
    assert energy_rank(torch.zeros(3), 0.5) == 1
    torch.testing.assert_close(cumulative_energy(sigma), torch.tensor([9, 13, 14, 14], dtype=torch.float64) / 14)
    factorised = svd_linear(layer(), energy=0.9)
    s = singular_values(layer())
    r = factorised.first.out_features
    assert float((s[:r] ** 2).sum() / (s ** 2).sum()) >= 0.9 > float((s[:r - 1] ** 2).sum() / (s ** 2).sum())


def test_params_and_macs_match_hand_formulas():
    m, n, r = 30, 50, 8
    original = layer(m, n)
    factorised = nn.Sequential(svd_linear(original, r))
    assert measure.count_parameters(factorised) == r * (m + n) + m == svd_params(m, n, r)
    assert measure.total_macs(factorised, (n,)) == r * (m + n)
    assert svd_params(m, n, r, bias=False) == r * (m + n)
    assert break_even_rank(m, n) == pytest.approx(m * n / (m + n)) == pytest.approx(18.75)
    assert svd_params(m, n, 18, bias=False) < m * n < svd_params(m, n, 19, bias=False)


def test_bad_inputs():
    with pytest.raises(TypeError, match="nn.Linear"):
        svd_linear(nn.Conv2d(1, 2, 3), 1)
    with pytest.raises(ValueError, match="rank"):
        svd_linear(layer(), 0)
    with pytest.raises(ValueError, match="rank"):
        svd_linear(layer(), 13)                          # min(12, 20) = 12
    with pytest.raises(TypeError, match="rank"):
        svd_linear(layer(), 2.5)
    with pytest.raises(ValueError, match="exactly one"):
        svd_linear(layer())
    with pytest.raises(ValueError, match="exactly one"):
        svd_linear(layer(), 2, energy=0.5)
    for energy in (0.0, -0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="energy"):
            svd_linear(layer(), energy=energy)
    with pytest.raises(ValueError, match="weight"):
        svd_factors(torch.zeros(2, 3, 4), 1)
    with pytest.raises(ValueError, match="m must"):
        break_even_rank(0, 3)


def test_truncation_error_ends_and_bad_inputs():
    sigma = torch.tensor([3.0, 2.0, 1.0])
    assert truncation_error(sigma, 3) == 0.0 and truncation_error(torch.zeros(4), 1) == 0.0
    assert truncation_error(sigma, 1) == pytest.approx(math.sqrt(5 / 14))
    with pytest.raises(ValueError, match=r"rank must be an integer in \[1, 3\]"):
        truncation_error(sigma, 4)
    with pytest.raises(ValueError, match="sigma must be a non-empty 1-D tensor"):
        truncation_error(torch.zeros(2, 2), 1)
