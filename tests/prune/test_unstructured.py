"""Magnitude/random unstructured pruning against torch.nn.utils.prune as the oracle."""
import copy

import pytest
import torch
import torch.nn.utils.prune as torch_prune
from torch import nn

from labkit import prune


@pytest.mark.parametrize("amount", [0.0, 0.1, 0.37, 0.5, 0.9, 1.0])
@pytest.mark.parametrize("make", [lambda: nn.Linear(50, 30), lambda: nn.Conv2d(3, 8, 3)])
def test_prune_layer_matches_l1_unstructured(amount, make):
    torch.manual_seed(1)
    ours = make()
    theirs = copy.deepcopy(ours)
    prune.prune_layer(ours, amount)
    torch_prune.l1_unstructured(theirs, "weight", amount=amount)
    assert torch.equal(ours.weight_mask, theirs.weight_mask)
    assert int((ours.weight_mask == 0).sum()) == round(amount * ours.weight.numel())


@pytest.mark.parametrize("amount", [0.2, 0.5, 0.8, 0.95])
def test_global_magnitude_prune_matches_global_unstructured(amount, model_factory):
    ours, theirs = model_factory(3), model_factory(3)
    prune.global_magnitude_prune(ours, amount)
    params = [(m, "weight") for m in prune.prunable_layers(theirs).values()]
    torch_prune.global_unstructured(params, pruning_method=torch_prune.L1Unstructured, amount=amount)
    for name, module in prune.prunable_layers(ours).items():
        assert torch.equal(module.weight_mask, prune.prunable_layers(theirs)[name].weight_mask), name
    s = prune.sparsity(ours)
    assert s["zeros"] == round(amount * s["total"])


def test_global_threshold_separates_pruned_from_kept(model):
    t = prune.global_threshold(model, 0.6)
    prune.global_magnitude_prune(model, 0.6)
    for module in prune.prunable_layers(model).values():
        w, m = module.weight_orig.detach().abs(), module.weight_mask
        assert torch.all(w[m == 0] <= t) and torch.all(w[m == 1] >= t)
    assert prune.global_threshold(model, 0.0) == 0.0


def test_ties_are_broken_by_position_and_the_count_is_exact():
    layer = nn.Linear(4, 2, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.5, -0.5, 0.5, 0.1], [0.5, -0.5, 2.0, 0.5]]))
    mask = prune.prune_layer(layer, 0.5)             # |0.1| then the first three 0.5s by flat index
    assert mask.tolist() == [[0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]]
    again = nn.Linear(4, 2, bias=False)
    again.load_state_dict({"weight": torch.zeros(2, 4)})
    assert int((prune.prune_layer(again, 0.375) == 0).sum()) == 3        # all equal: still exactly 3


def test_repeated_pruning_keeps_earlier_zeros_and_reaches_target(model):
    first = prune.global_magnitude_prune(model, 0.5)
    second = prune.global_magnitude_prune(model, 0.8)
    for name in first:
        assert torch.all(second[name][first[name] == 0] == 0)
    assert prune.sparsity(model)["zeros"] == round(0.8 * prune.sparsity(model)["total"])
    assert all(len(m._forward_pre_hooks) == 1 for m in prune.prunable_layers(model).values())


def test_random_criterion_is_seeded_and_ignores_values():
    a, b = nn.Linear(30, 20), nn.Linear(30, 20)
    ma, mb = prune.prune_layer(a, 0.4, "random", seed=7), prune.prune_layer(b, 0.4, "random", seed=7)
    assert torch.equal(ma, mb) and int((ma == 0).sum()) == 240
    c = nn.Linear(30, 20)
    assert not torch.equal(prune.prune_layer(c, 0.4, "random", seed=8), ma)
    magnitude = prune.prune_layer(copy.deepcopy(nn.Linear(30, 20)), 0.4)
    assert not torch.equal(magnitude, ma)


def test_layerwise_prune(model):
    masks = prune.layerwise_prune(model, {"3": 0.9, "5": 0.5})
    s = prune.sparsity(model)["layers"]
    assert set(masks) == {"3", "5"} and s == {"0": 0.0, "3": pytest.approx(0.9, abs=1e-3), "5": 0.5}


def test_global_prune_restricted_to_layers(model):
    prune.global_prune(model, 0.5, layers=["3", "5"])
    s = prune.sparsity(model)
    assert s["layers"]["0"] == 0.0 and s["zeros"] == round(0.5 * (4608 + 320))


@pytest.mark.parametrize("amount", [-0.1, 1.5, float("nan"), float("inf")])
def test_amount_out_of_range(amount, model):
    with pytest.raises(ValueError, match=r"amount must be a finite number in \[0.0, 1.0\]"):
        prune.prune_layer(model[3], amount)
    with pytest.raises(ValueError, match="amount must be"):
        prune.global_magnitude_prune(model, amount)


def test_bad_inputs(model):
    with pytest.raises(TypeError, match="amount must be a real number"):
        prune.prune_layer(model[3], "0.5")
    with pytest.raises(TypeError, match="unsupported module type ReLU"):
        prune.prune_layer(model[1], 0.5)
    with pytest.raises(TypeError, match="module must be a torch.nn.Module"):
        prune.prune_layer(torch.ones(3), 0.5)
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        prune.global_magnitude_prune([model], 0.5)
    with pytest.raises(ValueError, match="criterion must be one of 'magnitude', 'random'"):
        prune.prune_layer(model[3], 0.5, "taylor")
    with pytest.raises(ValueError, match=r"unknown layer name\(s\) \['fc9'\]"):
        prune.layerwise_prune(model, {"fc9": 0.5})
    with pytest.raises(ValueError, match=r"amounts\['3'\] must be"):
        prune.layerwise_prune(model, {"3": 2.0})
    with pytest.raises(TypeError, match="amounts must be a dict"):
        prune.layerwise_prune(model, [0.5])
    with pytest.raises(ValueError, match="unknown layer name"):
        prune.global_prune(model, 0.5, layers=["conv9"])
    with pytest.raises(ValueError, match="no nn.Linear or nn.Conv2d"):
        prune.global_magnitude_prune(nn.Sequential(nn.ReLU()), 0.5)
