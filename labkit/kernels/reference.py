r"""The int8 kernels in plain numpy, written to be read: the integer arithmetic of labkit (and, at
the end, the float int4 weight-only product ``int4_linear``).

This module is the specification. The compiled module (``labkit/kernels/src/*.cpp``) computes
exactly the same integers, faster; the tests compare the two on thousands of random cases.
Explained in notebooks/04_integer_inference.ipynb.

The integer arithmetic, once and precisely
==========================================
(after Jacob et al., "Quantization and Training of Neural Networks for Efficient Integer-Arithmetic-
Only Inference", CVPR 2018, and the gemmlowp / TFLite reference code.)

**0. Affine quantization.** A real tensor ``r`` is stored as integers ``q`` with a scale ``s > 0``
and a zero point ``z``: ``r ≈ s · (q − z)``. Activations are ``uint8`` with one ``(s_x, z_x)`` per
tensor, ``z_x ∈ [0, 255]`` (the integer that stands for 0.0, so zero padding is exact). Weights are
``int8`` and *symmetric* (``z_w = 0``) with one scale ``s_w[n]`` per output channel ``n``.

**1. Integer products.** For activations ``x`` (uint8 ``[M, K]``) and weights ``w`` (int8
``[N, K]``)::

    Σ_k (x[m,k] − z_x) · w[n,k]  =  Σ_k x[m,k] · w[n,k]  −  z_x · Σ_k w[n,k]
                                    └── gemm_u8s8s32 ──┘      └ weight row sums, computed once ┘

The GEMM multiplies raw bytes; the zero point costs one multiply-add per output. Every sum is
*exact* in int32: ``|x · w| ≤ 255 · 128 = 32 640`` and ``K ≤ 65 536``, so
``|Σ| ≤ 2 139 095 040 < 2³¹ − 1``; so is every partial sum, in any order (which is why SIMD code
may add the products in any grouping). Larger ``K`` is refused.

**2. Bias.** ``acc = Σ_k (x − z_x) · w + bias[n]`` with an int32 bias quantized with scale
``s_x · s_w[n]`` (``bias = round(b / (s_x s_w[n]))``) so that it adds directly. ``acc`` is computed
exactly and saturated to int32 (only an absurd bias near ±2³¹ can reach the limits).

**3. The fixed-point multiplier.** The real output is ``s_x s_w[n] · acc ≈ s_out · (q_out − z_out)``,
so ``q_out = z_out + M · acc`` with a real ``M = s_x s_w[n] / s_out`` (typically ``2⁻¹⁰..1``).
Integer-only inference stores ``M`` as ``M ≈ m · 2^(shift − 31)`` with an int32 ``m ∈ [2³⁰, 2³¹)``,
a Q0.31 number in ``[0.5, 1)``, and an integer ``shift`` (``quantize_multiplier``):
``M = f · 2^e`` with ``f ∈ [0.5, 1)`` (``frexp``); ``m = round(f · 2³¹)``, rounding half away from
zero; if that gives ``2³¹`` then ``m = 2³⁰`` and ``e += 1``; ``shift = e``. labkit refuses a
``shift`` outside ``[−31, 30]`` (``M`` below about ``2⁻³²`` or from ``2³⁰``); TFLite would flush
the tiny ones to ``m = 0``.

**4. Requantization** (TFLite's reference ``MultiplyByQuantizedMultiplier``, two roundings), for
an int32 ``acc`` and the ``(m, shift)`` of its output column:

a. ``left = max(shift, 0)``, ``right = max(−shift, 0)``.
b. ``x = acc · 2^left``, saturated to int32. (TFLite multiplies in int32 here, undefined on
   overflow; labkit saturates. Only multipliers ``M ≥ 1`` have ``left > 0``.)
c. ``h = SaturatingRoundingDoublingHighMul(x, m)``: the 64-bit product ``p = x · m``, plus a nudge
   of ``2³⁰`` if ``p ≥ 0`` else ``1 − 2³⁰``, divided by ``2³¹`` *truncating toward zero*. That is
   ``round(p / 2³¹)`` with ties toward +∞ — the same integer as ``floor((p + 2³⁰) / 2³¹)``, which
   is what the SIMD code computes. (The "saturating" case ``x = m = −2³¹`` cannot occur: ``m > 0``.)
d. ``q = RoundingDivideByPOT(h, right)``: ``h / 2^right`` rounded to nearest, ties *away from
   zero*: ``(h >> right) + (remainder > threshold)`` with an arithmetic shift,
   ``remainder = h & (2^right − 1)`` and ``threshold = (2^right − 1) >> 1``, plus 1 if ``h < 0``.
e. ``out = clamp(q + z_out, lo, 255)`` as uint8, with ``lo = z_out`` when a ReLU is fused (real
   0.0 is ``z_out``: clamping there *is* the ReLU) and ``lo = 0`` otherwise.

Because ``c`` and ``d`` round separately, ``out`` can differ by one from ``round(M · acc)`` computed
in real numbers; that is the price of integer-only arithmetic, and why tests against float
frameworks allow one unit (LSB).

**5. Convolution** is the same computation on image patches (im2col): for NCHW uint8 input and
OIHW int8 weights, each output pixel's patch ``x[c, oh·stride + i − pad, ow·stride + j − pad]``
(``z_x`` where it falls into the padding: the padding is real 0.0) is a row, the weights reshaped
to ``[O, C·KH·KW]`` are ``w``. Max pooling commutes with the (increasing) affine map, so it works on
the uint8 codes directly.
"""
from __future__ import annotations

