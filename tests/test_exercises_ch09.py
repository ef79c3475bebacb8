"""Checkers of notebook 09: each passes the solution and fails wrong answers with a pointed hint."""
import numpy as np
import pytest
import torch
from torch import nn

from labkit import measure, prune
from labkit.exercises import ExerciseError, ch09

# Worked by hand: A [24, 16, 3, 3] = 3,456; B [64, 24, 3, 3] = 13,824; MACs 14·14·17,280 = 3,386,880.
PARAMS_A, PARAMS_B, MACS = 3_456, 13_824, 3_386_880
# L1 norms 4, 3, 4, 5 → filter 1; L2 norms 2, 3, 2.83, 2.65 → filter 0.
L1_FIRST, L2_FIRST = 1, 0


def test_solutions_pass():
    assert ch09.check_filter_removal(PARAMS_A, PARAMS_B, MACS).startswith("✓ A 3,456 + B 13,824")
    assert ch09.check_first_removed(L1_FIRST, L2_FIRST).startswith("✓ L1 norms")
    assert ch09.check_first_removed(np.int64(1), torch.tensor(0)).startswith("✓")
    assert ch09.check_filter_removal(3456.0, np.int64(13_824), torch.tensor(MACS)).startswith("✓")


def test_independent_references_agree_with_labkit():
    model = nn.Sequential(nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.ReLU(),
                          nn.Conv2d(32, 64, 3, padding=1, bias=False))
    scores = prune.channel_scores(model, "l1")
    small = prune.prune_channels(model, {"0": prune.keep_indices(scores["0"], 0.25)})
    assert [m.weight.numel() for m in (small[0], small[2])] == [PARAMS_A, PARAMS_B]
    assert measure.total_macs(small, (16, 14, 14)) == MACS == sum(ch09.conv_reference()[2:])
    w = torch.tensor(ch09.FILTERS).unsqueeze(1)                               # [4, 1, 2, 2]
    assert int(prune.filter_norms(w, 1).argmin()) == L1_FIRST and int(prune.filter_norms(w, 2).argmin()) == L2_FIRST
    assert ch09.norm_reference() == (L1_FIRST, L2_FIRST)


@pytest.mark.parametrize("args, hint", [
    ((4_608, PARAMS_B, MACS), "A before pruning"),
    ((1_728, PARAMS_B, MACS), "*inputs* are the 16 image channels"),
    ((384, PARAMS_B, MACS), "16 × 3 × 3 weights"),
    ((3_000, PARAMS_B, MACS), "C_out · C_in · k · k"),
    ((PARAMS_A, 18_432, MACS), "must lose the 8 input channels"),
    ((PARAMS_A, 16_128, MACS), "keeps its 64 outputs"),
    ((PARAMS_A, 1_536, MACS), "24 × 3 × 3 weights"),
    ((PARAMS_A, PARAMS_B, 17_280), "that is the parameter count"),
    ((PARAMS_A, PARAMS_B, 196 * (3_456 + 18_432)), "use the pruned B"),
    ((PARAMS_A, PARAMS_B, 784 * 17_280), "keeps the maps 14 × 14"),
    ((PARAMS_A, PARAMS_B, 1_000_000), "H_out · W_out"),
    ((PARAMS_A, PARAMS_B, 3_386_880.5), "H_out · W_out"),
    ((None, PARAMS_B, MACS), None),
])
def test_filter_removal_wrong(args, hint):
    with pytest.raises(ExerciseError) as info:
        ch09.check_filter_removal(*args)
    if hint:
        assert hint in info.value.hint


@pytest.mark.parametrize("args, name, hint", [
    ((3, L2_FIRST), "l1_first", "largest L1 norm"),
    ((2, L2_FIRST), "l1_first", "signed sum"),
    ((0, L2_FIRST), "l1_first", "L2 choice"),
    ((4, L2_FIRST), "l1_first", "argmin"),
    (("one", L2_FIRST), "l1_first", "argmin"),
    ((L1_FIRST, 1), "l2_first", "squaring rewards"),
    ((L1_FIRST, 2), "l2_first", "sqrt"),
    ((L1_FIRST, 3), "l2_first", "sqrt"),
    ((L1_FIRST, -1), "l2_first", "argmin"),
])
def test_first_removed_wrong(args, name, hint):
    with pytest.raises(ExerciseError, match=name) as info:
        ch09.check_first_removed(*args)
    assert hint in info.value.hint
