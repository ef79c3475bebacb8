"""Relative indices with filler zeros (Deep Compression §2, Figure 2)."""
from __future__ import annotations

import numpy as np
import pytest

from labkit.pipeline.relative_index import filler_count, positions_from_relative, relative_index


def test_hand_checked_example_with_a_filler():
    # 3-bit gaps hold 1..8; the jump from 4 to 18 (gap 14) needs one filler 8 positions on (at 12)
    stored, filler = relative_index([1, 4, 18], gap_bits=3)
    assert stored.tolist() == [1, 2, 7, 5]          # gaps 2, 3, 8 (the filler), 6 — each stored as gap − 1
    assert filler.tolist() == [False, False, True, False]
    assert positions_from_relative(stored, 3).tolist() == [1, 4, 12, 18]
    assert filler_count([1, 4, 18], 3) == 1


@pytest.mark.parametrize("gap_bits", [1, 2, 5, 8])
def test_round_trip_on_random_sparsity(gap_bits):
    rng = np.random.default_rng(gap_bits)
    positions = np.flatnonzero(rng.random(5000) < 0.07)
    stored, filler = relative_index(positions, gap_bits)
    assert stored.max() < 2 ** gap_bits
    decoded = positions_from_relative(stored, gap_bits)
    assert decoded[~filler].tolist() == positions.tolist()
    assert filler.sum() == filler_count(positions, gap_bits)
    gaps = np.diff(positions, prepend=-1)
    assert filler.sum() == ((gaps - 1) // 2 ** gap_bits).sum()


def test_empty_and_bad_input():
    stored, filler = relative_index([], 5)
    assert stored.size == 0 and filler.size == 0
    with pytest.raises(ValueError, match="strictly increasing"):
        relative_index([3, 3, 5], 5)
    with pytest.raises(ValueError, match="gap_bits"):
        relative_index([1, 2], 0)
    with pytest.raises(TypeError, match="positions"):
        relative_index([1.5, 2.5], 5)
    with pytest.raises(ValueError, match=r"\[0, 7\]"):
        positions_from_relative(np.array([8]), 3)
