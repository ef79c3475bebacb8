"""Checkers of notebook 06: each passes the solution and fails wrong answers with a hint."""
import math

import numpy as np
import pytest

from labkit.exercises import ExerciseError, ch06
from labkit.quant import codebook, huffman, mixed
from labkit import models

# Solutions worked out by hand, as the notebook does.
MIXED_BYTES = math.ceil(150 * 3 / 8) + 2400 * 4 // 8 + 48000 * 2 // 8 + 10080 * 3 // 8 + 840 * 8 // 8   # 17,877
PQ_RATIO = 32 * 784 * 300 / (32 * 75 * 16 * 4 + 784 * 75 * 4)                                         # 19.36
HUFFMAN_AVERAGE = 0.4 * 1 + 0.2 * 2 + 0.2 * 3 + 0.1 * 4 + 0.1 * 4                                      # 2.2


def test_solutions_pass():
    assert MIXED_BYTES == 17_877
    assert "17,877 bytes" in ch06.check_mixed_bytes(MIXED_BYTES)
    assert ch06.check_mixed_bytes(np.int64(MIXED_BYTES)).startswith("✓")
    assert "r = 19.36" in ch06.check_pq_ratio(PQ_RATIO)
    assert "2.20 bits per symbol" in ch06.check_huffman_average(HUFFMAN_AVERAGE)
    # the other Huffman code of the same distribution (lengths 2, 2, 2, 3, 3) has the same average
    assert ch06.check_huffman_average(0.4 * 2 + 0.2 * 2 + 0.2 * 2 + 0.1 * 3 + 0.1 * 3).startswith("✓")


def test_checkers_agree_with_labkit():
    """The checkers compute independently; labkit's functions must give the same numbers."""
    sizes = mixed.layer_sizes(models.build("lenet5"))
    assert mixed.allocation_bytes(sizes, ch06.ALLOCATION) == MIXED_BYTES
    assert codebook.pq_compression_ratio(784, 300, 4, 4) == pytest.approx(PQ_RATIO)
    counts = {s: int(p * 10) for s, p in ch06.DISTRIBUTION.items()}
    assert huffman.build_huffman_code(counts).average_length(counts) == pytest.approx(HUFFMAN_AVERAGE)


@pytest.mark.parametrize("wrong, hint", [
    (143_010, "that is bits"),
    (17_876.25, "round up per layer"),
    (17_876, "conv1's 150 weights at 3 bits are 56.25 bytes → 57"),
    (4 * 61_470, "that is float32"),
    (MIXED_BYTES + 4 * (6 + 16 + 120 + 84 + 10), "biases and scales are stored separately"),
    (61_470, "number of weights"),
    (12_345, "multiply its weight count"),
])
def test_mixed_bytes_fails_on_wrong_answers(wrong, hint):
    with pytest.raises(ExerciseError) as info:
        ch06.check_mixed_bytes(wrong)
    assert hint in str(info.value)


def test_mixed_bytes_rejects_an_incomplete_allocation():
    with pytest.raises(ValueError, match="every LeNet-5 layer"):
        ch06.check_mixed_bytes(1, allocation={"conv1": 4})
    with pytest.raises(ExerciseError, match="no answer yet"):
        ch06.check_mixed_bytes(None)


@pytest.mark.parametrize("wrong, hint", [
    (32 * 4 / 4, "codebooks are stored too"),
    (32 * 784 * 300 / (32 * 16 * 4 + 784 * 75 * 4), "its own codebook"),
    (32 * 784 * 300 / (32 * 75 * 16 * 4 + 784 * 300 * 4), "one code per *sub-vector*"),
    (1 / PQ_RATIO, "that is the inverse"),
    (8.0, "count bits before"),
    ("19.36", "count bits before"),
])
def test_pq_ratio_fails_on_wrong_answers(wrong, hint):
    with pytest.raises(ExerciseError) as info:
        ch06.check_pq_ratio(wrong)
    assert hint in str(info.value)


def test_pq_ratio_with_other_shapes():
    assert ch06.check_pq_ratio(codebook.pq_compression_ratio(300, 784, 8, 4), rows=300, cols=784,
                               sub_dim=8, bits=4).startswith("✓")


@pytest.mark.parametrize("wrong, hint", [
    (-sum(p * math.log2(p) for p in ch06.DISTRIBUTION.values()), "that is the entropy"),
    (3, "fixed-length code"),
    (1.5, "no prefix code averages fewer than the entropy"),
    (2.4, "merge the two least probable"),
    ("2.2", "should be a number"),
])
def test_huffman_average_fails_on_wrong_answers(wrong, hint):
    with pytest.raises(ExerciseError) as info:
        ch06.check_huffman_average(wrong)
    assert hint in str(info.value)


def test_huffman_average_of_another_distribution():
    # dyadic probabilities: Huffman reaches the entropy exactly, 1.75 bits
    assert ch06.check_huffman_average(1.75, distribution={0: 0.5, 1: 0.25, 2: 0.125, 3: 0.125}).startswith("✓")
    with pytest.raises(ExerciseError):
        ch06.check_huffman_average(2.0, distribution={0: 0.5, 1: 0.25, 2: 0.125, 3: 0.125})


@pytest.mark.parametrize("check", [ch06.check_mixed_bytes, ch06.check_pq_ratio, ch06.check_huffman_average])
def test_a_huge_answer_fails_with_an_exercise_error_not_an_overflow(check):
    with pytest.raises(ExerciseError):
        check(10**400)  # float(10**400) raises OverflowError
