"""Checkers for notebooks/02_binary_ternary.ipynb: TWN threshold and scale, XNOR per-channel scales,
the packed size of a ternary layer.

Every expected value is computed here from first principles in float64 NumPy (the formulas of the
notebook), never with ``labkit.quant.binary`` and never from the learner's answer; the tests check
that these independent values agree with labkit. A wrong answer raises ``ExerciseError`` with a
hint aimed at the most likely mistake; a right one returns a ``✓`` line.
"""
from __future__ import annotations

import math

import numpy as np

from labkit import measure, models
from labkit.exercises import ExerciseError, checker, expect_answered, expect_close, expect_count, passed

# Exercise 1: a 2×4 weight to ternarize by hand (mean |W| = 0.5, so Δ = 0.35 and four weights survive).
TWN_WEIGHT = ((1.2, -0.2, 0.6, 0.0),
              (-1.0, 0.3, -0.6, 0.1))
TWN_FACTOR = 0.7

# Exercise 2: a 3×4 weight (3 output channels) to binarize XNOR-style with one α per output channel.
XNOR_WEIGHT = ((0.4, -0.2, 0.1, -0.3),
               (-1.0, 0.6, 0.8, -0.6),
               (0.05, 0.0, -0.15, 0.2))

_RTOL = 1e-5   # float32 arithmetic in the learner's cell is fine
_ATOL = 1e-6


# ----------------------------------------------------------------------------- helpers
def _as_float(value):
    """``value`` as a Python float when it is a single number (int, float, 0-d/1-element array), else None."""
    try:
        array = np.asarray(value.detach().cpu().numpy() if hasattr(value, "detach") else value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):  # not a number, or an int too large for a float
        return None
    return float(array.reshape(-1)[0]) if array.size == 1 else None


def _as_array(value):
    """``value`` as a float64 array, or None if it cannot be read as numbers."""
    try:
        return np.asarray(value.detach().cpu().numpy() if hasattr(value, "detach") else value, dtype=np.float64)
    except (TypeError, ValueError):
        return None


def _near(a, b) -> bool:
    return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-6)


def _same(a, b) -> bool:
    return a is not None and a.shape == np.shape(b) and np.allclose(a, b, rtol=1e-4, atol=1e-6)


def twn_reference(weight, factor: float = TWN_FACTOR) -> tuple[float, float, np.ndarray]:
    """``(Δ, α, Ŵ)`` of Ternary Weight Networks for ``weight`` (per tensor), in float64.

    ``Δ = factor · mean|W|``; ``α = mean of |W_i| over the kept weights |W_i| > Δ``;
    ``Ŵ = α · sign(W) · 1{|W| > Δ}``.
    """
    w = np.asarray(weight, dtype=np.float64)
    delta = factor * np.abs(w).mean()
    keep = np.abs(w) > delta
    alpha = np.abs(w)[keep].mean() if keep.any() else 0.0
    return float(delta), float(alpha), alpha * np.sign(w) * keep


def xnor_reference(weight) -> tuple[np.ndarray, np.ndarray]:
    """``(α, Ŵ)`` of XNOR-Net per output channel (dim 0) in float64: ``α_c = mean|W_c|``,
    ``Ŵ_c = α_c · b_c`` with ``b = +1 where W >= 0 else -1``."""
    w = np.asarray(weight, dtype=np.float64)
    alpha = np.abs(w).reshape(w.shape[0], -1).mean(axis=1)
    signs = np.where(w >= 0, 1.0, -1.0)
    return alpha, alpha.reshape(-1, *([1] * (w.ndim - 1))) * signs


