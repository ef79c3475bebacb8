"""Checkers for notebooks/07_unstructured_pruning.ipynb: the global magnitude threshold and kept
counts of two tiny layers, and the bytes of a CSR layer with the bitmask break-even sparsity.

Every expected value is computed here from first principles (sorting in NumPy, the byte layout
written in ``labkit.measure``'s docstring), never with ``labkit.prune`` and never from the
learner's answer; the tests check that these independent values agree with labkit. A wrong answer
raises ``ExerciseError`` with a hint aimed at the most likely mistake; a right one returns a ``✓`` line.
"""
from __future__ import annotations

import math

import numpy as np

from labkit.exercises import ExerciseError, checker, expect_answered, expect_close, expect_count, passed

# Exercise 1: two tiny layers pruned together to 50 % global sparsity (no ties in |w|).
LAYER_A = ((0.9, -0.05, 0.3, -0.6),
           (0.02, 0.7, -0.4, 0.1))
LAYER_B = ((-0.25, 0.5),
           (0.95, -0.8),
           (1.1, -0.35))
GLOBAL_SPARSITY = 0.5

# Exercise 2: LeNet-300-100's fc1 weight [300, 784] with exactly CSR_NNZ non-zeros (90 % sparsity).
CSR_SHAPE = (300, 784)
CSR_NNZ = 23_520


# ----------------------------------------------------------------------------- helpers
def _as_float(value):
    """``value`` as a Python float when it is a single number (int, float, 0-d/1-element array), else None."""
    try:
        array = np.asarray(value.detach().cpu().numpy() if hasattr(value, "detach") else value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        return None
    return float(array.reshape(-1)[0]) if array.size == 1 else None


def _whole(value):
    number = _as_float(value)
    return int(number) if number is not None and math.isfinite(number) and number.is_integer() else None


def _near(a, b) -> bool:
    return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)


def _uint_bytes(max_value: int) -> int:
    """Bytes of the smallest unsigned integer type holding ``max_value`` (1, 2, 4 or 8)."""
    return next(size for size in (1, 2, 4, 8) if max_value < 2 ** (8 * size))


def global_reference(layers=(LAYER_A, LAYER_B), amount: float = GLOBAL_SPARSITY) -> tuple[float, list[int]]:
    """``(threshold, kept per layer)`` of global magnitude pruning: sort every |w| of every layer,
    prune the ``k = round(amount · N)`` smallest; the threshold is the k-th smallest |w| (largest pruned)."""
    magnitudes = [np.abs(np.asarray(w, dtype=np.float64)).reshape(-1) for w in layers]
    everything = np.sort(np.concatenate(magnitudes))
    k = round(amount * everything.size)
    threshold = float(everything[k - 1]) if k else 0.0
    return threshold, [int((m > threshold).sum()) for m in magnitudes]


def csr_payload_bytes(shape=CSR_SHAPE, nnz: int = CSR_NNZ, value_bytes: int = 4) -> int:
    """Bytes of ``labkit.measure``'s CSR payload: 2 itemsize bytes | (rows + 1) row pointers (smallest
    uint holding nnz) | nnz column indices (smallest uint holding cols − 1) | nnz values."""
    rows, cols = shape
    return 2 + (rows + 1) * _uint_bytes(nnz) + nnz * _uint_bytes(cols - 1) + nnz * value_bytes


