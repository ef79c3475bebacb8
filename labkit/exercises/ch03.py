"""Checkers for notebooks/03_post_training_quantization.ipynb: what two observers report after two
calibration batches, batch-norm folding by hand, and predicting which observer clips more.

The first two checkers recompute the expected answer from first principles (Python floats or
torch's own ``BatchNorm2d`` in eval mode), never from ``labkit.quant``; the third runs labkit's
observers, because the question is what they do. ``tests/test_exercises_ch03.py`` cross-checks the
first-principles answers against ``labkit.quant``. A wrong answer raises ``ExerciseError`` with a
hint aimed at the usual mistake.
"""
from __future__ import annotations

import math
from numbers import Real

import numpy as np
import torch
from torch import nn

from labkit.exercises import ExerciseError, checker, expect_answered, expect_close, expect_equal, passed

# Exercise 1: two calibration batches seen by a min/max and a moving-average observer (8-bit unsigned).
EX1_BATCHES = ((-0.4, 0.0, 0.8, 1.9), (0.1, 0.5, 2.6, 3.1))
EX1_BITS = 8
EX1_AVERAGING_CONSTANT = 0.5

# Exercise 2: Conv2d(1 → 2, 2×2 kernel, bias) followed by BatchNorm2d(2) in eval mode.
EX2_WEIGHT = (((1.0, -0.5), (0.25, 2.0)),
              ((-1.5, 0.5), (1.0, 0.0)))
EX2_BIAS = (0.2, -0.1)
EX2_GAMMA = (2.0, 0.5)
EX2_BETA = (0.1, -0.3)
EX2_MEAN = (0.5, -1.0)
EX2_VAR = (4e-4, 0.0625)   # a tiny variance: forgetting eps then changes the answer by ~1 %
EX2_EPS = 1e-5

# Exercise 3: 9,999 activations spread evenly over [0, 1] plus one outlier, 4-bit observers.
EX3_OUTLIER = 50.0
EX3_BITS = 4
EX3_PERCENTILE = 99.9
EX3_OBSERVERS = ("minmax", "percentile")


# --- exercise 1 ------------------------------------------------------------------------------------

def _unsigned_qparams(lo: float, hi: float, bits: int) -> tuple[float, int]:
    qmin, qmax = 0, 2 ** bits - 1
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = (hi - lo) / (qmax - qmin)
    return scale, min(max(qmin - round(lo / scale), qmin), qmax)


def observer_ranges() -> dict[str, tuple[float, float]]:
    """The float range ``(lo, hi)`` each observer of exercise 1 ends with (first principles)."""
    lo, hi = min(EX1_BATCHES[0]), max(EX1_BATCHES[0])
    ranges = {"minmax": (lo, hi)}
    ema_lo, ema_hi = lo, hi
    c = EX1_AVERAGING_CONSTANT
    for batch in EX1_BATCHES[1:]:
        lo, hi = min(lo, min(batch)), max(hi, max(batch))
        ema_lo, ema_hi = ema_lo + c * (min(batch) - ema_lo), ema_hi + c * (max(batch) - ema_hi)
    ranges["minmax"] = (lo, hi)
    ranges["moving_average"] = (ema_lo, ema_hi)
    return ranges


def _as_number(name: str, value, hint: str | None = None) -> float:
    expect_answered(name, value, hint)
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(float(value)):
        raise ExerciseError(f"`{name}` should be a finite number, got {type(value).__name__} {value!r}.", hint)
    return float(value)


