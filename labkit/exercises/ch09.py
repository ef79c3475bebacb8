"""Checkers for notebooks/09_structured_pruning.ipynb: the parameters and MACs of two convolutions after
removing filters from the first, and which filter the L1 and L2 filter-norm criteria remove first.

Every expected value is computed here from first principles (the conv formulas, NumPy norms), never
with ``labkit.prune`` and never from the learner's answer; the tests check that these independent
values agree with labkit. A wrong answer raises ``ExerciseError`` with a hint aimed at the most
likely mistake; a right one returns a ``✓`` line.
"""
from __future__ import annotations

import numpy as np

from labkit.exercises import ExerciseError, checker, expect_answered, expect_count, passed, whole_number

# Exercise 1: conv A 16 → 32 channels, conv B 32 → 64, both 3×3, padding 1, no bias, on 14×14 maps.
C_IN, C_MID, C_OUT, K, SIDE = 16, 32, 64, 3, 14
REMOVED = 8

# Exercise 2: four 1×2×2 filters (weight [4, 1, 2, 2]) whose L1 and L2 rankings disagree.
FILTERS = (((1.0, 1.0), (1.0, 1.0)),
           ((0.0, 0.0), (0.0, 3.0)),
           ((2.0, -2.0), (0.0, 0.0)),
           ((-1.0, 2.0), (1.0, 1.0)))


def conv_reference(removed: int = REMOVED) -> tuple[int, int, int]:
    """``(params A, params B, MACs A + B)`` once ``removed`` filters of A (and B's matching inputs) go:
    ``params = C_out·C_in·k²``, ``MACs = H·W·params`` (stride 1, padding 1 keeps 14×14)."""
    kept = C_MID - removed
    a, b = kept * C_IN * K * K, C_OUT * kept * K * K
    return a, b, SIDE * SIDE * (a + b)


def norm_reference() -> tuple[int, int]:
    """``(first removed by L1, first removed by L2)``: argmin of ``Σ|w|`` and of ``sqrt(Σw²)`` per filter."""
    rows = np.asarray(FILTERS, dtype=np.float64).reshape(len(FILTERS), -1)
    return int(np.argmin(np.abs(rows).sum(1))), int(np.argmin(np.sqrt((rows ** 2).sum(1))))


# ----------------------------------------------------------------------------- exercise 1
@checker
def check_filter_removal(params_a, params_b, macs) -> str:
    """Exercise: remove ``REMOVED`` = 8 of conv A's 32 filters. Give A's and B's parameter counts and
    the MACs of both layers together for one 14×14 example."""
    exp_a, exp_b, exp_macs = conv_reference()
    kept = C_MID - REMOVED
    hint_a = {C_MID * C_IN * K * K: "that is A before pruning: A loses 8 of its 32 output filters.",
              kept * (C_IN - REMOVED) * K * K: "A's *inputs* are the 16 image channels, untouched; only its "
                                               "outputs shrink.",
              kept * C_IN: "each filter is C_in × k × k = 16 × 3 × 3 weights.",
              }.get(whole_number(params_a), "params of a conv = C_out · C_in · k · k with C_out = 32 − 8.")
    expect_count("params_a", params_a, exp_a, hint_a)
    hint_b = {C_OUT * C_MID * K * K: "B must lose the 8 input channels that A no longer produces: its weight "
                                     "becomes [64, 24, 3, 3].",
              (C_OUT - REMOVED) * C_MID * K * K: "B keeps its 64 outputs; it is its *inputs* that shrink.",
              C_OUT * kept: "each of B's 64 filters is 24 × 3 × 3 weights.",
              }.get(whole_number(params_b), "B's weight is [C_out, C_in, k, k] = [64, 24, 3, 3].")
    expect_count("params_b", params_b, exp_b, hint_b)
    hint = {exp_a + exp_b: "that is the parameter count; every weight is used once per output position "
                           "(14 · 14 of them).",
            SIDE * SIDE * (exp_a + C_OUT * C_MID * K * K): "B's inputs shrank too: use the pruned B.",
            28 * 28 * (exp_a + exp_b): "padding 1 with stride 1 keeps the maps 14 × 14.",
            }.get(whole_number(macs), "MACs of a conv = H_out · W_out · C_out · C_in · k · k; add A and B.")
    expect_count("macs", macs, exp_macs, hint)
    dense = SIDE * SIDE * (C_MID * C_IN + C_OUT * C_MID) * K * K
    return passed(f"A {exp_a:,} + B {exp_b:,} parameters, {exp_macs:,} MACs instead of {dense:,}: removing "
                  f"25 % of A's filters saves 25 % in *both* layers.")


# ----------------------------------------------------------------------------- exercise 2
def _index(name: str, value) -> int:
    expect_answered(name, value)
    index = whole_number(value)
    if index is None or not 0 <= index < len(FILTERS):
        raise ExerciseError(f"`{name}` should be a filter index in 0..{len(FILTERS) - 1}, got {value!r}.",
                            "use np.argmin over the per-filter norms (indices start at 0).")
    return index


@checker
def check_first_removed(l1_first, l2_first) -> str:
    """Exercise: which filter of ``FILTERS`` does the L1 filter norm remove first, and which the L2 norm?"""
    exp_l1, exp_l2 = norm_reference()
    rows = np.asarray(FILTERS, dtype=np.float64).reshape(len(FILTERS), -1)
    got = _index("l1_first", l1_first)
    hint = ("that is the largest L1 norm; the *smallest* norm is removed first."
            if got == int(np.argmax(np.abs(rows).sum(1))) else
            "the signed sum Σw lets +2 and −2 cancel; the L1 norm sums |w|."
            if got == int(np.argmin(rows.sum(1))) else
            "that is the L2 choice; the L1 norm sums |w| without squaring."
            if got == exp_l2 else "compute Σ|w| of each filter and take the smallest.")
    if got != exp_l1:
        raise ExerciseError(f"`l1_first` is {got}, expected another filter.", hint)
    got = _index("l2_first", l2_first)
    hint = ("filter 1 has the smallest L1 norm but the *largest* L2 norm: squaring rewards one big weight."
            if got == exp_l1 else
            "compute sqrt(Σw²) of each filter and take the smallest.")
    if got != exp_l2:
        raise ExerciseError(f"`l2_first` is {got}, expected another filter.", hint)
    l1, l2 = np.abs(rows).sum(1), np.sqrt((rows ** 2).sum(1))
    return passed(f"L1 norms {np.round(l1, 2).tolist()} → filter {exp_l1} goes; L2 norms "
                  f"{np.round(l2, 2).tolist()} → filter {exp_l2} goes. The two criteria disagree on spread-out "
                  "vs concentrated filters.")
