"""Tucker-2 decomposition of a Conv2d: 1×1 conv → k×k core conv → 1×1 conv (Kim et al. 2016).

The kernel ``K`` ``[C_out, C_in, kh, kw]`` is approximated along its two channel modes only:
``K ≈ G ×₀ U_out ×₁ U_in``, i.e. ``K[o, i, :, :] ≈ Σ_{p,q} U_out[o, p] · G[p, q, :, :] · U_in[i, q]``
with ``U_in`` ``[C_in, R_in]``, ``U_out`` ``[C_out, R_out]`` (orthonormal columns) and the core
``G = K ×₀ U_outᵀ ×₁ U_inᵀ`` ``[R_out, R_in, kh, kw]``. HOSVD takes ``U_out`` / ``U_in`` as the leading
left singular vectors of the mode-0 unfolding ``K₍₀₎`` ``[C_out, C_in·kh·kw]`` and the mode-1
unfolding ``K₍₁₎`` ``[C_in, C_out·kh·kw]``; HOOI then refines each factor with the other one fixed.
As layers: ``Conv1×1(C_in→R_in; U_inᵀ)`` → ``Conv kh×kw(R_in→R_out; G, original stride/padding)`` →
``Conv1×1(R_out→C_out; U_out, original bias)``. Weights: ``C_in·R_in + R_in·R_out·kh·kw + R_out·C_out``
instead of ``C_in·C_out·kh·kw``. Explained in notebooks/13_lowrank_lightweight.ipynb.
"""
from __future__ import annotations

import torch
from torch import nn

from labkit.lowrank.svd import check_rank, energy_rank
from labkit.validate import require_float_tensor, require_int


def check_conv(layer) -> nn.Conv2d:
    """``layer`` if it is a plain Conv2d (groups = 1, dilation = 1, zero padding); else a clear error."""
    if not isinstance(layer, nn.Conv2d):
        raise TypeError(f"layer must be an nn.Conv2d, got {type(layer).__name__}")
    if layer.groups != 1:
        raise ValueError(f"grouped/depthwise convolutions (groups={layer.groups}) are not supported: "
                         "they are already factorised; decompose only groups=1 convolutions")
    if tuple(layer.dilation) != (1, 1):
        raise ValueError(f"dilated convolutions (dilation={tuple(layer.dilation)}) are not supported")
    if layer.padding_mode != "zeros":
        raise ValueError(f"padding_mode={layer.padding_mode!r} is not supported (only 'zeros')")
    require_float_tensor("layer.weight", layer.weight.detach(), allow_empty=False)  # empty/NaN/meta: nothing to factorise
    return layer


def unfold(kernel: torch.Tensor, mode: int) -> torch.Tensor:
    """Mode-``mode`` unfolding of a 4-D kernel: ``[K.shape[mode], rest]`` (mode 0 or 1)."""
    return kernel.movedim(mode, 0).reshape(kernel.shape[mode], -1)


def _leading(matrix: torch.Tensor, rank: int) -> torch.Tensor:
    return torch.linalg.svd(matrix, full_matrices=False)[0][:, :rank]


def mode_singular_values(kernel: torch.Tensor, mode: int) -> torch.Tensor:
    """Singular values (float64) of the mode-``mode`` unfolding of ``kernel`` ``[C_out, C_in, kh, kw]``."""
    return torch.linalg.svdvals(unfold(kernel.detach().double(), mode))


def tucker2_factors(kernel: torch.Tensor, ranks: tuple[int, int], hooi_iters: int = 0):
    """``(core [R_out, R_in, kh, kw], U_out [C_out, R_out], U_in [C_in, R_in])`` of ``kernel`` (float64).

    ``ranks = (R_in, R_out)`` with ``1 ≤ R_in ≤ C_in`` and ``1 ≤ R_out ≤ C_out``. HOSVD, then
    ``hooi_iters`` rounds of HOOI (each factor = leading singular vectors of the kernel projected on
    the other factor). Explained in notebooks/13_lowrank_lightweight.ipynb.
    """
    if not isinstance(kernel, torch.Tensor) or kernel.ndim != 4 or not kernel.is_floating_point():
        raise ValueError("kernel must be a 4-D floating-point tensor [C_out, C_in, kh, kw]")
    require_float_tensor("kernel", kernel.detach())
    c_out, c_in = kernel.shape[:2]
    r_in, r_out = _check_ranks(ranks, c_in, c_out)
    hooi_iters = require_int("hooi_iters", hooi_iters, 0, 100)
    k = kernel.detach().double()
    u_out, u_in = _leading(unfold(k, 0), r_out), _leading(unfold(k, 1), r_in)
    for _ in range(hooi_iters):
        u_out = _leading(unfold(torch.einsum("oihw,iq->oqhw", k, u_in), 0), r_out)
        u_in = _leading(unfold(torch.einsum("oihw,op->pihw", k, u_out), 1), r_in)
    core = torch.einsum("oihw,op,iq->pqhw", k, u_out, u_in)
    return core, u_out, u_in