# ----------------------------------------------------------------------------- exercise 1
@checker
def check_global_prune(threshold, kept_per_layer) -> str:
    """Exercise: global magnitude pruning of ``LAYER_A`` and ``LAYER_B`` together at 50 % sparsity.

    ``threshold`` is the largest pruned |w| (the k-th smallest of all 14 magnitudes, k = 7) and
    ``kept_per_layer`` the number of weights kept in A and in B (two integers).
    """
    expect_answered("threshold", threshold)
    expect_answered("kept_per_layer", kept_per_layer)
    layers = (LAYER_A, LAYER_B)
    exp_threshold, exp_kept = global_reference(layers)
    everything = np.concatenate([np.asarray(w, dtype=np.float64).reshape(-1) for w in layers])
    k = round(GLOBAL_SPARSITY * everything.size)
    got = _as_float(threshold)
    hint = ("np.percentile interpolates between the 7th and 8th smallest |w|; with an exact count of k = 7 "
            "pruned weights the threshold is the 7th smallest |w| itself."
            if _near(got, float(np.percentile(np.abs(everything), 50))) else
            "rank the magnitudes |w|, not the signed weights: −0.8 is a large weight."
            if _near(got, float(np.sort(everything)[k - 1])) else
            "that is the smallest *kept* magnitude; the threshold asked for is the largest *pruned* one."
            if _near(got, float(np.sort(np.abs(everything))[k])) else
            "that is a per-layer threshold; global pruning sorts all 14 magnitudes of both layers together."
            if any(_near(got, global_reference((w,))[0]) for w in layers) else
            "sort all 14 values |w| of both layers, prune the k = round(0.5 · 14) = 7 smallest; the threshold "
            "is the 7th smallest |w|.")
    expect_close("threshold", threshold, exp_threshold, rtol=1e-5, atol=1e-6, hint=hint)

    try:
        got_kept = [int(v) for v in np.asarray(kept_per_layer).reshape(-1)]
    except (TypeError, ValueError):
        got_kept = None
    layerwise = [global_reference((w,))[1][0] for w in layers]
    sizes = [np.asarray(w).size for w in layers]
    hint = ("that is 50 % of *each* layer (layer-wise pruning); globally, layer B's larger weights survive more."
            if got_kept == layerwise else
            "those are the pruned counts; the exercise asks how many weights are *kept*."
            if got_kept == [n - k for n, k in zip(sizes, exp_kept)] else
            "count, in each layer, the weights with |w| > threshold.")
    if got_kept is None or len(got_kept) != 2:
        raise ExerciseError(f"`kept_per_layer` should be two integers (kept in A, kept in B), got "
                            f"{type(kept_per_layer).__name__} {kept_per_layer!r}.", hint)
    if got_kept != exp_kept:
        raise ExerciseError(f"`kept_per_layer` is {got_kept}, expected {exp_kept}.", hint)
    return passed(f"threshold |w| = {exp_threshold:g}: A keeps {exp_kept[0]} of {sizes[0]}, B keeps "
                  f"{exp_kept[1]} of {sizes[1]} — one global threshold, uneven per-layer sparsity.")


# ----------------------------------------------------------------------------- exercise 2
@checker
def check_csr_layer(csr_bytes, bitmask_break_even) -> str:
    """Exercise: bytes of the CSR payload (fp32 values) of a [300, 784] weight with 23,520 non-zeros,
    in ``labkit.measure``'s layout, and the sparsity above which a bitmask (1 bit per weight + fp32
    non-zeros) is smaller than dense fp32 (ignore headers and rounding to whole bytes).
    """
    expect_answered("csr_bytes", csr_bytes)
    expect_answered("bitmask_break_even", bitmask_break_even)
    rows, cols = CSR_SHAPE
    nnz, n = CSR_NNZ, rows * cols
    expected = csr_payload_bytes()
    ptr, col = _uint_bytes(nnz), _uint_bytes(cols - 1)
    hint = {
        2 + (rows + 1) * 4 + nnz * (col + 4): f"the row pointers count up to nnz = {nnz:,} < 65,536: "
                                             "the smallest type that holds them is uint16 (2 bytes).",
        2 + (rows + 1) * ptr + nnz * (4 + 4): f"column indices go up to {cols - 1}: uint16 (2 bytes) holds them.",
        2 + (rows + 1) * ptr + nnz * (1 + 4): f"a uint8 cannot hold column index {cols - 1}; it needs uint16.",
        (rows + 1) * ptr + nnz * (col + 4): "CSR stores rows + 1 row pointers (the last one is nnz), and the "
                                          "payload starts with 2 bytes: the itemsizes of the two index arrays.",
        nnz * 4: "the values alone are not enough: CSR also stores a column index per value and the row pointers.",
        nnz * (col + 4): "add the rows + 1 row pointers and the 2 itemsize bytes.",
        -(-n // 8) + 4 * nnz: "that is the bitmask format; CSR stores indices instead of one bit per weight.",
        4 * n: "that is the dense fp32 size.",
    }.get(_whole(csr_bytes), "2 bytes of itemsizes + (rows + 1) row pointers + nnz column indices + nnz fp32 "
                             "values, each index in the smallest unsigned type that holds it.")
    expect_count("csr_bytes", csr_bytes, expected, hint)

    exp_break = 1 / 32
    got = _as_float(bitmask_break_even)
    hint = ("that is a density (fraction kept); the question asks for the sparsity (fraction zero)."
            if _near(got, 1 - exp_break) else
            "the mask costs 1 *bit* per weight, not 1 byte: n/8 + 4·nnz < 4·n."
            if _near(got, 0.25) else
            "a percentage? Give the sparsity as a fraction in [0, 1]." if _near(got, 100 * exp_break) else
            "bitmask bytes n/8 + 4·(1 − s)·n are smaller than 4·n when s > 1/32.")
    expect_close("bitmask_break_even", bitmask_break_even, exp_break, rtol=1e-3, hint=hint)
    fp32 = 4 * n
    return passed(f"CSR: 2 + {rows + 1}·{ptr} + {nnz:,}·({col} + 4) = {expected:,} B vs {fp32:,} B dense "
                  f"({fp32 / expected:.1f}× smaller); a bitmask pays off above s = 1/32 = {exp_break:.2%}.")
