"""Checkers for notebooks/08_importance_criteria.ipynb: the first-order Taylor saliency of six
weights (and which one goes first), and one L1 step of six weights by subgradient and by
soft-thresholding (the proximal step).

Every expected value is computed here from first principles in NumPy, never with ``labkit.prune``
and never from the learner's answer; the tests check that these independent values agree with
labkit. A wrong answer raises ``ExerciseError`` with a hint aimed at the most likely mistake; a
right one returns a ``✓`` line.
"""
from __future__ import annotations

import numpy as np

from labkit.exercises import ExerciseError, checker, expect_answered, expect_close, passed, whole_number

# Exercise 1: six weights and the gradient of the loss with respect to each (one batch).
W = (0.8, -0.05, 0.3, -0.6, 0.02, 1.2)
G = (0.01, 0.9, -0.5, 0.02, 2.0, -0.005)

# Exercise 2: one step of L1-regularised training on the penalty alone (no data loss).
W_L1 = (0.30, -0.04, 0.07, -0.5, 0.0, 0.03)
LR, LAM = 0.1, 0.5


# ----------------------------------------------------------------------------- helpers
def _vector(value, size: int):
    """``value`` as a float64 vector of ``size`` entries, or None if it is not one."""
    try:
        if hasattr(value, "detach"):
            value = value.detach().cpu().numpy()
        array = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        return None
    return array if array.size == size else None


def _same(a, b) -> bool:
    return a is not None and np.allclose(a, b, rtol=1e-6, atol=1e-9)


def taylor_reference(w=W, g=G) -> np.ndarray:
    """First-order Taylor saliency ``|w_i · g_i|`` (the loss change of setting ``w_i`` to 0)."""
    return np.abs(np.asarray(w, dtype=np.float64) * np.asarray(g, dtype=np.float64))


def subgradient_reference(w=W_L1, lr: float = LR, lam: float = LAM) -> np.ndarray:
    """``w − η·λ·sign(w)`` with ``sign(0) = 0``."""
    w = np.asarray(w, dtype=np.float64)
    return w - lr * lam * np.sign(w)


def proximal_reference(w=W_L1, lr: float = LR, lam: float = LAM) -> np.ndarray:
    """Soft-thresholding ``sign(w)·max(|w| − η·λ, 0)``: the proximal step of ``η·λ·|w|``."""
    w = np.asarray(w, dtype=np.float64)
    return np.sign(w) * np.maximum(np.abs(w) - lr * lam, 0.0)


# ----------------------------------------------------------------------------- exercise 1
@checker
def check_taylor_saliency(taylor, first_pruned) -> str:
    """Exercise: ``taylor`` — the first-order Taylor saliency of each of the six weights ``W`` with
    gradients ``G``; ``first_pruned`` — the (0-based) index of the weight that criterion prunes first.
    """
    expect_answered("taylor", taylor)
    expect_answered("first_pruned", first_pruned)
    w, g = np.asarray(W), np.asarray(G)
    expected = taylor_reference()
    got = _vector(taylor, expected.size)
    hint = ("those are signed products w·g; the loss changes by about −g·w either way, so the saliency is "
            "its size |w·g|." if _same(got, w * g) else
            "that is the magnitude |w| alone; the Taylor score multiplies it by the gradient |g|."
            if _same(got, np.abs(w)) else
            "that is the gradient |g| alone; a weight with a big gradient but a tiny value changes little."
            if _same(got, np.abs(g)) else
            "that is seed 001's w²·g with a first derivative for g — the seed's g is a second derivative "
            "(OBD without its ½); the first-order saliency is |w·g|."
            if _same(got, w ** 2 * g) or _same(got, np.abs(w ** 2 * g)) else
            "that is a second-order (OBD-style) form; the first-order Taylor saliency is |w·g|."
            if _same(got, 0.5 * (w * g) ** 2) or _same(got, (w * g) ** 2) else
            "multiply each weight by its gradient and take the absolute value: |w_i · g_i|.")
    if got is None:
        raise ExerciseError(f"`taylor` should be six numbers, got {type(taylor).__name__} {taylor!r}.", hint)
    expect_close("taylor", got, expected, rtol=1e-6, atol=1e-12, hint=hint)

    index = int(np.argmin(expected))
    chosen = whole_number(first_pruned)
    hint = ("that is the weight with the smallest |w| — magnitude pruning's choice. Here its gradient is huge."
            if chosen == int(np.argmin(np.abs(w))) else
            "that is the *most* salient weight; pruning removes the lowest score first."
            if chosen == int(np.argmax(expected)) else
            "indices start at 0 in Python." if chosen == index + 1 else
            "prune the weight with the smallest |w·g| first (np.argmin).")
    if chosen != index:
        raise ExerciseError(f"`first_pruned` is {first_pruned!r}, expected the index {index}.", hint)
    return passed(f"|w·g| = {np.round(expected, 4).tolist()}: the Taylor criterion prunes index {index} first "
                  f"(w = {W[index]}, the largest weight, whose gradient is nearly 0), magnitude would prune "
                  f"index {int(np.argmin(np.abs(w)))} (w = {W[int(np.argmin(np.abs(w)))]}).")


