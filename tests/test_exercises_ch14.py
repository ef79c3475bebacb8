"""Chapter 14 checkers: each fails on wrong answers (with a hint) and passes on the solution; their
independent references agree with labkit.pipeline."""
from __future__ import annotations

import re

import numpy as np
import pytest

from labkit.exercises import ExerciseError, NotAttempted, ch14
from labkit.pipeline import report
from labkit.pipeline.compose import Pipeline, PipelineOrderError
from labkit.pipeline.relative_index import relative_index


def test_pareto_reference_agrees_with_labkit():
    labels = list(ch14.CANDIDATES)
    points = [{"bytes": s, "accuracy": a} for s, a in ch14.CANDIDATES.values()]
    assert [labels[i] for i in report.pareto_front(points)] == ch14.pareto_reference()


def test_pareto_front_checker():
    assert "only D is dominated" in ch14.check_pareto_front(["A", "B", "C", "E", "F"])
    assert ch14.check_pareto_front(("F", "E", "C", "B", "A")).startswith("✓")
    for wrong, hint in ((["A", "B", "C", "D", "E", "F"], "C (140.2 kB, 98.05 %) is smaller"),
                        (["B", "C", "E", "F"], "largest, most accurate"), (["E", "F", "Z"], "not candidates"),
                        ("ABCEF", "list of labels")):
        with pytest.raises(ExerciseError, match=re.escape(hint)):
            ch14.check_pareto_front(wrong)
    assert isinstance(ch14.check_pareto_front(...), NotAttempted)


def test_layer_bytes_reference_agrees_with_relative_index():
    # a layer whose gaps need exactly FILLERS fillers at GAP_BITS-bit indices: FILLERS gaps of 20
    # (one filler each: 20 > 2^4) among gaps of 9, shuffled
    rng = np.random.default_rng(0)
    gaps = np.array([20] * ch14.FILLERS + [9] * (ch14.LAYER_NONZEROS - ch14.FILLERS))
    positions = np.cumsum(rng.permutation(gaps)) - 1
    assert positions[-1] < ch14.LAYER_WEIGHTS
    stored, filler = relative_index(positions, ch14.GAP_BITS)
    assert int(filler.sum()) == ch14.FILLERS
    entries = len(stored)
    assert entries == ch14.LAYER_NONZEROS + ch14.FILLERS                  # non-zeros + fillers, as the checker counts
    codebook = 2 ** ch14.WEIGHT_BITS * 4                                   # float32 centroids
    assert ch14.layer_bytes_reference() == -(-entries * (ch14.GAP_BITS + ch14.WEIGHT_BITS) // 8) + codebook == 3638


def test_layer_bytes_checker():
    assert ch14.check_layer_bytes(3120, 3638).startswith("✓")
    assert ch14.check_layer_bytes(3120.0, 3638.0).startswith("✓")
    for entries, size, hint in ((3000, 3638, "each filler is one more stored entry"),
                                (3120, 3510, "add the codebook"), (3120, 28208, "bits, not bytes"),
                                (3120, 3503, "fillers are stored too"), (3120, 2078, "4-bit relative index"),
                                (3120, 9999, "rounded up to whole bytes")):
        with pytest.raises(ExerciseError, match=hint):
            ch14.check_layer_bytes(entries, size)


def test_orders_reference_agrees_with_labkit():
    for number, order in ch14.ORDERS.items():
        try:
            Pipeline(list(order))
            composes = True
        except PipelineOrderError:
            composes = False
        assert composes == (number in ch14.COMPOSE), order


def test_orders_checker():
    assert ch14.check_orders({1, 3, 5}).startswith("✓")
    assert ch14.check_orders([5, 3, 1]).startswith("✓")
    for wrong, hint in (({1, 2, 3, 5}, "order 2 fine-tunes after PTQ"), ({1, 3, 4, 5}, "dense"),
                        ({3, 5}, "order 1 is the classic"), ({1, 5}, "prunes inside QAT"), ("135", "set of order")):
        with pytest.raises(ExerciseError, match=hint):
            ch14.check_orders(wrong)
