"""Checkers for notebooks/05_quantization_aware_training.ipynb: the clipped straight-through
estimator's mask, LSQ's gradient with respect to the step, and LSQ's gradient scale for LeNet-5.

Every expected value is computed here from first principles in float64 NumPy (the formulas of the
notebook), never with ``labkit.quant.fake_quant`` and never from the learner's answer; the tests
check that these independent values agree with labkit and with torch. A wrong answer raises
``ExerciseError`` with a hint aimed at the most likely mistake; a right one returns a ``✓`` line.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from labkit import models
from labkit.exercises import ExerciseError, checker, expect_answered, expect_close, passed

# Exercise 1: 3-bit unsigned codes [0, 7] with scale 0.25 and zero point 2, i.e. the float grid
# [-0.5, 1.25]. Four inputs lie just outside that float range but *round* onto the grid.
STE_X = (-0.7, -0.6, -0.55, 0.1, 0.5, 1.3, 1.37, 1.4, 2.0)
STE_SCALE = 0.25
STE_ZERO_POINT = 2
STE_BITS = 3
STE_UPSTREAM = (1.0, -2.0, 0.5, 1.5, -1.0, 3.0, 0.25, 2.0, -0.5)   # ∂L/∂x̂ arriving from above

# Exercise 2: LSQ with a signed 3-bit grid (Q_N = 4, Q_P = 3) and step s = 0.5, on 7 values.
LSQ_V = (-2.6, -1.1, -0.2, 0.3, 0.9, 1.4, 2.2)
LSQ_STEP = 0.5
LSQ_BITS = 3
LSQ_UPSTREAM = (0.5, -1.0, 2.0, 1.0, -0.5, 1.0, 1.5)               # ∂L/∂v̂ arriving from above

# Exercise 3: LSQ on LeNet-5 at 4 bits (weights signed per output channel, activations unsigned).
GRAD_SCALE_BITS = 4

_RTOL = 1e-5   # float32 arithmetic in the learner's cell is fine
_ATOL = 1e-6


# ----------------------------------------------------------------------------- helpers
def _as_array(value):
    """``value`` as a flat float64 array, or None if it cannot be read as numbers."""
    try:
        array = np.asarray(value.detach().cpu().numpy() if hasattr(value, "detach") else value, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return array.reshape(-1)


def _as_float(value):
    array = _as_array(value)
    return float(array[0]) if array is not None and array.size == 1 else None


def _same(a, b) -> bool:
    b = np.asarray(b, dtype=np.float64).reshape(-1)
    return a is not None and a.shape == b.shape and np.allclose(a, b, rtol=1e-4, atol=1e-6)


def _near(a, b) -> bool:
    return a is not None and math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-6)


def _require_length(name: str, got, length: int, hint: str) -> None:
    if got is None or got.size != length:
        raise ExerciseError(f"`{name}` should hold {length} numbers (one per input value), got "
                            f"{'something that is not numbers' if got is None else f'{got.size} values'}.", hint)


def ste_reference(x=STE_X, scale=STE_SCALE, zero_point=STE_ZERO_POINT, bits=STE_BITS,
                  upstream=STE_UPSTREAM) -> tuple[np.ndarray, np.ndarray]:
    """``(mask, grad_x)`` of the clipped STE for unsigned ``bits``-bit fake quantization, float64.

    ``c = round(x/s) + z`` (half to even); ``mask = 1{0 ≤ c ≤ 2^bits − 1}``; ``grad_x = upstream · mask``.
    """
    x = np.asarray(x, dtype=np.float64)
    codes = np.round(x / scale) + zero_point
    mask = ((codes >= 0) & (codes <= (1 << bits) - 1)).astype(np.float64)
    return mask, np.asarray(upstream, dtype=np.float64) * mask


def lsq_reference(v=LSQ_V, step=LSQ_STEP, bits=LSQ_BITS, upstream=LSQ_UPSTREAM) -> tuple[np.ndarray, float]:
    """``(dvhat_ds, grad_step)`` of LSQ with a signed ``bits``-bit grid, float64.

    ``∂v̂/∂s = −v/s + round(v/s)`` if ``−Q_N < v/s < Q_P``, ``−Q_N`` below, ``Q_P`` above;
    ``grad_step = g · Σ upstream_i · ∂v̂_i/∂s`` with ``g = 1/sqrt(N·Q_P)``.
    """
    v = np.asarray(v, dtype=np.float64)
    q_n, q_p = 1 << (bits - 1), (1 << (bits - 1)) - 1
    u = v / step
    d = np.where(u <= -q_n, -q_n, np.where(u >= q_p, q_p, -u + np.round(u)))
    g = 1.0 / math.sqrt(v.size * q_p)
    return d, float(g * np.dot(np.asarray(upstream, dtype=np.float64), d))


# ----------------------------------------------------------------------------- exercise 1
@checker
def check_ste_mask(mask, grad_x) -> str:
    """Exercise: the clipped-STE ``mask`` (1 where the gradient passes, 0 where it is blocked) of
    ``STE_X`` under 3-bit unsigned fake quantization (scale 0.25, zero point 2), and the gradient
    ``grad_x = ∂L/∂x`` for the upstream gradient ``STE_UPSTREAM``.
    """
    expect_answered("mask", mask)
    expect_answered("grad_x", grad_x)
    x = np.asarray(STE_X, dtype=np.float64)
    exp_mask, exp_grad = ste_reference()
    qmax = (1 << STE_BITS) - 1
    lo, hi = (0 - STE_ZERO_POINT) * STE_SCALE, (qmax - STE_ZERO_POINT) * STE_SCALE

    got = _as_array(mask)
    hint = ("that is the identity STE (every gradient passes); the clipped STE blocks it where the code "
            "falls outside [0, 7]." if _same(got, np.ones_like(x)) else
            f"compare the *rounded code* c = round(x/s) + z with [0, {qmax}], not x with the float range "
            f"[{lo:g}, {hi:g}]: x = 1.3 gives round(5.2) + 2 = 7, which is on the grid, so its gradient passes."
            if _same(got, ((x >= lo) & (x <= hi)).astype(float)) else
            "1 means 'the gradient passes' (code inside [0, 7]) and 0 'blocked'; yours looks inverted."
            if _same(got, 1 - exp_mask) else
            "the zero point is *added* to round(x/s): c = round(x/s) + 2."
            if _same(got, ((np.round(x / STE_SCALE) >= 0) & (np.round(x / STE_SCALE) <= qmax)).astype(float)) else
            f"c = round(x / {STE_SCALE}) + {STE_ZERO_POINT}; the gradient passes where 0 ≤ c ≤ {qmax}.")
    _require_length("mask", got, x.size, hint)
    expect_close("mask", got, exp_mask, rtol=0, atol=1e-9, hint=hint)

    got = _as_array(grad_x)
    hint = ("that is the upstream gradient unchanged: multiply it by your mask." if _same(got, STE_UPSTREAM) else
            "that is the mask itself; ∂L/∂x = ∂L/∂x̂ · mask, with ∂L/∂x̂ = STE_UPSTREAM."
            if _same(got, exp_mask) else
            "the scale does not appear: ∂x̂/∂x = (1/s) · s · mask = mask."
            if _same(got, exp_grad * STE_SCALE) or _same(got, exp_grad / STE_SCALE) else
            "∂L/∂x_i = STE_UPSTREAM[i] · mask[i].")
    _require_length("grad_x", got, x.size, hint)
    expect_close("grad_x", got, exp_grad, rtol=_RTOL, atol=_ATOL, hint=hint)
    inside = int(exp_mask.sum())
    return passed(f"{inside} of {x.size} inputs pass the gradient, including -0.6, -0.55, 1.3 and 1.37, "
                  f"which lie outside [{lo:g}, {hi:g}] but round onto the grid.")


# ----------------------------------------------------------------------------- exercise 2
@checker
def check_lsq_step_gradient(dvhat_ds, grad_step) -> str:
    """Exercise: LSQ's ``∂v̂_i/∂s`` for each value of ``LSQ_V`` (signed 3 bits, step 0.5) and the
    step's gradient ``grad_step = g · Σ_i LSQ_UPSTREAM[i] · ∂v̂_i/∂s`` with ``g = 1/sqrt(N·Q_P)``.
    """
    expect_answered("dvhat_ds", dvhat_ds)
    expect_answered("grad_step", grad_step)
    v = np.asarray(LSQ_V, dtype=np.float64)
    exp_d, exp_grad = lsq_reference()
    q_n, q_p = 1 << (LSQ_BITS - 1), (1 << (LSQ_BITS - 1)) - 1
    u = v / LSQ_STEP
    inside = (u > -q_n) & (u < q_p)

    got = _as_array(dvhat_ds)
    hint = ("the clipped values do not get 0: below the grid v̂ = −Q_N·s, so ∂v̂/∂s = −Q_N = −4; above, "
            "v̂ = Q_P·s and ∂v̂/∂s = Q_P = 3." if _same(got, np.where(inside, exp_d, 0.0)) else
            "sign: v̂ = round(v/s)·s, so ∂v̂/∂s = round(v/s) + s·(−v/s²)·(STE: d round = 1) = −v/s + round(v/s)."
            if _same(got, np.where(inside, -exp_d, exp_d)) or _same(got, -exp_d) else
            "below the grid ∂v̂/∂s = −Q_N = −4 (Q_N = 2^(b−1) = 4 for signed 3 bits), above it +Q_P = +3."
            if got is not None and got.size == v.size and np.allclose(got[inside], exp_d[inside]) else
            "inside the grid use the STE: ∂v̂/∂s = −v/s + round(v/s) (e.g. v = −1.1: 2.2 − 2 = 0.2).")
    _require_length("dvhat_ds", got, v.size, hint)
    expect_close("dvhat_ds", got, exp_d, rtol=_RTOL, atol=_ATOL, hint=hint)

    got = _as_float(grad_step)
    raw = float(np.dot(LSQ_UPSTREAM, exp_d))
    g = 1.0 / math.sqrt(v.size * q_p)
    hint = ("multiply by LSQ's gradient scale g = 1/sqrt(N·Q_P) = 1/sqrt(7·3)." if _near(got, raw) else
            "g = 1/sqrt(N·Q_P) divides; you multiplied by sqrt(N·Q_P)." if _near(got, raw / g) else
            "Q_P for signed 3 bits is 2^(b−1) − 1 = 3, and N = 7 values share the step."
            if any(_near(got, raw / math.sqrt(v.size * q)) for q in (4, 7, 8)) else
            "weight each ∂v̂_i/∂s by the upstream gradient LSQ_UPSTREAM[i] before summing."
            if _near(got, g * float(exp_d.sum())) else
            "grad_step = (1/sqrt(N·Q_P)) · Σ_i LSQ_UPSTREAM[i] · ∂v̂_i/∂s.")
    if got is None:
        raise ExerciseError(f"`grad_step` should be one number, got {type(grad_step).__name__}.", hint)
    expect_close("grad_step", got, exp_grad, rtol=_RTOL, atol=_ATOL, hint=hint)
    return passed(f"∂v̂/∂s = {np.round(exp_d, 3).tolist()}; Σ = {raw:.4g}, × g = 1/√21 → {exp_grad:.4g}. "
                  "The two clipped values (−2.6 and 2.2) give the largest terms: in LSQ, clipping error "
                  "drives the step as much as rounding error does.")


# ----------------------------------------------------------------------------- exercise 3
def _lenet5_counts() -> tuple[int, int]:
    """(weights per output channel of fc1, features per sample at conv1's output) of a fresh LeNet-5."""
    model = models.build("lenet5")
    modules = dict(model.named_children())
    fc1_per_channel = modules["fc1"].weight[0].numel()
    with torch.no_grad():
        conv1_features = modules["conv1"](torch.zeros(1, 1, 28, 28))[0].numel()
    return int(fc1_per_channel), int(conv1_features)


@checker
def check_lsq_grad_scales(g_fc1_weight, g_conv1_output) -> str:
    """Exercise: LSQ's gradient scale ``g = 1/sqrt(N·Q_P)`` at 4 bits for (a) the step of one output
    channel of LeNet-5's ``fc1`` weight (signed, per channel) and (b) the step of ``conv1``'s output
    activation (unsigned, one step per tensor, N = features of one sample).
    """
    expect_answered("g_fc1_weight", g_fc1_weight)
    expect_answered("g_conv1_output", g_conv1_output)
    n_w, n_a = _lenet5_counts()
    b = GRAD_SCALE_BITS
    qp_w, qp_a = (1 << (b - 1)) - 1, (1 << b) - 1
    exp_w, exp_a = 1 / math.sqrt(n_w * qp_w), 1 / math.sqrt(n_a * qp_a)

    got = _as_float(g_fc1_weight)
    out_channels = 120
    hint = (f"per channel: one step per output channel, so N = {n_w} weights (one row of fc1), not all "
            f"{n_w * out_channels}." if _near(got, 1 / math.sqrt(n_w * out_channels * qp_w)) else
            "signed 4-bit codes are [−8, 7], so Q_P = 7." if any(_near(got, 1 / math.sqrt(n_w * q)) for q in (8, 15, 16))
            else "g = 1/sqrt(N·Q_P), not sqrt(N·Q_P)." if _near(got, math.sqrt(n_w * qp_w)) else
            "no bias term: N counts the weights of one output channel (the inputs of fc1)."
            if _near(got, 1 / math.sqrt((n_w + 1) * qp_w)) else
            f"N = weights sharing the step (one row of fc1), Q_P = 2^(b−1) − 1 = {qp_w}.")
    if got is None:
        raise ExerciseError(f"`g_fc1_weight` should be one number, got {type(g_fc1_weight).__name__}.", hint)
    expect_close("g_fc1_weight", got, exp_w, rtol=1e-4, hint=hint)

    got = _as_float(g_conv1_output)
    hint = ("unsigned 4-bit codes are [0, 15], so Q_P = 15 (ReLU outputs are never negative)."
            if any(_near(got, 1 / math.sqrt(n_a * q)) for q in (7, 8, 16)) else
            "N counts the features of *one* sample (6 channels × 28 × 28), not the batch."
            if any(_near(got, 1 / math.sqrt(n_a * batch * qp_a)) for batch in (32, 64, 128, 256)) else
            "conv1 pads by 2, so its output is 6 × 28 × 28 (not 6 × 24 × 24)."
            if _near(got, 1 / math.sqrt(6 * 24 * 24 * qp_a)) else
            "one channel is not enough: the activation step is shared by all 6 × 28 × 28 features."
            if _near(got, 1 / math.sqrt(28 * 28 * qp_a)) else
            "g = 1/sqrt(N·Q_P) with N = conv1's output features per sample and Q_P = 2^b − 1.")
    if got is None:
        raise ExerciseError(f"`g_conv1_output` should be one number, got {type(g_conv1_output).__name__}.", hint)
    expect_close("g_conv1_output", got, exp_a, rtol=1e-4, hint=hint)
    return passed(f"g = 1/√({n_w}·{qp_w}) = {exp_w:.4g} for an fc1 weight step and 1/√({n_a}·{qp_a}) = "
                  f"{exp_a:.4g} for conv1's activation step: the more values share a step, the smaller its "
                  "gradient must be scaled.")
