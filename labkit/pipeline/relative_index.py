"""Relative indexing of a sparse tensor with filler zeros (Deep Compression's sparse storage).

Han, Mao & Dally, "Deep Compression", ICLR 2016, §2 and Figure 2: instead of the absolute position of
each non-zero weight (CSR's column index, ``log2(columns)`` bits), store the *difference* to the
previous non-zero in a few bits — 5 bits for LeNet and VGG, 4 for AlexNet. A gap wider than the
widest the bits can hold gets a **filler**: an extra entry, ``2^bits`` positions further on, whose
weight is zero. Each stored entry then carries a gap and a weight value (0 for a filler).

With ``b`` bits we store ``g − 1 ∈ [0, 2^b − 1]`` for a gap ``g ≥ 1`` (so the widest gap is ``2^b``; the
first non-zero's gap counts from position −1). A gap ``g > 2^b`` becomes ``⌊(g − 1)/2^b⌋`` fillers
of gap ``2^b`` followed by the rest. Decoding is one cumulative sum::

    positions = cumsum(stored + 1) − 1

The cost per non-zero is ``b`` bits of gap (plus one extra entry per overflow), against
``⌈log2(n)⌉`` bits for an absolute index: 5 instead of 18 bits for LeNet-300-100's 235,200-weight ``fc1``.

Explained in notebooks/14_pipeline_tradeoffs_export.ipynb
"""
from __future__ import annotations

import numpy as np

from labkit.validate import require_int

__all__ = ["relative_index", "positions_from_relative", "filler_count"]


def _check_positions(positions) -> np.ndarray:
    positions = np.asarray(positions)
    if positions.ndim != 1 or (positions.size and positions.dtype.kind not in "iu"):
        raise TypeError(f"positions must be a 1-D array of integers, got shape {positions.shape} "
                        f"of dtype {positions.dtype}")
    positions = positions.astype(np.int64)
    if positions.size and (positions[0] < 0 or np.any(np.diff(positions) <= 0)):
        raise ValueError("positions must be strictly increasing non-negative integers (the flat indices of "
                         "the non-zeros, in order)")
    return positions


def relative_index(positions, gap_bits: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Gaps of sorted non-zero ``positions`` as ``gap_bits``-bit codes, with fillers for overflows.

    ``positions`` int ``[nnz]`` strictly increasing (``np.flatnonzero(w)``). Returns ``(stored,
    filler)``: ``stored`` uint32 ``[entries]`` with ``stored = gap − 1`` in ``[0, 2^gap_bits − 1]``, and
    ``filler`` bool ``[entries]``, True for the filler entries (whose weight must be stored as zero).
    ``entries = nnz + Σ ⌊(g_i − 1) / 2^gap_bits⌋``. ``gap_bits`` in [1, 16].
    Explained in notebooks/14_pipeline_tradeoffs_export.ipynb
    """
    gap_bits = require_int("gap_bits", gap_bits, 1, 16)
    positions = _check_positions(positions)
    widest = 2 ** gap_bits
    gaps = np.diff(positions, prepend=-1)                       # g_i >= 1
    fillers = (gaps - 1) // widest                              # extra entries before non-zero i
    counts = fillers + 1
    stored = np.full(int(counts.sum()), widest - 1, dtype=np.int64)   # a filler's gap is the widest
    last = np.cumsum(counts) - 1                                # where each real non-zero lands
    stored[last] = gaps - fillers * widest - 1
    filler = np.ones(stored.size, dtype=bool)
    filler[last] = False
    return stored.astype(np.uint32), filler


def positions_from_relative(stored, gap_bits: int = 5) -> np.ndarray:
    """Inverse of ``relative_index``: the flat position of every stored entry (fillers included),
    ``cumsum(stored + 1) − 1``, int64 ``[entries]``. ``stored`` values must lie in ``[0, 2^gap_bits − 1]``.
    Explained in notebooks/14_pipeline_tradeoffs_export.ipynb
    """
    gap_bits = require_int("gap_bits", gap_bits, 1, 16)
    stored = np.asarray(stored)
    if stored.ndim != 1 or (stored.size and stored.dtype.kind not in "iu"):
        raise TypeError(f"stored must be a 1-D array of integers, got shape {stored.shape} of dtype {stored.dtype}")
    if stored.size and (int(stored.min()) < 0 or int(stored.max()) >= 2 ** gap_bits):
        raise ValueError(f"stored gaps must lie in [0, {2 ** gap_bits - 1}] for gap_bits={gap_bits}")
    return np.cumsum(stored.astype(np.int64) + 1) - 1


def filler_count(positions, gap_bits: int = 5) -> int:
    """How many filler entries ``relative_index(positions, gap_bits)`` adds: ``Σ ⌊(g_i − 1) / 2^gap_bits⌋``.
    Explained in notebooks/14_pipeline_tradeoffs_export.ipynb
    """
    gap_bits = require_int("gap_bits", gap_bits, 1, 16)
    gaps = np.diff(_check_positions(positions), prepend=-1)
    return int(((gaps - 1) // 2 ** gap_bits).sum())
