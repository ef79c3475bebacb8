"""Checkers of notebook 07: each passes the solution and fails wrong answers with a pointed hint."""
import numpy as np
import pytest
import torch
from torch import nn

from labkit import prune
from labkit.measure import encodings
from labkit.exercises import ExerciseError, ch07

# Solutions worked out by hand, as in the notebook: the 14 magnitudes sorted are
# .02 .05 .1 .25 .3 .35 .4 | .5 .6 .7 .8 .9 .95 1.1 → k = 7, threshold 0.4; A keeps .9 .6 .7, B keeps .5 .95 .8 1.1.
THRESHOLD, KEPT = 0.4, [3, 4]
# CSR of [300, 784] with 23,520 non-zeros: 2 + 301·2 (uint16 pointers) + 23,520·(2 + 4).
CSR_BYTES = 2 + 301 * 2 + 23_520 * 6                                        # 141,724
BREAK_EVEN = 1 / 32


def test_solutions_pass():
    assert ch07.check_global_prune(THRESHOLD, KEPT).startswith("✓ threshold |w| = 0.4: A keeps 3 of 8, B keeps 4")
    assert "141,724 B" in ch07.check_csr_layer(CSR_BYTES, BREAK_EVEN)


def test_solutions_pass_as_torch_and_numpy_values():
    w = torch.cat([torch.tensor(ch07.LAYER_A).abs().flatten(), torch.tensor(ch07.LAYER_B).abs().flatten()])
    threshold = w.sort().values[6]
    kept = torch.tensor([(torch.tensor(ch07.LAYER_A).abs() > threshold).sum(),
                         (torch.tensor(ch07.LAYER_B).abs() > threshold).sum()])
    assert ch07.check_global_prune(threshold, kept).startswith("✓")
    assert ch07.check_csr_layer(np.int64(CSR_BYTES), np.float32(1 / 32)).startswith("✓")


def test_independent_references_agree_with_labkit():
    """The checkers' NumPy sort and byte formula agree with labkit.prune and labkit.measure."""
    model = nn.Sequential(nn.Linear(4, 2, bias=False), nn.Linear(2, 3, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor(ch07.LAYER_A))
        model[1].weight.copy_(torch.tensor(ch07.LAYER_B))
    assert prune.global_threshold(model, 0.5) == pytest.approx(THRESHOLD)
    masks = prune.global_magnitude_prune(model, 0.5)
    assert [int(masks["0"].sum()), int(masks["1"].sum())] == KEPT
    weight = torch.zeros(ch07.CSR_SHAPE)
    weight.view(-1)[torch.randperm(weight.numel(), generator=torch.Generator().manual_seed(0))[:ch07.CSR_NNZ]] = 1.5
    payload = encodings.encode(weight, "csr:fp32")
    assert len(payload) == ch07.csr_payload_bytes() == CSR_BYTES
    assert len(encodings.encode(weight, "bitmask:fp32")) == -(-weight.numel() // 8) + 4 * ch07.CSR_NNZ


@pytest.mark.parametrize("wrong, hint", [
    (0.45, "np.percentile interpolates"),
    (0.02, "rank the magnitudes |w|"),
    (0.5, "smallest *kept* magnitude"),
    (0.3, "per-layer threshold"),
    (0.6, "sort all 14 values"),
    ("0.4", "sort all 14 values"),
])
def test_global_prune_wrong_threshold(wrong, hint):
    with pytest.raises(ExerciseError) as info:
        ch07.check_global_prune(wrong, KEPT)
    assert hint in info.value.hint


@pytest.mark.parametrize("wrong, hint", [
    ([4, 3], "layer-wise pruning"),
    ([5, 2], "pruned counts"),
    ([3, 3], "|w| > threshold"),
    ([7], "|w| > threshold"),
    ("three", "|w| > threshold"),
])
def test_global_prune_wrong_kept(wrong, hint):
    with pytest.raises(ExerciseError, match="kept_per_layer") as info:
        ch07.check_global_prune(THRESHOLD, wrong)
    assert hint in info.value.hint


@pytest.mark.parametrize("wrong, hint", [
    (2 + 301 * 4 + 23_520 * 6, "uint16 (2 bytes)"),
    (2 + 301 * 2 + 23_520 * 8, "column indices go up to 783"),
    (2 + 301 * 2 + 23_520 * 5, "uint8 cannot hold"),
    (2 + 300 * 2 + 23_520 * 6, "rows + 1 row pointers"),
    (301 * 2 + 23_520 * 6, "2 bytes: the itemsizes"),                       # same total as 300 pointers
    (2 + 300 * 4 + 23_520 * 6, "smallest unsigned type"),
    (23_520 * 4, "values alone"),
    (29_400 + 4 * 23_520, "bitmask format"),
    (4 * 300 * 784, "dense fp32"),
    (123, "smallest unsigned type"),
    (141_724.5, "smallest unsigned type"),
])
def test_csr_wrong_bytes(wrong, hint):
    with pytest.raises(ExerciseError, match="csr_bytes") as info:
        ch07.check_csr_layer(wrong, BREAK_EVEN)
    assert hint in info.value.hint


@pytest.mark.parametrize("wrong, hint", [
    (31 / 32, "density"),
    (0.25, "1 *bit* per weight"),
    (3.125, "percentage"),
    (1 / 3, "s > 1/32"),
])
def test_csr_wrong_break_even(wrong, hint):
    with pytest.raises(ExerciseError, match="bitmask_break_even") as info:
        ch07.check_csr_layer(CSR_BYTES, wrong)
    assert hint in info.value.hint


def test_unanswered():
    with pytest.raises(ExerciseError, match="no answer yet"):
        ch07.check_global_prune(None, KEPT)
    assert ch07.check_csr_layer(CSR_BYTES, ...).startswith("Not attempted yet")
