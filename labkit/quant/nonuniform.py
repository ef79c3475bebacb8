"""Non-uniform scalar quantization: power-of-two and logarithmic levels, compared with uniform.

Papers:
- Miyashita, Lee, Murmann. "Convolutional Neural Networks using Logarithmic Data Representation."
  arXiv:1603.01025, 2016 (log2 and log√2 quantization).
- Zhou, Yao, Guo, Xu, Chen. "Incremental Network Quantization: Towards Lossless CNNs with
  Low-Precision Weights." ICLR 2017 (weights in {0, ±2^k}).

Trained weights are bell-shaped (roughly Gaussian or Laplacian): most of them are small. Uniform
levels spend as many codes on the rare large values as on the crowded middle; logarithmic levels are
dense near zero and sparse in the tails, and power-of-two levels turn every multiplication into a
bit shift. Every quantizer here returns the *dequantized* tensor (same shape and dtype as the input),
detached from autograd: to train through one, wrap it in a straight-through estimator.

Bit widths here run from 2 to 8 (``ValueError`` otherwise), unlike the 1–16 of ``affine``: one bit is
the sign and one code is zero, so 1 bit would leave no magnitude at all; above 8 bits the new
power-of-two levels are ever tinier halvings and the SQNR no longer grows (:func:`compare_quantizers`).

Explained in notebooks/01_quantization_basics.ipynb
"""
from __future__ import annotations

import math

import torch

from labkit.quant.affine import check_bits, mse, sqnr_db, symmetric_grid
from labkit.validate import require_choice, require_float, require_float_tensor, require_int

BITS = (2, 8)  # bits per code: one for the sign and at least one for the level; 8 at most

__all__ = ["pow2_levels", "pow2_quantize", "log_levels", "log_quantize", "uniform_quantize",
           "quantization_error", "compare_quantizers"]


