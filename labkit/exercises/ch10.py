"""Checkers for notebooks/10_pruning_schedules_automation.ipynb: the AGP schedule at a step and its
slope, the weights an iterative-magnitude-pruning run leaves, and NetAdapt's choice among proposals.

Every expected value is computed here from first principles (the cubic, integer rounding of each
round, the ratio NetAdapt ranks by), never with ``labkit.prune`` and never from the learner's
answer; ``tests/test_exercises_ch10.py`` checks that these values agree with labkit. A wrong answer
raises ``ExerciseError`` with a hint aimed at the likely mistake; a right one returns a ``✓`` line.
"""
from __future__ import annotations

import numpy as np

from labkit.exercises import (ExerciseError, checker, expect_answered, expect_close_or_known_mistake,
                              expect_count, float_array, passed, whole_number)

# Exercise 1: AGP from s_i = 0 to s_f = 0.9, starting at step 1,000, every 100 steps until 2,000.
S_I, S_F, T0, DT, END = 0.0, 0.9, 1000, 100, 2000
T = 1450

# Exercise 2: LeNet-300-100 (weights only) under Frankle & Carbin's IMP: 20 % of the remaining weights of
# the hidden layers and 10 % of the output layer's per round, 5 rounds, each count rounded to whole weights.
LAYERS = {"fc1": 235_200, "fc2": 30_000, "fc3": 1_000}
RATES = {"fc1": 0.2, "fc2": 0.2, "fc3": 0.1}
ROUNDS = 5

# Exercise 3: NetAdapt proposals after short-term fine-tuning; the model now has this accuracy and size.
NOW_ACC, NOW_BYTES = 0.980, 500_000
PROPOSALS = {"conv2": (0.975, 420_000), "fc1": (0.978, 470_000), "fc2": (0.960, 300_000)}


def _cubic(t: float) -> float:
    tau = min(max((t - T0) / (END - T0), 0.0), 1.0)
    return S_F + (S_I - S_F) * (1.0 - tau) ** 3


def agp_reference() -> tuple[float, float]:
    """``(sparsity after step T, slope ds/dt of the cubic at T per step)``: the model holds the target
    of the last pruning step ≤ T; the slope is ``3(s_f − s_i)/D·(1 − (T − t₀)/D)²``."""
    last = T0 + (T - T0) // DT * DT
    slope = 3 * (S_F - S_I) / (END - T0) * (1 - (T - T0) / (END - T0)) ** 2
    return _cubic(last), slope


def imp_reference() -> tuple[int, float]:
    """``(fc3 weights left, fraction of all weights left)`` after ``ROUNDS`` rounds with rounding."""
    left = dict(LAYERS)
    for _ in range(ROUNDS):
        left = {name: n - round(RATES[name] * n) for name, n in left.items()}
    return left["fc3"], sum(left.values()) / sum(LAYERS.values())


def netadapt_reference() -> tuple[str, float]:
    """``(chosen layer, its accuracy points lost per kB saved)``: the least loss per unit of resource."""
    ratio = {name: 100 * (NOW_ACC - acc) / ((NOW_BYTES - size) / 1000) for name, (acc, size) in PROPOSALS.items()}
    chosen = min(ratio, key=ratio.get)
    return chosen, ratio[chosen]


# ----------------------------------------------------------------------------------------------- exercise 1
@checker
def check_agp_step(sparsity_at_t, slope_at_t) -> str:
    """Exercise: the sparsity the model has after step ``T`` = 1,450 and the cubic's slope there (per step)."""
    expected, slope = agp_reference()
    got = _number("sparsity_at_t", sparsity_at_t)
    hints = [(_cubic(T), "that is the continuous cubic at 1,450; the model only changes at pruning steps "
                         "(1,000, 1,100, …): use the last one ≤ 1,450."),
             (S_F * (1 - ((T0 + 400) - T0) / (END - T0)) ** 3, "(s_i − s_f)(1 − τ)³ is added to s_f: "
                                                               "s = s_f + (s_i − s_f)(1 − τ)³, not s_f(1 − τ)³."),
             (S_F * (1 - (1 - 0.4) ** 2), "the exponent is 3 (cubic), not 2."),
             (S_F, "τ = (t − t₀)/D counts from the start step t₀ = 1,000, not from step 0."),
             (S_F + (S_I - S_F) * (1 - 1.4) ** 3, "τ = (t − t₀)/D counts from the start step t₀ = 1,000.")]
    _expect_or_hint("sparsity_at_t", got, expected, hints, "s = s_f + (s_i − s_f)(1 − (t − t₀)/D)³ at t = 1,400.")
    got = _number("slope_at_t", slope_at_t)
    hints = [(slope / 3, "the derivative of (1 − τ)³ brings down a factor 3."),
             (slope * (END - T0), "ds/dt, not ds/dτ: divide by D = 1,000 steps (τ = (t − t₀)/D)."),
             (3 * (S_F - S_I) / (END - T0) * (1 - 0.4) ** 2, "the slope of the *cubic* at t = 1,450 "
                                                             "(τ = 0.45), not at the pruning step 1,400.")]
    _expect_or_hint("slope_at_t", got, slope, hints, "ds/dt = 3(s_f − s_i)/D · (1 − (t − t₀)/D)².")
    return passed(f"after step {T:,} the model is {expected:.2%} sparse (the target of step 1,400); the cubic "
                  f"rises by {slope * 1000:.3f} per 1,000 steps there — {3 * (S_F - S_I):.1f} at t₀, 0 at the end.")