@checker
def check_observer_qparams(minmax_scale, minmax_zero_point, ema_scale, ema_zero_point) -> str:
    """Exercise 1: scale and zero point (8-bit unsigned, asymmetric) that a min/max observer and a
    moving-average observer (``c = 0.5``) report after the two batches ``EX1_BATCHES``.

    Expected: min/max keeps the running extremes; the moving average starts at the first batch's
    min/max and then moves ``lo ← lo + c·(min(x) − lo)``, ``hi ← hi + c·(max(x) − hi)``; both ranges
    give ``s = (hi⁺ − lo⁻) / 255``, ``z = −round(lo⁻ / s)``.
    """
    ranges = observer_ranges()
    (mm_lo, mm_hi), (ema_lo, ema_hi) = ranges["minmax"], ranges["moving_average"]
    mm_s, mm_z = _unsigned_qparams(mm_lo, mm_hi, EX1_BITS)
    ema_s, ema_z = _unsigned_qparams(ema_lo, ema_hi, EX1_BITS)
    levels = 2 ** EX1_BITS
    first_lo, first_hi = min(EX1_BATCHES[0]), max(EX1_BATCHES[0])
    last_lo, last_hi = min(EX1_BATCHES[-1]), max(EX1_BATCHES[-1])

    got = _as_number("minmax_scale", minmax_scale)
    hint = {round(mm_s * (levels - 1) / levels, 9): f"{levels} levels are {levels - 1} steps: divide by 2^b − 1 = {levels - 1}.",
            round((mm_hi - last_lo) / (levels - 1), 9): "min/max keeps the smallest value of *every* batch seen, "
                                                        "not only the last one.",
            round((first_hi - first_lo) / (levels - 1), 9): "the second batch widened the range: min/max keeps the "
                                                            "running extremes over all batches.",
            round(mm_hi / (levels - 1), 9): f"the range must reach down to the negative minimum {mm_lo}."}.get(
        round(got, 9), "s = (max − min) / (2^b − 1) with min and max over both batches.")
    expect_close("minmax_scale", got, mm_s, rtol=1e-4, hint=hint)
    got_z = _as_number("minmax_zero_point", minmax_zero_point)
    hint = {float(-mm_z): "the zero point is −round(min / s): min is negative, so z is positive.",
            float(math.floor(-mm_lo / mm_s)): "round to the nearest integer, not down.",
            float(math.ceil(-mm_lo / mm_s)) if math.ceil(-mm_lo / mm_s) != mm_z else None:
                "round to the nearest integer, not up."}.get(got_z, f"z = 0 − round(min / s) = −round({mm_lo} / s).")
    expect_equal("minmax_zero_point", got_z, float(mm_z), hint=hint)

    got = _as_number("ema_scale", ema_scale)
    hint = {round(mm_s, 9): "that is the min/max scale: the moving average only moves halfway (c = 0.5) towards "
                            "each new batch's min and max.",
            round(_unsigned_qparams(last_lo, last_hi, EX1_BITS)[0], 9): "that is the last batch alone (c = 1); "
                                                                        "with c = 0.5 the range moves halfway.",
            round(_unsigned_qparams(first_lo, first_hi, EX1_BITS)[0], 9): "that is the first batch alone: the "
                                                                          "second batch moves the range halfway."}.get(
        round(got, 9), f"lo = {first_lo} + 0.5·({last_lo} − {first_lo}), hi = {first_hi} + 0.5·({last_hi} − {first_hi}); "
                       "then s = (hi − lo) / 255 (lo is still negative).")
    expect_close("ema_scale", got, ema_s, rtol=1e-4, hint=hint)
    got_z = _as_number("ema_zero_point", ema_zero_point)
    expect_equal("ema_zero_point", got_z, float(ema_z),
                 hint=f"z = −round(lo / s) with the moving-average lo = {ema_lo:.3g} and its own scale.")
    return passed(f"min/max range [{mm_lo}, {mm_hi}] → s = {mm_s:.6f}, z = {mm_z}; moving average "
                  f"[{ema_lo:.3g}, {ema_hi:.3g}] → s = {ema_s:.6f}, z = {ema_z}.")


# --- exercise 2 ------------------------------------------------------------------------------------

def tiny_conv_bn() -> tuple[nn.Conv2d, nn.BatchNorm2d]:
    """The conv and batch norm of exercise 2, in eval mode (fresh copies at every call)."""
    conv = nn.Conv2d(1, 2, kernel_size=2, bias=True)
    bn = nn.BatchNorm2d(2, eps=EX2_EPS)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor(EX2_WEIGHT).unsqueeze(1))
        conv.bias.copy_(torch.tensor(EX2_BIAS))
        bn.weight.copy_(torch.tensor(EX2_GAMMA))
        bn.bias.copy_(torch.tensor(EX2_BETA))
        bn.running_mean.copy_(torch.tensor(EX2_MEAN))
        bn.running_var.copy_(torch.tensor(EX2_VAR))
    return conv.eval(), bn.eval()


