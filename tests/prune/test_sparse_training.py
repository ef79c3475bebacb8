"""Sparse training: L1 and group-LASSO penalties (value and gradient by hand), soft-thresholding,
and L1 training leaving more weights near zero than plain training."""

import pytest
import torch
from torch import nn

from labkit import prune, train


def two_layers():
    model = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[0.5, -1.0, 0.0], [2.0, 0.25, -0.75]]))
        model[2].weight.copy_(torch.tensor([[-3.0, 4.0]]))
    return model


def test_l1_penalty_value_and_gradient_by_hand():
    model, lam = two_layers(), 0.01
    penalty = prune.l1_penalty(model, lam)
    assert penalty.item() == pytest.approx(lam * (0.5 + 1 + 0 + 2 + 0.25 + 0.75 + 3 + 4))   # biases excluded
    penalty.backward()
    assert torch.equal(model[0].weight.grad, lam * torch.sign(model[0].weight.detach()))
    assert model[0].weight.grad[0, 2] == 0                               # subgradient 0 at w = 0
    assert torch.equal(model[2].weight.grad, torch.tensor([[-lam, lam]]))
    assert model[0].bias.grad is None
    assert prune.l1_regularizer(lam)(two_layers()).item() == pytest.approx(penalty.item())


def test_group_lasso_penalty_value_and_gradient_by_hand():
    model, lam = two_layers(), 0.1
    penalty = prune.group_lasso_penalty(model, lam)
    rows = [(0.25 + 1.0) ** 0.5, (4.0 + 0.0625 + 0.5625) ** 0.5, 5.0]
    assert penalty.item() == pytest.approx(lam * sum(rows))
    penalty.backward()
    w = model[0].weight.detach()
    assert torch.allclose(model[0].weight.grad, lam * w / torch.tensor(rows[:2]).unsqueeze(1))
    assert torch.allclose(prune.group_norms(torch.ones(4, 2, 3, 3)), torch.full((4,), 18 ** 0.5))
    zero = nn.Sequential(nn.Linear(2, 2))
    with torch.no_grad():
        zero[0].weight.zero_()
    prune.group_lasso_penalty(zero, 1.0).backward()
    assert torch.equal(zero[0].weight.grad, torch.zeros(2, 2))          # no NaN at a zero group


def test_penalties_on_a_pruned_model_use_the_effective_weight():
    model = two_layers()
    prune.prune_layer(model[2], 0.5)                                     # prunes -3.0
    assert prune.l1_penalty(model, 1.0).item() == pytest.approx(4.5 + 4.0)
    prune.l1_penalty(model, 1.0).backward()
    assert torch.equal(model[2].weight_orig.grad, torch.tensor([[0.0, 1.0]]))


def test_soft_threshold_and_proximal_step():
    w = torch.tensor([-0.3, -0.05, 0.0, 0.02, 0.5])
    assert torch.allclose(prune.soft_threshold(w, 0.1), torch.tensor([-0.2, 0.0, 0.0, 0.0, 0.4]))
    assert torch.equal(prune.soft_threshold(w, 0.0), w)
    model = two_layers()
    prune.l1_proximal(0.6)(model)
    assert torch.allclose(model[0].weight, torch.tensor([[0.0, -0.4, 0.0], [1.4, 0.0, -0.15]]))
    assert torch.allclose(model[2].weight, torch.tensor([[-2.4, 3.4]]))
    pruned = two_layers()
    prune.prune_layer(pruned[2], 0.5)
    prune.l1_proximal(1.0)(pruned)
    assert torch.allclose(pruned[2].weight, torch.tensor([[0.0, 3.0]]))


def test_near_zero_report():
    report = prune.near_zero_report(two_layers(), threshold=0.3)
    assert report["count"] == 2 and report["total"] == 8                  # 0.0 and 0.25
    assert report["layers"] == {"0": 2 / 6, "2": 0.0} and report["global"] == 0.25


def test_l1_training_drives_more_weights_below_1e_3(model_factory, blobs):
    plain, sparse = model_factory(0), model_factory(0)
    train.fit(plain, blobs, epochs=8, lr=3e-3, seed=0, progress=False)
    train.fit(sparse, blobs, epochs=8, lr=3e-3, seed=0, progress=False, regularizer=prune.l1_regularizer(1e-3))
    near_plain = prune.near_zero_report(plain, 1e-3)["global"]
    near_sparse = prune.near_zero_report(sparse, 1e-3)["global"]          # measured 0.8 % vs 16.7 %
    assert near_plain < 0.02 and near_sparse > 0.12 and near_sparse > 10 * near_plain, (near_plain, near_sparse)
    assert train.evaluate(sparse, blobs) > 0.85                         # the task is still solved
    assert prune.sparsity(sparse)["global"] < 0.01                       # the subgradient makes few exact zeros


def test_proximal_steps_make_exact_zeros(model_factory, blobs):
    prox = model_factory(0)
    train.fit(prox, blobs, epochs=4, lr=3e-2, optimizer="sgd", seed=0, progress=False,
              after_step=prune.l1_proximal(3e-4))
    assert prune.sparsity(prox)["global"] > 0.08                         # measured 9.95 % exact zeros


def test_bad_inputs(model):
    with pytest.raises(ValueError, match=r"lam must be a finite number in \[0.0, 1.0\]"):
        prune.l1_penalty(model, -1e-4)
    with pytest.raises(TypeError, match="lam must be a real number"):
        prune.l1_regularizer("1e-4")
    with pytest.raises(ValueError, match=r"lam must be a finite number in \[0.0, 1.0\]"):
        prune.group_lasso_regularizer(float("nan"))
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        prune.group_lasso_penalty(torch.ones(3), 0.1)
    with pytest.raises(ValueError, match="no nn.Linear or nn.Conv2d layer"):
        prune.l1_penalty(nn.Sequential(nn.ReLU()), 0.1)
    with pytest.raises(ValueError, match=r"threshold must be a finite number in \[0.0, inf\)"):
        prune.soft_threshold(torch.ones(3), -0.1)
    with pytest.raises(TypeError, match="weight must be a torch.Tensor"):
        prune.soft_threshold([1.0], 0.1)
    with pytest.raises(ValueError, match=r"threshold must be a finite number in \[0.0, inf\)"):
        prune.l1_proximal(float("inf"))
    with pytest.raises(ValueError, match=r"threshold must be a finite number in \(0.0, inf\)"):
        prune.near_zero_report(model, 0.0)
    with pytest.raises(ValueError, match=r"weight must have ≥ 2 dimensions"):
        prune.group_norms(torch.ones(3))