import math

import numpy as np

MAX_K = 65536                 # step 1: 255 * 128 * 65536 < 2**31
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def gemm_u8s8s32(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact integer product ``a @ b.T``: a uint8 [M, K], b int8 [N, K] -> int32 [M, N] (step 1)."""
    assert a.dtype == np.uint8 and b.dtype == np.int8 and a.ndim == b.ndim == 2
    assert a.shape[1] == b.shape[1] <= MAX_K
    # float64 holds every integer below 2**53 exactly; each product and every partial sum here is
    # an integer below 2**31, so BLAS's float64 product is exact (and much faster than int64).
    return (a.astype(np.float64) @ b.astype(np.float64).T).astype(np.int32)


def quantize_multiplier(real_multiplier: float) -> tuple[int, int]:
    """Fixed-point form of a real multiplier M > 0: ``(m, shift)`` with m in [2**30, 2**31) and
    ``M ≈ m * 2**(shift - 31)``, as TFLite's QuantizeMultiplier (step 3)."""
    real = float(real_multiplier)
    if not (math.isfinite(real) and real > 0):
        raise ValueError(f"real_multiplier must be a finite number > 0, got {real_multiplier!r}")
    fraction, shift = math.frexp(real)          # real = fraction * 2**shift, fraction in [0.5, 1)
    scaled = fraction * 2.0**31                 # exact: a power-of-two scaling
    m = int(scaled)
    if scaled - m >= 0.5:                       # half away from zero (std::round), not round-half-even
        m += 1
    if m == 2**31:                              # the fraction rounded up to 1.0
        m //= 2
        shift += 1
    if not -31 <= shift <= 30:
        raise ValueError(f"real_multiplier must lie in [2**-32, 2**30) so that the shift fits in "
                         f"[-31, 30], got {real!r}")
    return m, shift


def saturating_rounding_doubling_high_mul(x: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Step 4c on int64 arrays: round(x * m / 2**31), nudge and division truncating toward zero."""
    product = x * m                                           # |x*m| <= 2**62: exact in int64
    nudge = np.where(product >= 0, 2**30, 1 - 2**30)
    numerator = product + nudge
    quotient = np.abs(numerator) >> 31                        # truncate toward zero ...
    quotient = np.where(numerator < 0, -quotient, quotient)   # ... keeping the sign
    overflow = (x == INT32_MIN) & (m == INT32_MIN)            # never for m > 0; kept for fidelity
    return np.where(overflow, INT32_MAX, quotient)


def rounding_divide_by_pot(x: np.ndarray, exponent: np.ndarray) -> np.ndarray:
    """Step 4d on int64 arrays: x / 2**exponent, to nearest, ties away from zero."""
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def requantize(acc: np.ndarray, multiplier, shift, out_zero_point: int, relu: bool = False) -> np.ndarray:
    """int32 accumulators [..., N] -> uint8 (step 4). ``multiplier`` and ``shift`` are scalars or
    have one entry per output column (the last axis)."""
    assert acc.dtype == np.int32
    m = np.asarray(multiplier, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    left, right = np.maximum(shift, 0), np.maximum(-shift, 0)                           # a
    x = np.clip(acc.astype(np.int64) << left, INT32_MIN, INT32_MAX)                     # b
    q = rounding_divide_by_pot(saturating_rounding_doubling_high_mul(x, m), right)      # c, d
    low = out_zero_point if relu else 0
    return np.clip(q + out_zero_point, low, 255).astype(np.uint8)                       # e


def qlinear(x: np.ndarray, x_zero_point: int, w: np.ndarray, bias, multiplier, shift,
            out_zero_point: int, relu: bool = False) -> np.ndarray:
    """Quantized linear layer: x uint8 [M, K], w int8 [N, K], bias int32 [N] or None -> uint8 [M, N]
    = requantize(Σ_k (x - x_zero_point) w + bias) (steps 1-4)."""
    sums = gemm_u8s8s32(x, w).astype(np.int64)
    row_sums = w.astype(np.int64).sum(axis=1)                       # Σ_k w[n, k], once per layer
    acc = sums - x_zero_point * row_sums                            # step 1
    if bias is not None:
        acc = acc + bias.astype(np.int64)                           # step 2
    acc = np.clip(acc, INT32_MIN, INT32_MAX).astype(np.int32)
    return requantize(acc, multiplier, shift, out_zero_point, relu)


def conv_output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """Output length of a convolution or pooling window along one axis."""
    return (size + 2 * padding - kernel) // stride + 1


def im2col(x: np.ndarray, kernel_h: int, kernel_w: int, stride: tuple[int, int],
           padding: tuple[int, int], pad_value: int) -> np.ndarray:
    """uint8 [B, C, H, W] -> patches [B, OH*OW, C*KH*KW], padding filled with ``pad_value``."""
    batch, channels, height, width = x.shape
    (sh, sw), (ph, pw) = stride, padding
    oh, ow = conv_output_size(height, kernel_h, sh, ph), conv_output_size(width, kernel_w, sw, pw)
    padded = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=pad_value)
    cols = np.empty((batch, oh, ow, channels, kernel_h, kernel_w), dtype=np.uint8)
    for i in range(kernel_h):
        for j in range(kernel_w):
            window = padded[:, :, i:i + sh * oh:sh, j:j + sw * ow:sw]     # [B, C, OH, OW]
            cols[:, :, :, :, i, j] = window.transpose(0, 2, 3, 1)
    return cols.reshape(batch, oh * ow, channels * kernel_h * kernel_w)


def qconv2d(x: np.ndarray, x_zero_point: int, w: np.ndarray, bias, multiplier, shift,
            out_zero_point: int, stride=(1, 1), padding=(0, 0), relu: bool = False) -> np.ndarray:
    """Quantized 2-D convolution (step 5): x uint8 NCHW, w int8 OIHW, bias int32 [O] or None ->
    uint8 [B, O, OH, OW]; padding is filled with ``x_zero_point``."""
    out_channels, _, kernel_h, kernel_w = w.shape
    cols = im2col(x, kernel_h, kernel_w, stride, padding, x_zero_point)  # [B, P, C*KH*KW]
    batch, pixels, k = cols.shape
    out = qlinear(cols.reshape(batch * pixels, k), x_zero_point, w.reshape(out_channels, k),
                  bias, multiplier, shift, out_zero_point, relu)        # [B*P, O]
    oh = conv_output_size(x.shape[2], kernel_h, stride[0], padding[0])
    return np.ascontiguousarray(out.reshape(batch, oh, -1, out_channels).transpose(0, 3, 1, 2))


def maxpool2d_u8(x: np.ndarray, kernel_size=(2, 2), stride=None, padding=(0, 0)) -> np.ndarray:
    """Max pooling on uint8 NCHW codes (step 5); padded cells never win (as in torch)."""
    (kh, kw), (ph, pw) = kernel_size, padding
    sh, sw = stride if stride is not None else kernel_size
    batch, channels, height, width = x.shape
    oh, ow = conv_output_size(height, kh, sh, ph), conv_output_size(width, kw, sw, pw)
    padded = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=0)  # 0: the smallest code
    out = np.zeros((batch, channels, oh, ow), dtype=np.uint8)
    for i in range(kh):
        for j in range(kw):
            out = np.maximum(out, padded[:, :, i:i + sh * oh:sh, j:j + sw * ow:sw])
    return out


# ---- int4 weight-only product (float32 activations) ---------------------------------------------
def int4_linear(x: np.ndarray, packed: np.ndarray, scale: np.ndarray, zero_point: np.ndarray,
                group_size: int, bias: np.ndarray | None = None) -> np.ndarray:
    """``x Wᵀ + b`` in float64 for x float32 [M, K] and int4 weights in labkit.llm.int4's format:
    codes ``q`` packed two per byte (uint8 [N, K/2], column 2j in the low nibble), one float32 scale
    ``s`` and uint8 zero point ``z`` per group of ``group_size`` columns ([N, K/group_size]),
    ``W = (q − z)·s``. Returns float32 [M, N] (the compiled kernel's accumulation order differs:
    compare within float32 rounding, see tests/kernels/test_int4.py)."""
    n = packed.shape[0]
    codes = np.empty((n, 2 * packed.shape[1]), dtype=np.float64)
    codes[:, 0::2], codes[:, 1::2] = packed & 0x0F, packed >> 4
    grouped = codes.reshape(n, -1, group_size) - zero_point.astype(np.float64)[..., None]
    w = (grouped * scale.astype(np.float64)[..., None]).reshape(n, -1)
    out = x.astype(np.float64) @ w.T
    return (out if bias is None else out + bias).astype(np.float32)