def _nearest_level(x: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """Replace every element of ``x`` by the nearest value of the sorted 1-D ``levels``."""
    mid = (levels[1:] + levels[:-1]) / 2            # decision boundaries between neighbouring levels
    return levels[torch.bucketize(x.contiguous(), mid)]


def pow2_levels(bits: int, max_exponent: int) -> torch.Tensor:
    """Sorted float32 levels ``{0} ∪ {±2^k : k_max - (2^(b-1) - 2) ≤ k ≤ k_max}`` of :func:`pow2_quantize`.

    One bit is the sign and ``2^(b-1)`` magnitude codes remain: one for zero and ``2^(b-1) - 1``
    exponents, so there are ``2^b - 1`` levels. ``bits`` in [2, 8], ``max_exponent`` in [-126, 127]
    (float32's normal range). Explained in notebooks/01_quantization_basics.ipynb
    """
    bits = check_bits(bits, *BITS)
    max_exponent = require_int("max_exponent", max_exponent, -126, 127)
    return _pow2_levels64(bits, max_exponent).float()


def _pow2_levels64(bits: int, max_exponent: int) -> torch.Tensor:
    """The levels of ``pow2_levels`` in float64 (whose exponents reach -1074 … 1023)."""
    n_exp = 2 ** (bits - 1) - 1
    mags = 2.0 ** torch.arange(max_exponent - n_exp + 1, max_exponent + 1, dtype=torch.float64)
    return torch.cat([-mags.flip(0), torch.zeros(1, dtype=torch.float64), mags])


def _exponent_range(dtype: torch.dtype) -> tuple[int, int]:
    """``(k_lo, k_hi)``: the exponents ``k`` for which ``2^k`` is a (normal or subnormal) number of
    the floating-point ``dtype`` — float32 (-149, 127), float64 (-1074, 1023), float16 (-24, 15)."""
    info = torch.finfo(dtype)
    return math.frexp(info.tiny * info.eps)[1] - 1, math.frexp(info.max)[1] - 1


def pow2_quantize(x: torch.Tensor, bits: int = 4, max_exponent: int | None = None,
                  rounding: str = "nearest") -> torch.Tensor:
    """Power-of-two quantization ``Q(x) = sign(x) · 2^k`` (or 0), ``k ∈ [k_max - 2^(b-1) + 2, k_max]``.

    ``k_max`` defaults to ``round(log2 max|x|)`` so the largest level sits next to the largest
    weight; it lies in the exponents ``x.dtype`` can hold (float32: [-149, 127], float64: [-1074, 1023]), so a float64 tensor of
    values near 1e-50 gets levels near 1e-50. ``rounding="nearest"`` picks the level closest in value (boundary between ``2^k`` and
    ``2^(k+1)`` at ``1.5·2^k``); ``rounding="log"`` rounds the exponent, ``k = round(log2|x|)``
    (boundary at ``√2·2^k``, Miyashita et al.). Values below half the smallest level become 0, values
    above ``2^k_max`` are clipped to it. Returns a tensor like ``x`` whose non-zero values are exact
    powers of two. ``bits`` in [2, 8].
    Explained in notebooks/01_quantization_basics.ipynb
    """
    require_float_tensor("x", x, allow_empty=False)
    bits = check_bits(bits, *BITS)
    require_choice("rounding", rounding, ("nearest", "log"))
    k_lo, k_hi = _exponent_range(x.dtype)
    if max_exponent is None:
        peak = x.detach().abs().max().item()
        max_exponent = min(max(round(math.log2(peak)), k_lo), k_hi) if peak > 0 else 0
    max_exponent = require_int("max_exponent", max_exponent, k_lo, k_hi)
    levels = _pow2_levels64(bits, max_exponent).to(x.device)
    k_min = max_exponent - (2 ** (bits - 1) - 2)
    mag = x.detach().abs().double()
    if rounding == "nearest":
        q = _nearest_level(mag, levels)
    else:
        k = torch.round(torch.log2(mag.clamp_min(2.0 ** (k_min - 2)))).clamp(k_min, max_exponent)
        q = torch.where(mag < 2.0 ** (k_min - 1), torch.zeros_like(mag), 2.0 ** k)
    return (torch.sign(x.detach()) * q).to(x.dtype)


def log_levels(bits: int, max_value: float, base: float = 2.0) -> torch.Tensor:
    """Sorted float32 levels ``{0} ∪ {±max_value · base^(-j) : j = 0 .. 2^(b-1) - 2}`` of :func:`log_quantize`.

    ``bits`` in [2, 8].
    Explained in notebooks/01_quantization_basics.ipynb
    """
    bits = check_bits(bits, *BITS)
    max_value = require_float("max_value", max_value, 0.0, None, low_open=True)
    base = require_float("base", base, 1.0, None, low_open=True)
    j = torch.arange(2 ** (bits - 1) - 1, dtype=torch.float64)
    mags = (max_value * base ** (-j)).flip(0)
    return torch.cat([-mags.flip(0), torch.zeros(1, dtype=torch.float64), mags]).float()


def log_quantize(x: torch.Tensor, bits: int = 4, base: float = 2.0, max_value: float | None = None) -> torch.Tensor:
    """Logarithmic quantization anchored at the largest weight: ``Q(x) = sign(x) · m · base^(-j)`` or 0.

    ``m = max|x|`` unless ``max_value`` is given, ``j ∈ {0, …, 2^(b-1) - 2}``; each value goes to the
    nearest level. ``base=2`` gives the levels of :func:`pow2_quantize` scaled by ``m / 2^k_max``
    (no longer exact powers of two); ``base=√2`` halves the ratio between neighbouring levels
    (finer, narrower range). Returns a tensor like ``x``; ``bits`` in [2, 8].
    Explained in notebooks/01_quantization_basics.ipynb
    """
    require_float_tensor("x", x, allow_empty=False)
    bits = check_bits(bits, *BITS)
    if max_value is None:
        max_value = x.detach().abs().max().item()
        if max_value == 0:
            return torch.zeros_like(x)
    levels = log_levels(bits, max_value, base).to(x.device, torch.float64)
    return _nearest_level(x.detach().double(), levels).to(x.dtype)


def uniform_quantize(x: torch.Tensor, bits: int = 4) -> torch.Tensor:
    """Symmetric uniform quantization ``Q(x) = s · clip(round(x/s), -(2^(b-1)-1), 2^(b-1)-1)``.

    ``s = max|x| / (2^(b-1) - 1)``: ``2^b - 1`` evenly spaced levels including 0 (the ``"restricted"``
    variant of ``affine.symmetric_grid``), the baseline the non-uniform quantizers are compared with.
    Returns a tensor like ``x``; ``bits`` in [2, 8]. Explained in notebooks/01_quantization_basics.ipynb
    """
    require_float_tensor("x", x, allow_empty=False)
    divisor, qmin, qmax = symmetric_grid(check_bits(bits, *BITS), "restricted")
    peak = x.detach().abs().max()
    if peak == 0:
        return torch.zeros_like(x)
    s = peak / divisor
    return (torch.round(x.detach() / s).clamp(qmin, qmax) * s).to(x.dtype)


def quantization_error(x: torch.Tensor, x_quantized: torch.Tensor) -> dict[str, float]:
    """Error metrics of ``x_quantized`` against ``x`` (same shape).

    ``mse = mean (x - q)²``, ``sqnr_db = 10·log10(Σx² / Σ(x - q)²)`` (signal-to-quantization-noise
    ratio, higher is better; ``inf`` when exact), ``max_abs = max |x - q|`` and
    ``rel_error = mean |x - q| / (|x| + eps)`` over non-zero ``x`` (how badly small weights are treated).
    Explained in notebooks/01_quantization_basics.ipynb
    """
    require_float_tensor("x", x, allow_empty=False)
    require_float_tensor("x_quantized", x_quantized, allow_empty=False)
    if x.shape != x_quantized.shape:
        raise ValueError(f"x_quantized must have the shape of x {tuple(x.shape)}, got {tuple(x_quantized.shape)}")
    x, q = x.detach().double(), x_quantized.detach().double()
    err = x - q
    nz = x != 0
    rel = float((err[nz].abs() / x[nz].abs()).mean()) if nz.any() else 0.0
    return {"mse": mse(x, q), "sqnr_db": sqnr_db(x, q), "max_abs": float(err.abs().max()), "rel_error": rel}


def compare_quantizers(x: torch.Tensor, bits: int = 4) -> dict[str, dict[str, float]]:
    """``{"uniform" | "pow2" | "log2" | "log_sqrt2": quantization_error(...)}`` at the same ``bits``.

    All four spend ``2^b - 1`` levels (sign, zero and magnitudes), so the comparison is fair in bits.
    Try it on a Gaussian (``torch.randn``) and a Laplacian tensor. ``bits`` in [2, 8].
    Explained in notebooks/01_quantization_basics.ipynb
    """
    require_float_tensor("x", x, allow_empty=False)
    bits = check_bits(bits, *BITS)
    return {
        "uniform": quantization_error(x, uniform_quantize(x, bits)),
        "pow2": quantization_error(x, pow2_quantize(x, bits)),
        "log2": quantization_error(x, log_quantize(x, bits, base=2.0)),
        "log_sqrt2": quantization_error(x, log_quantize(x, bits, base=math.sqrt(2.0))),
    }