def tucker2_reconstruct(core: torch.Tensor, u_out: torch.Tensor, u_in: torch.Tensor) -> torch.Tensor:
    """``G ×₀ U_out ×₁ U_in``: the approximated kernel ``[C_out, C_in, kh, kw]``."""
    return torch.einsum("pqhw,op,iq->oihw", core, u_out, u_in)


def tucker2_weight(factorised: nn.Sequential) -> torch.Tensor:
    """The kernel ``[C_out, C_in, kh, kw]`` (float64) that a ``tucker2_conv`` result computes:
    ``tucker2_reconstruct`` of its core and its two 1×1 factors (read back, no second decomposition)."""
    if not all(isinstance(getattr(factorised, n, None), nn.Conv2d) for n in ("first", "core", "last")):
        raise TypeError(f"factorised must be a tucker2_conv result (Sequential first/core/last), got {factorised!r:.80}")
    return tucker2_reconstruct(factorised.core.weight.detach().double(), factorised.last.weight.detach()[:, :, 0, 0].double(),
                               factorised.first.weight.detach()[:, :, 0, 0].T.double())


def _check_ranks(ranks, c_in: int, c_out: int) -> tuple[int, int]:
    if isinstance(ranks, int) and not isinstance(ranks, bool):
        ranks = (min(ranks, c_in), min(ranks, c_out))
    if not isinstance(ranks, (tuple, list)) or len(ranks) != 2:
        raise TypeError(f"ranks must be an int or a pair (R_in, R_out), got {ranks!r}")
    return check_rank(ranks[0], c_in, "R_in"), check_rank(ranks[1], c_out, "R_out")


def tucker2_ranks(layer: nn.Conv2d, energy: float) -> tuple[int, int]:
    """``(R_in, R_out)``: per channel mode, the smallest rank keeping ``energy`` of that unfolding's Σσ²."""
    check_conv(layer)
    w = layer.weight
    return energy_rank(mode_singular_values(w, 1), energy), energy_rank(mode_singular_values(w, 0), energy)


def tucker2_params(c_in: int, c_out: int, kernel_size: tuple[int, int], r_in: int, r_out: int,
                   bias: bool = True) -> int:
    """``C_in·R_in + R_in·R_out·kh·kw + R_out·C_out`` (+ ``C_out`` bias).
    Explained in notebooks/13_lowrank_lightweight.ipynb."""
    kh, kw = kernel_size
    return c_in * r_in + r_in * r_out * kh * kw + r_out * c_out + (c_out if bias else 0)


def tucker2_conv(layer: nn.Conv2d, ranks=None, *, energy: float | None = None,
                 hooi_iters: int = 0) -> nn.Sequential:
    """Replace a Conv2d by ``Sequential(first 1×1, core kh×kw, last 1×1)`` — Tucker-2 of its kernel.

    Give exactly one of ``ranks`` (an int used for both modes, clipped to each, or ``(R_in, R_out)``)
    or ``energy`` ∈ (0, 1] (``tucker2_ranks``). Stride and padding go to the core; the bias to ``last``.
    With ``R_in = C_in`` and ``R_out = C_out`` the output equals the layer's. The three convs have
    the layer's dtype and device. Explained in notebooks/13_lowrank_lightweight.ipynb.
    """
    check_conv(layer)
    if (ranks is None) == (energy is None):
        raise ValueError("give exactly one of ranks= (an int or (R_in, R_out)) or energy= (a fraction in (0, 1])")
    c_out, c_in, kh, kw = layer.weight.shape
    r_in, r_out = tucker2_ranks(layer, energy) if energy is not None else _check_ranks(ranks, c_in, c_out)
    core, u_out, u_in = tucker2_factors(layer.weight, (r_in, r_out), hooi_iters)
    dtype = layer.weight.dtype
    like = {"dtype": dtype, "device": layer.weight.device}
    first = nn.Conv2d(c_in, r_in, 1, bias=False, **like)
    middle = nn.Conv2d(r_in, r_out, (kh, kw), stride=layer.stride, padding=layer.padding, bias=False, **like)
    last = nn.Conv2d(r_out, c_out, 1, bias=layer.bias is not None, **like)
    with torch.no_grad():
        first.weight.copy_(u_in.T.reshape(r_in, c_in, 1, 1).to(dtype))
        middle.weight.copy_(core.to(dtype))
        last.weight.copy_(u_out.reshape(c_out, r_out, 1, 1).to(dtype))
        if layer.bias is not None:
            last.bias.copy_(layer.bias)
    out = nn.Sequential()
    for name, module in (("first", first), ("core", middle), ("last", last)):
        out.add_module(name, module)
    return out.train(layer.training)