# ----------------------------------------------------------------------------------------------- exercise 2
@checker
def check_imp_remaining(fc3_left, fraction_left) -> str:
    """Exercise: after 5 IMP rounds, how many of fc3's 1,000 weights are left, and what fraction of all?"""
    exp_fc3, exp_fraction = imp_reference()
    hint = {round(1000 * 0.8 ** ROUNDS): "fc3, the output layer, is pruned at half the rate: 10 % per round.",
            1000 - ROUNDS * 100: "each round prunes 10 % of what *remains*, not of the original 1,000.",
            }.get(whole_number(fc3_left), "n ← n − round(0.1·n), five times, starting from 1,000.")
    expect_count("fc3_left", fc3_left, exp_fc3, hint)
    got = _number("fraction_left", fraction_left)
    hints = [(0.8 ** ROUNDS, "0.8⁵ is right for fc1 and fc2 only; fc3 keeps 0.9⁵, so weight the layers by size."),
             (1 - ROUNDS * 0.2, "pruning is multiplicative: each round keeps 80 % of what is left."),
             (100 * exp_fraction, "give a fraction in [0, 1], not a percentage.")]
    _expect_or_hint("fraction_left", got, exp_fraction, hints,
                    "add the weights left in fc1, fc2 and fc3 and divide by 266,200.", rtol=2e-4)
    return passed(f"fc3 keeps {exp_fc3} weights and the network {exp_fraction:.2%} of its weights after {ROUNDS} "
                  f"rounds (Frankle & Carbin need 15 rounds to reach 3.6 %).")


# ----------------------------------------------------------------------------------------------- exercise 3
@checker
def check_netadapt_choice(chosen, loss_per_kb) -> str:
    """Exercise: which proposal does NetAdapt keep, and how many accuracy points does it lose per kB saved?"""
    exp_chosen, exp_ratio = netadapt_reference()
    expect_answered("chosen", chosen)
    if chosen not in PROPOSALS:
        raise ExerciseError(f"`chosen` should be one of {sorted(PROPOSALS)}, got {chosen!r}.",
                            "give the layer name as a string, e.g. 'fc1'.")
    best_acc = max(PROPOSALS, key=lambda n: PROPOSALS[n][0])
    most_saved = min(PROPOSALS, key=lambda n: PROPOSALS[n][1])
    hint = ("that proposal keeps the highest accuracy, but it also saves the fewest bytes: compare the loss "
            "*per kB saved*." if chosen == best_acc else
            "that proposal saves the most bytes, at a high price in accuracy per kB." if chosen == most_saved else
            "compute (accuracy now − accuracy of the proposal) / (bytes now − bytes of the proposal).")
    if chosen != exp_chosen:
        raise ExerciseError(f"`chosen` is {chosen!r}, not the proposal NetAdapt keeps.", hint)
    got = _number("loss_per_kb", loss_per_kb)
    hints = [(exp_ratio / 100, "in accuracy *points* (0.5 points = 0.005 as a fraction)."),
             (exp_ratio * 1000, "per kB = 1,000 bytes, not per byte.")]
    _expect_or_hint("loss_per_kb", got, exp_ratio, hints, "0.5 points lost for 80 kB saved.")
    return passed(f"NetAdapt keeps {exp_chosen}: {exp_ratio:.4f} points per kB saved, the cheapest price, although "
                  f"{best_acc} keeps more accuracy and {most_saved} saves more bytes.")


# ----------------------------------------------------------------------------------------------- helpers
def _number(name: str, value) -> np.ndarray:
    array = float_array(name, value)
    if array.ndim != 0:
        raise ExerciseError(f"`{name}` should be one number, got an array of shape {array.shape}.")
    return array


def _expect_or_hint(name: str, got: np.ndarray, expected: float, mistakes, hint: str, rtol: float = 1e-4) -> None:
    """Fail unless ``got`` ≈ ``expected``; an answer equal to a known mistake gets that mistake's hint."""
    expect_close_or_known_mistake(name, got, expected, list(mistakes) + [(None, hint)], rtol=rtol, atol=1e-12)