# ----------------------------------------------------------------------------- exercise 1
@checker
def check_twn(delta, alpha, w_ternary) -> str:
    """Exercise: TWN threshold ``delta``, scale ``alpha`` and ternary tensor ``w_ternary`` of ``TWN_WEIGHT``.

    Expected (per tensor, factor 0.7): ``Δ = 0.7 · mean|W|``, ``α = mean(|W_i| : |W_i| > Δ)``,
    ``Ŵ = α · sign(W) · 1{|W| > Δ}`` — computed in float64 from ``TWN_WEIGHT``.
    """
    for name, value in (("delta", delta), ("alpha", alpha), ("w_ternary", w_ternary)):
        expect_answered(name, value)
    w = np.asarray(TWN_WEIGHT, dtype=np.float64)
    exp_delta, exp_alpha, exp_w = twn_reference(w)

    got = _as_float(delta)
    hint = ("Δ = 0.7 · E|W|: the mean of the *absolute* values, times 0.7."
            if _near(got, TWN_FACTOR * w.mean()) else
            "multiply the mean |W| by the TWN factor 0.7." if _near(got, np.abs(w).mean()) else
            "E|W| is the mean of |W| over all 8 weights, not the largest |W|."
            if _near(got, TWN_FACTOR * np.abs(w).max()) else
            "Δ = 0.7 · (1/n) Σ |W_i| over all n = 8 weights.")
    expect_close("delta", delta, exp_delta, rtol=_RTOL, atol=_ATOL, hint=hint)

    keep = np.abs(w) > exp_delta
    got = _as_float(alpha)
    hint = ("that is XNOR's α = mean|W| over *all* weights; TWN averages |W_i| only over the weights it "
            "keeps (|W_i| > Δ)." if _near(got, np.abs(w).mean()) else
            f"divide the sum of the kept |W_i| by the number of kept weights ({int(keep.sum())}), not by all "
            f"{w.size}." if _near(got, np.abs(w)[keep].sum() / w.size) else
            "α is the mean of |W_i| over the kept weights; the zeroed weights do not enter it."
            if _near(got, np.abs(w)[~keep].mean()) else
            "α = mean of |W_i| over the weights with |W_i| > Δ (the least-squares scale for that support).")
    expect_close("alpha", alpha, exp_alpha, rtol=_RTOL, atol=_ATOL, hint=hint)

    got = _as_array(w_ternary)
    codes = np.sign(w) * keep
    hint = ("those are the ternary codes t ∈ {-1, 0, +1}; the weight used in the forward pass is α · t."
            if _same(got, codes) else
            "that is α · sign(W) with no threshold: every weight with |W_i| ≤ Δ must become 0."
            if _same(got, exp_alpha * np.where(w >= 0, 1.0, -1.0)) else
            "Ŵ_i = +α where W_i > Δ, −α where W_i < −Δ, and 0 in between.")
    if got is None or got.shape != w.shape:
        raise ExerciseError(f"`w_ternary` should be a {w.shape[0]}×{w.shape[1]} array or tensor like W, got "
                            f"{type(w_ternary).__name__} of shape {None if got is None else got.shape}.", hint)
    expect_close("w_ternary", w_ternary, exp_w, rtol=_RTOL, atol=_ATOL, hint=hint)
    kept = int(keep.sum())
    return passed(f"Δ = 0.7 · {np.abs(w).mean():.4g} = {exp_delta:.4g}; {kept} of {w.size} weights survive "
                  f"(sparsity {1 - kept / w.size:.0%}) with α = {exp_alpha:.4g}.")


# ----------------------------------------------------------------------------- exercise 2
@checker
def check_xnor_alphas(alpha, squared_error) -> str:
    """Exercise: per-output-channel XNOR scales ``alpha`` of ``XNOR_WEIGHT`` and ``squared_error``
    ``‖W − Ŵ‖²`` summed over all weights, where ``Ŵ_c = α_c · sign(W_c)`` (sign(0) = +1).

    Expected: ``α_c = mean_j |W_cj|`` (row means of |W|) in float64, and ``Σ (|W| − α_c)²``.
    """
    expect_answered("alpha", alpha)
    expect_answered("squared_error", squared_error)
    w = np.asarray(XNOR_WEIGHT, dtype=np.float64)
    exp_alpha, exp_w = xnor_reference(w)
    channels = w.shape[0]

    got = _as_array(alpha)
    per_tensor = np.abs(w).mean()
    hint = ("one α for the whole tensor is per-tensor XNOR; per channel means one α per output channel "
            "(per row of W)." if got is not None and got.size in (1, channels) and np.allclose(got, per_tensor) else
            f"those are means over the columns (dim 1); the output channels are the {channels} rows (dim 0)."
            if _same(got.reshape(-1) if got is not None else None, np.abs(w).mean(axis=0)) else
            "take the mean of the *absolute* values: α must be positive." if _same(got, w.mean(axis=1)) else
            "α_c is the mean of |W| over the row, not the largest |W|." if _same(got, np.abs(w).max(axis=1)) else
            "α_c = (1/n) Σ_j |W_cj|, the mean absolute value of row c.")
    if got is None or got.reshape(-1).shape != (channels,):
        raise ExerciseError(f"`alpha` should hold {channels} numbers, one per output channel (row), got "
                            f"{type(alpha).__name__} {'' if got is None else f'with {got.size} values'}.", hint)
    expect_close("alpha", got.reshape(-1), exp_alpha, rtol=_RTOL, atol=_ATOL, hint=hint)

    got = _as_float(squared_error)
    per_tensor_error = float(((w - per_tensor * np.where(w >= 0, 1.0, -1.0)) ** 2).sum())
    hint = ("that is the error of the per-tensor α; use your per-channel α_c." if _near(got, per_tensor_error) else
            "square the differences before summing: ‖W − Ŵ‖² = Σ (W_i − Ŵ_i)²."
            if _near(got, float(np.abs(w - exp_w).sum())) else
            "sum over all 12 weights, not the mean." if _near(got, float(((w - exp_w) ** 2).mean())) else
            "no square root: ‖W − Ŵ‖² is the sum of squares itself."
            if _near(got, float(np.sqrt(((w - exp_w) ** 2).sum()))) else
            "Ŵ_cj = α_c · sign(W_cj) with sign(0) = +1; then add up (W_cj − Ŵ_cj)² = (|W_cj| − α_c)².")
    expect_close("squared_error", squared_error, float(((w - exp_w) ** 2).sum()), rtol=_RTOL, atol=_ATOL, hint=hint)
    return passed(f"α = {np.round(exp_alpha, 4).tolist()} per channel; ‖W − Ŵ‖² = {((w - exp_w) ** 2).sum():.4g} "
                  f"(one α per tensor: {per_tensor_error:.4g}).")


