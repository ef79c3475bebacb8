"""Checkers for notebooks/14_pipeline_tradeoffs_export.ipynb: the Pareto front of six compressed models,
the bytes of one layer stored as Deep Compression stores it, and which pipeline orders compose.

Every expected value is computed here from first principles (plain Python on the exercise's given
data), never from the learner's answer; the tests check that these values agree with
``labkit.pipeline`` (``report.pareto_front``, ``relative_index``, ``Pipeline``). A wrong answer raises
``ExerciseError`` with a hint aimed at the most likely mistake; a right one returns a ``✓`` line.
"""
from __future__ import annotations

import math

from labkit.exercises import ExerciseError, checker, expect_answered, expect_count, passed, whole_number

# Exercise 1: six compressed LeNet-300-100s (label: (file kB, test accuracy %)).
CANDIDATES = {"A": (1066.6, 98.41), "B": (270.3, 98.39), "C": (140.2, 98.05), "D": (150.0, 97.60),
              "E": (29.1, 96.94), "F": (31.0, 97.20)}

# Exercise 2: a fully connected layer [100, 300] pruned to 3,000 non-zeros whose gaps need FILLERS
# fillers at 4-bit relative indices, k-means codebook of 2^5 float32 centroids, 5-bit weight indices.
LAYER_WEIGHTS, LAYER_NONZEROS, FILLERS, GAP_BITS, WEIGHT_BITS = 30_000, 3_000, 120, 4, 5

# Exercise 3: five orders; which ones can compose (labkit.pipeline refuses the others)?
ORDERS = {1: ("prune", "finetune", "ptq"), 2: ("ptq", "finetune"), 3: ("qat", "finetune", "prune", "finetune"),
          4: ("prune", "lowrank", "finetune"), 5: ("lowrank", "finetune", "prune", "finetune", "kmeans")}
COMPOSE = {1, 3, 5}


def pareto_reference(candidates=CANDIDATES) -> list[str]:
    """Labels not dominated by another (smaller or equal size and higher or equal accuracy, one strictly),
    by increasing size."""
    front = []
    for label, (size, acc) in candidates.items():
        dominated = any(s <= size and a >= acc and (s, a) != (size, acc) for other, (s, a) in candidates.items()
                        if other != label)
        if not dominated:
            front.append(label)
    return sorted(front, key=lambda label: candidates[label][0])


def layer_bytes_reference() -> int:
    """``⌈entries·(gap bits + weight bits)/8⌉ + 2^weight_bits · 4``, entries = non-zeros + fillers."""
    entries = LAYER_NONZEROS + FILLERS
    return math.ceil(entries * (GAP_BITS + WEIGHT_BITS) / 8) + 2 ** WEIGHT_BITS * 4


@checker
def check_pareto_front(front) -> str:
    """Exercise: the labels of ``CANDIDATES`` on the Pareto front (smaller file and higher accuracy are
    better), in any order."""
    expect_answered("front", front)
    if isinstance(front, str) or not hasattr(front, "__iter__"):
        raise ExerciseError(f"`front` should be a list of labels such as ['A', 'B'], got {front!r}.")
    got, expected = sorted(set(front)), sorted(pareto_reference())
    if got == expected:
        return passed(f"the front is {', '.join(pareto_reference())}: only D is dominated (C is smaller and more accurate); "
                      "F is larger than E but more accurate, so both stay.")
    unknown = sorted(set(got) - set(CANDIDATES))
    if unknown:
        raise ExerciseError(f"`front` names {unknown}, which are not candidates ({', '.join(CANDIDATES)}).")
    extra, missing = sorted(set(got) - set(expected)), sorted(set(expected) - set(got))
    if extra:
        label = extra[0]
        rival = next(o for o, (s, a) in CANDIDATES.items() if o != label and s <= CANDIDATES[label][0]
                     and a >= CANDIDATES[label][1])
        raise ExerciseError(f"`front` includes {', '.join(extra)}, which is dominated.",
                            f"{rival} ({CANDIDATES[rival][0]} kB, {CANDIDATES[rival][1]} %) is smaller and more "
                            f"accurate than {label} ({CANDIDATES[label][0]} kB, {CANDIDATES[label][1]} %).")
    raise ExerciseError(f"`front` misses {', '.join(missing)}.",
                        "a point is on the front when no other point is both smaller and more accurate; the "
                        "largest, most accurate model is on it too (nothing beats its accuracy).")


@checker
def check_layer_bytes(entries, layer_bytes) -> str:
    """Exercise: the stored entries (non-zeros + fillers) and the bytes of the layer: ``GAP_BITS``-bit
    relative indices and ``WEIGHT_BITS``-bit codebook indices per entry, packed, plus the float32 codebook."""
    expect_answered("entries", entries)
    expect_answered("layer_bytes", layer_bytes)
    exp_entries = LAYER_NONZEROS + FILLERS
    expect_count("entries", entries, exp_entries,
                 "each filler is one more stored entry (a gap of 2^4 = 16 and a weight of 0): 3,000 + 120.")
    expected = layer_bytes_reference()
    packed = math.ceil(exp_entries * (GAP_BITS + WEIGHT_BITS) / 8)
    hint = {packed: "add the codebook: 2^5 = 32 centroids of 4 bytes each.",
            math.ceil(LAYER_NONZEROS * (GAP_BITS + WEIGHT_BITS) / 8) + 128: "the 120 fillers are stored too.",
            exp_entries * (GAP_BITS + WEIGHT_BITS) + 128: "bits, not bytes: divide the packed bits by 8.",
            math.ceil(exp_entries * WEIGHT_BITS / 8) + 128: "each entry also stores its 4-bit relative index.",
            }.get(whole_number(layer_bytes),
                  "entries × (4 + 5) bits, rounded up to whole bytes, + 32 × 4 bytes of codebook.")
    expect_count("layer_bytes", layer_bytes, expected, hint)
    return passed(f"{exp_entries:,} entries × 9 bits = {packed:,} B + 128 B of codebook = {expected:,} B, "
                  f"{4 * LAYER_WEIGHTS / expected:.1f}× smaller than the {4 * LAYER_WEIGHTS:,} B of float32.")


@checker
def check_orders(composable) -> str:
    """Exercise: the numbers of the orders in ``ORDERS`` that compose (labkit runs them), in any order."""
    expect_answered("composable", composable)
    if isinstance(composable, str) or not hasattr(composable, "__iter__"):
        raise ExerciseError(f"`composable` should be a set of order numbers such as {{1, 2}}, got {composable!r}.")
    got = set(composable)
    if got == COMPOSE:
        return passed("1, 3 and 5 compose. 2 fine-tunes a converted model (seed 000 §4's mistake); 4 factorises "
                      "a pruned matrix, whose factors are dense.")
    reasons = {2: "order 2 fine-tunes after PTQ: a converted model holds integer codes, not trainable weights.",
               4: "order 4 factorises a pruned matrix: its low-rank factors are dense, the zeros are lost.",
               1: "order 1 is the classic prune → fine-tune → quantize: it composes.",
               3: "order 3 prunes inside QAT, whose float weights are still trainable: it composes.",
               5: "order 5 factorises first and prunes the factors, then shares weights: it composes."}
    wrong = sorted(got ^ COMPOSE)
    raise ExerciseError(f"`composable` is {sorted(got)}; check order {wrong[0]}.", reasons.get(wrong[0]))
