"""Truncated SVD of a Linear layer: one ``m×n`` matrix becomes two thin ones (rank ``r``).

``W = U Σ Vᵀ`` (``W`` is ``[m, n]`` = ``[out, in]``). Keeping the ``r`` largest singular values gives
``W_r = U_r Σ_r V_rᵀ``, the best rank-``r`` approximation in Frobenius norm (Eckart–Young):
``‖W − W_r‖²_F = Σ_{i>r} σ_i²``. As layers, ``x ↦ W_r x + b`` is ``Linear(n→r)`` with weight
``√Σ_r V_rᵀ`` (no bias) followed by ``Linear(r→m)`` with weight ``U_r √Σ_r`` and the original bias
(√Σ is split between the factors so both have the same scale). Parameters and MACs per example
fall from ``m·n`` to ``r·(m + n)``: a saving only while ``r < m·n / (m + n)`` (the break-even rank).
Explained in notebooks/13_lowrank_lightweight.ipynb.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from labkit.validate import require_float, require_float_tensor, require_int


def _check_linear(layer) -> nn.Linear:
    if not isinstance(layer, nn.Linear):
        raise TypeError(f"layer must be an nn.Linear, got {type(layer).__name__}")
    # NaN/Inf would make torch's SVD fail "to converge"; a meta weight has no values to factorise
    require_float_tensor("layer.weight", layer.weight.detach(), allow_empty=False)
    return layer


def check_rank(rank, limit: int, name: str = "rank") -> int:
    """``rank`` as an int in [1, limit] (the smallest dimension of the matrix being factorised)."""
    return require_int(name, rank, 1, limit)


def singular_values(layer: nn.Linear) -> torch.Tensor:
    """The singular values ``σ_1 ≥ σ_2 ≥ …`` (float64, ``[min(m, n)]``) of ``layer.weight`` ``[m, n]``.
    Explained in notebooks/13_lowrank_lightweight.ipynb."""
    _check_linear(layer)
    return torch.linalg.svdvals(layer.weight.detach().double())


def energy_rank(sigma: torch.Tensor, energy: float) -> int:
    """Smallest ``r`` with ``Σ_{i≤r} σ_i² ≥ energy · Σ_i σ_i²`` for descending ``sigma`` ``[k]``.

    ``energy`` ∈ (0, 1]; ``energy = 1`` keeps every non-zero singular value. A matrix of zeros gets
    ``r = 1``. Explained in notebooks/13_lowrank_lightweight.ipynb.
    """
    energy = require_float("energy", energy, 0.0, 1.0, low_open=True)
    if not isinstance(sigma, torch.Tensor) or sigma.ndim != 1 or sigma.numel() == 0:
        raise ValueError("sigma must be a non-empty 1-D tensor of singular values")
    power = sigma.double() ** 2
    total = float(power.sum())
    if total == 0.0:
        return 1
    cumulative = torch.cumsum(power, 0) / total
    # a tiny tolerance so that energy=1.0 is reached despite rounding in the cumulative sum
    r = int(torch.searchsorted(cumulative, torch.tensor([energy - 1e-12], dtype=torch.float64)).item()) + 1
    return min(r, sigma.numel())


def cumulative_energy(sigma: torch.Tensor) -> torch.Tensor:
    """``E_r = Σ_{i≤r} σ_i² / Σ_i σ_i²`` for r = 1…k (float64 ``[k]``).
    Explained in notebooks/13_lowrank_lightweight.ipynb."""
    power = sigma.double() ** 2
    return torch.cumsum(power, 0) / power.sum().clamp_min(1e-300)


def truncation_error(sigma: torch.Tensor, rank: int) -> float:
    """``‖W − W_r‖_F / ‖W‖_F = sqrt(Σ_{i>r} σ_i² / Σ_i σ_i²)`` for the rank-``rank`` truncated SVD of a matrix
    with singular values ``sigma`` ``[k]`` (Eckart–Young: no second SVD needed); 0 for a zero matrix.
    Explained in notebooks/13_lowrank_lightweight.ipynb."""
    if not isinstance(sigma, torch.Tensor) or sigma.ndim != 1 or sigma.numel() == 0:
        raise ValueError("sigma must be a non-empty 1-D tensor of singular values")
    rank = check_rank(rank, sigma.numel())
    power = sigma.double() ** 2
    total = float(power.sum())
    return 0.0 if total == 0.0 else math.sqrt(max(float(power[rank:].sum()), 0.0) / total)


def svd_params(m: int, n: int, rank: int, bias: bool = True) -> int:
    """Parameters of the factorised ``[m, n]`` layer: ``r·(n + m)`` (+ ``m`` bias). Its MACs per example
    are ``r·(n + m)`` too. Explained in notebooks/13_lowrank_lightweight.ipynb."""
    m, n = require_int("m", m, 1), require_int("n", n, 1)
    rank = require_int("rank", rank, 1)
    return rank * (m + n) + (m if bias else 0)


def break_even_rank(m: int, n: int) -> float:
    """``m·n / (m + n)``: factorising an ``[m, n]`` layer saves parameters and MACs only for ranks
    strictly below this. Explained in notebooks/13_lowrank_lightweight.ipynb."""
    m, n = require_int("m", m, 1), require_int("n", n, 1)
    return m * n / (m + n)


def svd_factors(weight: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(A, B)`` with ``A = U_r √Σ_r`` ``[m, r]`` and ``B = √Σ_r V_rᵀ`` ``[r, n]``, so ``A @ B = W_r``.

    ``weight`` is a finite float tensor ``[m, n]``; computed in float64, returned in the weight's dtype.
    Explained in notebooks/13_lowrank_lightweight.ipynb.
    """
    if not isinstance(weight, torch.Tensor) or weight.ndim != 2 or not weight.is_floating_point():
        raise ValueError("weight must be a 2-D floating-point tensor [m, n]")
    require_float_tensor("weight", weight.detach())
    rank = check_rank(rank, min(weight.shape))
    u, s, vh = torch.linalg.svd(weight.detach().double(), full_matrices=False)
    root = s[:rank].sqrt()
    a = u[:, :rank] * root
    b = root[:, None] * vh[:rank]
    return a.to(weight.dtype), b.to(weight.dtype)