# ----------------------------------------------------------------------------- exercise 3
@checker
def check_ternary_layer_bytes(answer, layer: str = "fc1") -> str:
    """Exercise: bytes of one LeNet-5 layer stored as ternary weights — 2-bit codes packed with
    ``measure.pack_bits``, one fp32 α per tensor, biases in fp32 (no file headers).

    Expected, from a freshly built ``lenet5``: ``len(pack_bits(codes, 2)) + 4 + 4 · bias.numel()``.
    """
    expect_answered("ternary_bytes", answer)
    model = models.build("lenet5")
    modules = dict(model.named_children())
    weighted = [name for name, m in modules.items() if hasattr(m, "weight")]
    if layer not in weighted:
        raise ValueError(f"layer must name a LeNet-5 layer with weights, one of {weighted}; got {layer!r}")
    module = modules[layer]
    n, out = module.weight.numel(), module.weight.shape[0]
    biases = module.bias.numel() if module.bias is not None else 0
    codes = len(measure.pack_bits(np.zeros(n, dtype=np.uint8), 2))
    expected = codes + 4 + 4 * biases
    one_bit = -(-n // 8)
    hint = {
        one_bit + 4 + 4 * biases: "three levels {−α, 0, +α} do not fit in 1 bit: a ternary code needs 2 bits.",
        -(-n // 5) + 4 + 4 * biases: "that is base-3 packing (5 ternary digits per byte, 1.6 bits); this "
                                     "exercise packs 2-bit codes with pack_bits, four per byte.",
        math.ceil(n * math.log2(3) / 8) + 4 + 4 * biases: "log₂3 ≈ 1.58 bits is the entropy bound; pack_bits "
                                                           "stores whole 2-bit codes, four per byte.",
        codes + 4 * biases: "the layer also stores its scale α as one float32 (4 bytes).",
        codes + 4: f"the {biases} biases stay float32 (4 bytes each).",
        codes + 4 * out + 4 * biases: "with per-tensor TWN there is one α for the whole layer, not one per channel.",
        n + 4 + 4 * biases: "that is one byte per weight; 2-bit codes pack four to a byte.",
        4 * (n + biases): "that is the float32 size of the layer.",
        8 * expected: "that is bits; a byte has 8 of them.",
    }.get(_whole(answer), f"{layer} has {n:,} weights × 2 bits, packed into bytes, + one fp32 α + {biases} "
                          f"fp32 biases.")
    expect_count("ternary_bytes", answer, expected, hint)
    fp32 = 4 * (n + biases)
    return passed(f"{layer}: {codes:,} B of codes + 4 B α + {4 * biases} B biases = {expected:,} B "
                  f"({fp32 / expected:.1f}× smaller than its {fp32:,} B in float32).")


def _whole(value):
    number = _as_float(value)
    return int(number) if number is not None and math.isfinite(number) and number.is_integer() else None