def _as_tensor(name: str, value, shape: tuple, hint: str) -> torch.Tensor:
    expect_answered(name, value, hint)
    try:
        tensor = torch.as_tensor(np.asarray(value.detach().cpu() if hasattr(value, "detach") else value,
                                            dtype=np.float64))
    except (TypeError, ValueError):
        raise ExerciseError(f"`{name}` should be a tensor or nested list of numbers, got {type(value).__name__}.",
                            hint) from None
    if tuple(tensor.shape) != shape:
        raise ExerciseError(f"`{name}` has shape {tuple(tensor.shape)}, expected {shape} "
                            "(the folded layer has the conv's shape).", hint)
    if not torch.isfinite(tensor).all():
        raise ExerciseError(f"`{name}` contains NaN or Inf.", hint)
    return tensor


@checker
def check_folded_bn(w_folded, b_folded) -> str:
    """Exercise 2: the weight ``[2, 1, 2, 2]`` and bias ``[2]`` of the single conv equal to
    ``bn(conv(x))`` in eval mode (``tiny_conv_bn``).

    Expected answer checked two ways: against ``w·γ/σ`` and ``(b − μ)·γ/σ + β`` with
    ``σ = sqrt(var + eps)`` computed in float64, and by running torch's own conv + BatchNorm on
    random inputs and comparing with the learner's single conv.
    """
    shape_w, shape_b = (2, 1, 2, 2), (2,)
    w = _as_tensor("w_folded", w_folded, shape_w, "w_folded = w · (γ/σ) per output channel.")
    b = _as_tensor("b_folded", b_folded, shape_b, "b_folded = (b − μ)·γ/σ + β, one per output channel.")
    weight = torch.tensor(EX2_WEIGHT, dtype=torch.float64).unsqueeze(1)
    bias, gamma, beta = (torch.tensor(v, dtype=torch.float64) for v in (EX2_BIAS, EX2_GAMMA, EX2_BETA))
    mean, var = torch.tensor(EX2_MEAN, dtype=torch.float64), torch.tensor(EX2_VAR, dtype=torch.float64)
    sigma = torch.sqrt(var + EX2_EPS)
    factor = gamma / sigma
    expected_w = weight * factor.reshape(-1, 1, 1, 1)
    expected_b = (bias - mean) * factor + beta

    def near(a, b_):
        return bool(torch.allclose(a, b_, rtol=1e-6, atol=1e-9))

    w_hints = [(weight * (gamma / torch.sqrt(var)).reshape(-1, 1, 1, 1), "σ = sqrt(var + eps): the eps matters "
                                                                           "when the variance is tiny."),
               (weight * (gamma / (var + EX2_EPS)).reshape(-1, 1, 1, 1), "divide by the standard deviation "
                                                                          "sqrt(var + eps), not by the variance."),
               (weight * (sigma / gamma).reshape(-1, 1, 1, 1), "the factor is γ/σ, not σ/γ."),
               (weight * gamma.reshape(-1, 1, 1, 1), "divide by σ = sqrt(var + eps) as well as multiplying by γ."),
               (weight / sigma.reshape(-1, 1, 1, 1), "multiply by γ as well as dividing by σ.")]
    hint = next((text for candidate, text in w_hints if near(w, candidate)),
                "each output channel c of the weight is scaled by γ_c / sqrt(var_c + eps).")
    expect_close("w_folded", w, expected_w, rtol=1e-5, atol=1e-7, hint=hint)
    b_hints = [((bias - mean) * gamma / torch.sqrt(var) + beta, "σ = sqrt(var + eps) in the bias too."),
               (bias * factor - mean + beta, "subtract μ *before* scaling: (b − μ)·γ/σ + β."),
               ((bias - mean) * factor, "add β at the end: (b − μ)·γ/σ + β."),
               (bias * factor + beta, "the running mean μ must be subtracted: (b − μ)·γ/σ + β."),
               ((-mean) * factor + beta, "the conv has a bias b: it is shifted and scaled like everything else.")]
    hint = next((text for candidate, text in b_hints if near(b, candidate)), "b_folded = (b − μ)·γ/σ + β.")
    expect_close("b_folded", b, expected_b, rtol=1e-5, atol=1e-7, hint=hint)

    # Behavioural check against torch's own modules.
    conv, bn = tiny_conv_bn()
    x = torch.randn(8, 1, 5, 5, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        reference = bn(conv(x)).double()
        folded = nn.functional.conv2d(x.double(), w, b)
    worst = (folded - reference).abs().max().item()
    if worst > 1e-3:
        raise ExerciseError(f"your folded conv differs from bn(conv(x)) by up to {worst:.3g}.",
                            "check the per-channel factor γ/σ and the bias formula.")
    return passed(f"folded conv = bn(conv(x)) in eval mode (max difference {worst:.1e}); "
                  f"γ/σ = {factor[0]:.3f} and {factor[1]:.3f} per channel.")


# --- exercise 3 ------------------------------------------------------------------------------------

def outlier_activations() -> torch.Tensor:
    """Exercise 3's activations: 9,999 values evenly spread over [0, 1] and one at ``EX3_OUTLIER``."""
    return torch.cat([torch.linspace(0.0, 1.0, 9_999), torch.tensor([EX3_OUTLIER])])


def observer_outcomes() -> dict[str, dict[str, float]]:
    """For each observer of exercise 3: ``hi``, ``clipped`` (fraction of values above ``hi``) and
    ``mse`` of the fake-quantized activations — computed with labkit's observers."""
    from labkit.quant import fake_quantize, make_observer, mse  # lazily: keeps `import labkit.exercises` light

    x = outlier_activations()
    outcomes = {}
    for name in EX3_OBSERVERS:
        kwargs = {"percentile": EX3_PERCENTILE} if name == "percentile" else {}
        observer = make_observer(name, bits=EX3_BITS, **kwargs)
        observer(x)
        _, hi = observer.range()
        x_hat = fake_quantize(x, observer.calculate_qparams())
        outcomes[name] = {"hi": float(hi), "clipped": float((x > hi).float().mean()), "mse": mse(x, x_hat)}
    return outcomes


@checker
def check_clipping_prediction(clips_more, lower_mse) -> str:
    """Exercise 3: on ``outlier_activations()`` at 4 bits, which of ``"minmax"`` and ``"percentile"``
    (99.9th) clips a larger fraction of the values, and which gives the lower mean squared error?"""
    for name, value in (("clips_more", clips_more), ("lower_mse", lower_mse)):
        expect_answered(name, value)
        if value not in EX3_OBSERVERS:
            raise ExerciseError(f"`{name}` should be one of {list(EX3_OBSERVERS)}, got {value!r}.",
                                "answer with an observer's name as a string.")
    outcomes = observer_outcomes()
    most_clipping = max(EX3_OBSERVERS, key=lambda n: outcomes[n]["clipped"])
    best_mse = min(EX3_OBSERVERS, key=lambda n: outcomes[n]["mse"])
    mm, pc = outcomes["minmax"], outcomes["percentile"]
    expect_equal("clips_more", clips_more, most_clipping,
                 hint="min/max takes the largest value seen as its upper end: by construction it never clips "
                      "anything it saw during calibration.")
    expect_equal("lower_mse", lower_mse, best_mse,
                 hint=f"with min/max the 16 levels are {mm['hi'] / 15:.2f} apart, so every value in [0, 1] is "
                      f"rounded to 0 or to one level; the percentile range ends near 1 and clips one value.")
    return passed(f"min/max: hi = {mm['hi']:.2f}, clips {mm['clipped']:.2%}, MSE {mm['mse']:.4f}; "
                  f"percentile: hi = {pc['hi']:.3f}, clips {pc['clipped']:.2%}, MSE {pc['mse']:.4f} — "
                  "clipping one outlier buys a grid 50× finer for everything else.")