def svd_linear(layer: nn.Linear, rank: int | None = None, *, energy: float | None = None) -> nn.Sequential:
    """Replace ``Linear(n→m)`` by ``Sequential(first=Linear(n→r, bias=False), second=Linear(r→m))``.

    Give exactly one of ``rank`` (1 ≤ r ≤ min(m, n)) or ``energy`` (∈ (0, 1], see ``energy_rank``).
    The output ``W_r x + b`` equals the layer's output exactly when ``r = rank(W)``. The factors
    have the layer's dtype and device (a float64 layer gives float64 factors).
    Explained in notebooks/13_lowrank_lightweight.ipynb.
    """
    _check_linear(layer)
    m, n = layer.weight.shape
    rank = resolve_rank(singular_values(layer) if energy is not None else None, min(m, n), rank, energy)
    a, b = svd_factors(layer.weight, rank)
    like = {"dtype": layer.weight.dtype, "device": layer.weight.device}
    first = nn.Linear(n, rank, bias=False, **like)
    second = nn.Linear(rank, m, bias=layer.bias is not None, **like)
    with torch.no_grad():
        first.weight.copy_(b)
        second.weight.copy_(a)
        if layer.bias is not None:
            second.bias.copy_(layer.bias)
    factorised = nn.Sequential()
    factorised.add_module("first", first)
    factorised.add_module("second", second)
    return factorised.train(layer.training)


def resolve_rank(sigma, limit: int, rank, energy) -> int:
    """One of ``rank`` / ``energy`` → a rank in [1, limit]; both or neither is an error."""
    if (rank is None) == (energy is None):
        raise ValueError("give exactly one of rank= (an integer) or energy= (a fraction in (0, 1])")
    if rank is not None:
        return check_rank(rank, limit)
    return energy_rank(sigma, energy)


def relative_error(weight: torch.Tensor, approx: torch.Tensor) -> float:
    """``‖W − Ŵ‖_F / ‖W‖_F`` (0 for an exact approximation).
    Explained in notebooks/13_lowrank_lightweight.ipynb."""
    w, a = weight.detach().double(), approx.detach().double()
    norm, error = float(torch.linalg.norm(w)), float(torch.linalg.norm(w - a))
    if norm == 0.0:
        return 0.0 if error == 0.0 else math.inf
    return error / norm
