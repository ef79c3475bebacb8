"""Checkers of notebook 08: each passes the solution and fails wrong answers with a pointed hint."""
import numpy as np
import pytest
import torch
from torch import nn

from labkit import prune
from labkit.exercises import ExerciseError, ch08

# Solutions worked out by hand: |w·g| = .008 .045 .15 .012 .04 .006 → index 5 (w = 1.2) goes first.
TAYLOR, FIRST = [0.008, 0.045, 0.15, 0.012, 0.04, 0.006], 5
# η·λ = 0.05: subgradient w − 0.05·sign(w); proximal sign(w)·max(|w| − 0.05, 0).
SUB = [0.25, 0.01, 0.02, -0.45, 0.0, -0.02]
PROX = [0.25, 0.0, 0.02, -0.45, 0.0, 0.0]


def test_solutions_pass():
    assert ch08.check_taylor_saliency(TAYLOR, FIRST).startswith("✓ |w·g| = ")
    assert "3 exact zeros" in ch08.check_l1_step(SUB, PROX)


def test_solutions_pass_as_torch_and_numpy_values():
    w, g = torch.tensor(ch08.W), torch.tensor(ch08.G)
    scores = (w * g).abs()
    assert ch08.check_taylor_saliency(scores, scores.argmin()).startswith("✓")
    wl = torch.tensor(ch08.W_L1)
    assert ch08.check_l1_step(wl - 0.05 * wl.sign(), prune.soft_threshold(wl, 0.05).numpy()).startswith("✓")
    assert ch08.check_taylor_saliency(np.array(TAYLOR), np.int64(5)).startswith("✓")


def test_independent_references_agree_with_labkit():
    layer = nn.Linear(6, 1, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([ch08.W]))
    target = torch.zeros(1, 1)
    x = torch.tensor([[1.0] * 6])
    # a loss whose gradient w.r.t. the weights is exactly G: L = G·w (linear in w)
    scores = prune.taylor_scores(nn.Sequential(layer), (x, target), batches=1, batch_size=1,
                                 loss_fn=lambda out, y: (layer.weight * torch.tensor([ch08.G])).sum())
    assert np.allclose(scores["0"].reshape(-1).numpy(), ch08.taylor_reference())
    mask = prune.prune_layer(layer, 1 / 6, scores=scores["0"])
    assert int(mask.reshape(-1).argmin()) == FIRST
    assert np.allclose(prune.soft_threshold(torch.tensor(ch08.W_L1, dtype=torch.float64), 0.05).numpy(),
                       ch08.proximal_reference())
    model = nn.Sequential(nn.Linear(6, 1, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([ch08.W_L1], dtype=torch.float32))
    prune.l1_penalty(model, ch08.LAM).backward()
    stepped = model[0].weight.detach() - ch08.LR * model[0].weight.grad
    assert np.allclose(stepped.reshape(-1).numpy(), ch08.subgradient_reference(), atol=1e-7)


W, G = np.array(ch08.W), np.array(ch08.G)


@pytest.mark.parametrize("wrong, hint", [
    (W * G, "signed products"),
    (np.abs(W), "magnitude |w| alone"),
    (np.abs(G), "gradient |g| alone"),
    (W ** 2 * G, "seed 001's w²·g"),
    (0.5 * (W * G) ** 2, "second-order"),
    ([1, 2, 3, 4, 5, 6], "multiply each weight"),
    ([0.008, 0.045], "multiply each weight"),
    ("scores", "multiply each weight"),
])
def test_taylor_wrong_scores(wrong, hint):
    with pytest.raises(ExerciseError, match="taylor") as info:
        ch08.check_taylor_saliency(wrong, FIRST)
    assert hint in info.value.hint


@pytest.mark.parametrize("wrong, hint", [
    (4, "magnitude pruning's choice"),
    (2, "*most* salient"),
    (6, "start at 0"),
    (0, "smallest |w·g|"),
    (5.5, "smallest |w·g|"),
])
def test_taylor_wrong_index(wrong, hint):
    with pytest.raises(ExerciseError, match="first_pruned") as info:
        ch08.check_taylor_saliency(TAYLOR, wrong)
    assert hint in info.value.hint


WL = np.array(ch08.W_L1)


@pytest.mark.parametrize("wrong, hint", [
    (WL - 0.5 * np.sign(WL), "η·λ = 0.05, not λ"),
    (WL + 0.05 * np.sign(WL), "against"),
    (WL - 0.05 * np.where(WL >= 0, 1.0, -1.0), "sign(0) = 0"),
    (PROX, "that is the proximal step"),
    (WL, "subtract η·λ·sign(w)"),
])
def test_l1_wrong_subgradient(wrong, hint):
    with pytest.raises(ExerciseError, match="subgradient_step") as info:
        ch08.check_l1_step(wrong, PROX)
    assert hint in info.value.hint


@pytest.mark.parametrize("wrong, hint", [
    (SUB, "no clipping at zero"),
    (np.zeros(6), "not λ = 0.5"),
    (np.where(np.abs(WL) > 0.05, WL, 0.0), "hard-thresholding"),
    (np.maximum(np.abs(WL) - 0.05, 0.0), "signs are lost"),
    ([0.25, 0.0], "sign(w)·max"),
])
def test_l1_wrong_proximal(wrong, hint):
    with pytest.raises(ExerciseError, match="proximal_step") as info:
        ch08.check_l1_step(SUB, wrong)
    assert hint in info.value.hint


def test_unanswered():
    with pytest.raises(ExerciseError, match="no answer yet"):
        ch08.check_taylor_saliency(None, FIRST)
    assert ch08.check_l1_step(SUB, ...).startswith("Not attempted yet")
