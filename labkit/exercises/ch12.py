"""Checkers for notebooks/12_distillation_features.ipynb: an attention map by hand, its
normalisation, and the distance-wise relation matrix of relational KD.

Every expected value is computed here in NumPy from the formulas (never with ``labkit.distill`` and
never from the learner's answer); the tests check that these agree with labkit. A wrong answer raises
``ExerciseError``; when it equals a known mistake — p = 1 instead of 2, a mean over channels, a
max-normalisation, squared distances, a mean that counts the zero diagonal — the hint names it.
"""
from __future__ import annotations

import numpy as np

from labkit.exercises import ExerciseError, checker, expect_close_or_known_mistake, float_array, passed

# Exercises 1 and 2: one feature tensor [C=2, H=2, W=2] (a batch of one), p = 2.
FEATURES = (((1.0, -2.0), (0.0, 3.0)),
            ((2.0, 1.0), (-1.0, 0.5)))
P = 2

# Exercise 3: three embeddings in the plane.
POINTS = ((0.0, 0.0), (3.0, 0.0), (0.0, 4.0))


# ----------------------------------------------------------------------------- references
def attention_reference(features=FEATURES, p: float = P) -> np.ndarray:
    """``A[h, w] = Σ_c |F[c, h, w]|^p`` for one image, shape ``[H, W]``."""
    return (np.abs(np.asarray(features, dtype=np.float64)) ** p).sum(axis=0)


def normalized_reference(features=FEATURES, p: float = P) -> np.ndarray:
    """``vec(A) / ‖vec(A)‖₂``, shape ``[H·W]``."""
    a = attention_reference(features, p).reshape(-1)
    return a / np.sqrt((a ** 2).sum())


def distances(points=POINTS) -> np.ndarray:
    e = np.asarray(points, dtype=np.float64)
    return np.sqrt(((e[:, None, :] - e[None, :, :]) ** 2).sum(-1))


def rkd_reference(points=POINTS) -> np.ndarray:
    """``ψ_D[i, j] = ‖e_i − e_j‖ / μ``, μ = mean over the N(N−1) pairs i ≠ j; shape ``[N, N]``."""
    d = distances(points)
    n = len(d)
    return d / (d.sum() / (n * (n - 1)))


def _squeeze_to(got: np.ndarray, size: int, shape: tuple) -> np.ndarray:
    return got.reshape(shape) if got.size == size else got


# ----------------------------------------------------------------------------- exercise 1
@checker
def check_attention_map(amap) -> str:
    """Exercise: ``amap`` = Σ_c |F_c|^2 of ``FEATURES`` (C = 2, H = W = 2): a 2 × 2 map."""
    got = _squeeze_to(float_array("amap", amap), 4, (2, 2))             # [2, 2], [1, 2, 2] or [4]
    f = np.asarray(FEATURES)
    expected = attention_reference()
    mistakes = [(np.abs(f).sum(0), "That is p = 1 (Σ_c |F_c|): raise each |F_c| to the power p = 2 first."),
                (expected / len(f), "That is the mean over the channels; the formula sums them (Σ_c). After the "
                                    "normalisation both agree, but the map itself is a sum."),
                (f.sum(0) ** 2, "Square each channel, *then* sum: Σ_c |F_c|², not (Σ_c F_c)²."),
                ((f ** 2).sum(axis=(1, 2)), "Sum over the channels (axis 0), not over the positions: the map "
                                            "keeps H × W."),
                (np.abs(f).max(0) ** 2, "Sum over all channels, not the largest one."),
                (None, "A[h, w] = Σ_c |F[c, h, w]|^p with p = 2: a 2 × 2 map.")]
    expect_close_or_known_mistake("amap", got, expected, mistakes)
    return passed(f"attention map Σ_c F_c² = {expected.tolist()}: position (1, 1) looks hardest.")


# ----------------------------------------------------------------------------- exercise 2
@checker
def check_normalized_attention(q) -> str:
    """Exercise: ``q`` = vec(A) / ‖vec(A)‖₂ for the map of exercise 1 (4 numbers, unit L2 norm)."""
    got = _squeeze_to(float_array("q", q), 4, (4,))                    # [4], [1, 4] or [2, 2]
    a = attention_reference().reshape(-1)
    expected = normalized_reference()
    mistakes = [(a / a.sum(), "That divides by the sum (an L1 normalisation); AT divides by the L2 norm "
                              "‖vec(A)‖₂ = sqrt(Σ A²)."),
                (a / a.max(), "That divides by the largest entry; use the L2 norm sqrt(Σ A²)."),
                (a / np.sqrt(a.sum()), "The L2 norm is sqrt(Σ A²), not sqrt(Σ A)."),
                (a, "Not normalised yet: divide by ‖vec(A)‖₂."),
                (None, "q̂ = vec(A) / ‖vec(A)‖₂: the squares of the four numbers sum to 1.")]
    expect_close_or_known_mistake("q", got, expected, mistakes)
    return passed(f"q̂ = {np.round(expected, 4).tolist()}; multiplying every feature by 10 changes A by 100× "
                  "but q̂ not at all — a narrow student can match a wide teacher.")


# ----------------------------------------------------------------------------- exercise 3
@checker
def check_rkd_distances(psi) -> str:
    """Exercise: ``psi`` = the 3 × 3 distance-wise RKD matrix of ``POINTS`` (distances / their mean over i ≠ j)."""
    got = float_array("psi", psi)
    d = distances()
    n = len(d)
    expected = rkd_reference()
    if got.shape != expected.shape:
        raise ExerciseError(f"`psi` should be a {n} × {n} matrix, got shape {got.shape}.",
                            "One entry per pair (i, j), zeros on the diagonal.")
    mistakes = [(d, "Those are the raw distances: divide by μ, their mean over the pairs i ≠ j."),
                (d / d.mean(), "μ counts the zero diagonal here (mean over all 9 entries): average over the "
                               "N(N−1) = 6 pairs with i ≠ j only."),
                (d ** 2 / (d ** 2).sum() * n * (n - 1), "Squared distances: RKD uses the Euclidean distance ‖e_i − e_j‖₂."),
                (d / d.max(), "That divides by the largest distance; divide by the mean μ."),
                (None, "ψ_D[i, j] = ‖e_i − e_j‖₂ / μ, μ = (1 / (N(N−1))) Σ_{i≠j} ‖e_i − e_j‖₂.")]
    expect_close_or_known_mistake("psi", got, expected, mistakes)
    return passed(f"ψ_D = distances / μ with μ = {d.sum() / (n * (n - 1)):.4f}; scaling the points by any "
                  "factor leaves ψ_D unchanged.")
