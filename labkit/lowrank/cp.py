"""CP decomposition of a conv kernel by alternating least squares (Lebedev et al. 2015).

The kernel ``K`` ``[C_out, C_in, kh, kw]`` is approximated by a sum of ``R`` rank-one tensors:
``K[o, i, h, w] ≈ Σ_r A[o, r] · B[i, r] · C[h, r] · D[w, r]``. ALS fixes three factors and solves
the fourth exactly by least squares, e.g. ``A = M_A · ((BᵀB) ∗ (CᵀC) ∗ (DᵀD))⁺`` with
``M_A[o, r] = Σ_{i,h,w} K[o,i,h,w] B[i,r] C[h,r] D[w,r]`` (∗ is the element-wise product); each
step cannot increase the error. As layers (the cheapest of the three decompositions):
``Conv1×1(C_in→R; Bᵀ)`` → depthwise ``kh×1`` (``C``) → depthwise ``1×kw`` (``D``) →
``Conv1×1(R→C_out; A, bias)``, with ``R·(C_in + kh + kw + C_out)`` weights. Unlike SVD, the best
rank-R CP approximation need not exist and ALS can converge slowly: fine-tuning afterwards matters.
Explained in notebooks/13_lowrank_lightweight.ipynb.
"""
from __future__ import annotations

import torch
from torch import nn

from labkit.lowrank.tucker import check_conv
from labkit.validate import require_float_tensor, require_int

_LETTERS = "oihw"


def cp_reconstruct(factors) -> torch.Tensor:
    """``Σ_r A[:, r] ∘ B[:, r] ∘ C[:, r] ∘ D[:, r]`` → ``[C_out, C_in, kh, kw]``."""
    return torch.einsum("or,ir,hr,wr->oihw", *factors)


def cp_als(kernel: torch.Tensor, rank: int, iters: int = 50, seed: int = 0):
    """``(factors [A, B, C, D], errors)`` of a rank-``rank`` CP fit of a 4-D ``kernel`` (float64).

    ``A`` ``[C_out, R]``, ``B`` ``[C_in, R]``, ``C`` ``[kh, R]``, ``D`` ``[kw, R]``; seeded random
    initialisation, ``iters`` ALS sweeps; ``errors[t]`` is the relative error ``‖K − K̂‖_F / ‖K‖_F``
    after sweep ``t`` (non-increasing). Explained in notebooks/13_lowrank_lightweight.ipynb.
    """
    if not isinstance(kernel, torch.Tensor) or kernel.ndim != 4 or not kernel.is_floating_point():
        raise ValueError("kernel must be a 4-D floating-point tensor [C_out, C_in, kh, kw]")
    require_float_tensor("kernel", kernel.detach())
    rank = require_int("rank", rank, 1, 4096)
    iters = require_int("iters", iters, 1, 10_000)
    seed = require_int("seed", seed, 0, 2**63 - 1)
    k = kernel.detach().double()
    g = torch.Generator().manual_seed(seed)
    factors = [torch.randn(size, rank, generator=g, dtype=torch.float64) for size in k.shape]
    norm, errors = float(torch.linalg.norm(k)) or 1.0, []
    for _ in range(iters):
        for mode in range(4):
            others = [f for m, f in enumerate(factors) if m != mode]
            spec = ",".join(f"{_LETTERS[m]}r" for m in range(4) if m != mode)
            mttkrp = torch.einsum(f"oihw,{spec}->{_LETTERS[mode]}r", k, *others)
            gram = torch.ones(rank, rank, dtype=torch.float64)
            for f in others:
                gram = gram * (f.T @ f)
            factors[mode] = mttkrp @ torch.linalg.pinv(gram)
        errors.append(float(torch.linalg.norm(k - cp_reconstruct(factors))) / norm)
    return factors, errors


def cp_params(c_in: int, c_out: int, kernel_size: tuple[int, int], rank: int, bias: bool = True) -> int:
    """``R·(C_in + kh + kw + C_out)`` (+ ``C_out`` bias). Explained in notebooks/13_lowrank_lightweight.ipynb."""
    kh, kw = kernel_size
    return rank * (c_in + kh + kw + c_out) + (c_out if bias else 0)


def cp_conv(layer: nn.Conv2d, rank: int, *, iters: int = 50, seed: int = 0) -> nn.Sequential:
    """Replace a Conv2d by ``Sequential(first 1×1, vertical kh×1 dw, horizontal 1×kw dw, last 1×1)``.

    The vertical/horizontal depthwise convs carry the stride and padding of their axis; the bias
    goes to ``last``. Needs numeric padding (not ``'same'``). Explained in notebooks/13_lowrank_lightweight.ipynb.
    """
    check_conv(layer)
    if isinstance(layer.padding, str):
        raise ValueError(f"padding={layer.padding!r} is not supported by cp_conv; use numeric padding")
    (a, b, c, d), _ = cp_als(layer.weight, rank, iters, seed)
    c_out, c_in, kh, kw = layer.weight.shape
    (sh, sw), (ph, pw) = layer.stride, layer.padding
    dtype = layer.weight.dtype
    like = {"dtype": dtype, "device": layer.weight.device}  # a float64 layer gives float64 factors
    first = nn.Conv2d(c_in, rank, 1, bias=False, **like)
    vertical = nn.Conv2d(rank, rank, (kh, 1), stride=(sh, 1), padding=(ph, 0), groups=rank, bias=False, **like)
    horizontal = nn.Conv2d(rank, rank, (1, kw), stride=(1, sw), padding=(0, pw), groups=rank, bias=False, **like)
    last = nn.Conv2d(rank, c_out, 1, bias=layer.bias is not None, **like)
    with torch.no_grad():
        first.weight.copy_(b.T.reshape(rank, c_in, 1, 1).to(dtype))
        vertical.weight.copy_(c.T.reshape(rank, 1, kh, 1).to(dtype))
        horizontal.weight.copy_(d.T.reshape(rank, 1, 1, kw).to(dtype))
        last.weight.copy_(a.reshape(c_out, rank, 1, 1).to(dtype))
        if layer.bias is not None:
            last.bias.copy_(layer.bias)
    out = nn.Sequential()
    for name, module in (("first", first), ("vertical", vertical), ("horizontal", horizontal), ("last", last)):
        out.add_module(name, module)
    return out.train(layer.training)