# ----------------------------------------------------------------------------- exercise 2
@checker
def check_l1_step(subgradient_step, proximal_step) -> str:
    """Exercise: one step of size ``LR`` on the penalty ``LAM·Σ|w|`` alone, from the weights ``W_L1``:
    ``subgradient_step`` = ``w − η·λ·sign(w)``, ``proximal_step`` = soft-thresholding by ``η·λ``.
    """
    expect_answered("subgradient_step", subgradient_step)
    expect_answered("proximal_step", proximal_step)
    w, t = np.asarray(W_L1), LR * LAM
    sub, prox = subgradient_reference(), proximal_reference()
    got = _vector(subgradient_step, sub.size)
    zero_sign = w - t * np.where(w >= 0, 1.0, -1.0)
    hint = ("the step size is η·λ = 0.05, not λ = 0.5." if _same(got, w - LAM * np.sign(w)) else
            "a gradient step goes *against* the gradient λ·sign(w): towards zero." if _same(got, w + t * np.sign(w))
            else "sign(0) = 0 (np.sign): a weight at exactly 0 feels no pull." if _same(got, zero_sign) else
            "that is the proximal step; the subgradient step is w − η·λ·sign(w), which can cross zero."
            if _same(got, prox) else "subtract η·λ·sign(w) from every weight.")
    if got is None:
        raise ExerciseError(f"`subgradient_step` should be six numbers, got {subgradient_step!r}.", hint)
    expect_close("subgradient_step", got, sub, rtol=1e-6, atol=1e-12, hint=hint)

    got = _vector(proximal_step, prox.size)
    hard = np.where(np.abs(w) > t, w, 0.0)
    hint = ("no clipping at zero: that is the subgradient step again. Soft-thresholding stops a weight "
            "that would cross 0 at exactly 0." if _same(got, sub) else
            "the threshold is η·λ = 0.05, not λ = 0.5 (which zeroes everything here)."
            if _same(got, np.sign(w) * np.maximum(np.abs(w) - LAM, 0.0)) else
            "that is hard-thresholding; soft-thresholding also shrinks the survivors by η·λ."
            if _same(got, hard) else
            "the signs are lost: sign(w)·max(|w| − η·λ, 0)." if _same(got, np.maximum(np.abs(w) - t, 0.0)) else
            "sign(w)·max(|w| − η·λ, 0) for every weight.")
    if got is None:
        raise ExerciseError(f"`proximal_step` should be six numbers, got {proximal_step!r}.", hint)
    expect_close("proximal_step", got, prox, rtol=1e-6, atol=1e-12, hint=hint)
    crossed = int(np.sum(np.sign(sub) * np.sign(w) < 0))
    return passed(f"subgradient: {np.round(sub, 4).tolist()} ({crossed} weights overshoot past 0 and will "
                  f"oscillate); proximal: {(np.round(prox, 4) + 0.0).tolist()} ({int(np.sum(prox == 0))} exact zeros).")
