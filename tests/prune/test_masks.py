"""labkit.prune.masks against torch.nn.utils.prune: same re-parametrisation, same remove()."""
import copy

import pytest
import torch
import torch.nn.utils.prune as torch_prune
from torch import nn

from labkit import prune
from labkit.prune import masks


def random_mask(shape, seed=0):
    return (torch.rand(shape, generator=torch.Generator().manual_seed(seed)) > 0.4).float()


def test_apply_mask_matches_torch_custom_from_mask():
    ours = nn.Linear(12, 7)
    theirs = copy.deepcopy(ours)
    mask = random_mask(ours.weight.shape)
    prune.apply_mask(ours, "weight", mask=mask)
    torch_prune.custom_from_mask(theirs, "weight", mask)
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["bias", "weight_orig", "weight_mask"]
    assert isinstance(ours.weight_orig, nn.Parameter) and not isinstance(ours.weight, nn.Parameter)
    assert "weight_mask" in dict(ours.named_buffers())
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    x = torch.randn(5, 12)
    assert torch.equal(ours(x), theirs(x))
    assert torch.equal(ours.weight, theirs.weight)
    assert int((ours.weight == 0).sum()) == int((mask == 0).sum())


def test_hook_recomputes_weight_from_orig_and_mask():
    layer = nn.Linear(6, 3)
    mask = random_mask(layer.weight.shape, 1)
    prune.apply_mask(layer, mask=mask)
    with torch.no_grad():
        layer.weight_orig.add_(1.0)           # train the original weights...
    layer(torch.randn(2, 6))                  # ...the next forward sees orig * mask
    assert torch.equal(layer.weight, layer.weight_orig.detach() * mask)


def test_gradient_of_pruned_weights_is_zero():
    layer = nn.Linear(6, 3)
    mask = random_mask(layer.weight.shape, 2)
    prune.apply_mask(layer, mask=mask)
    layer(torch.randn(4, 6)).pow(2).sum().backward()
    assert torch.all(layer.weight_orig.grad[mask == 0] == 0)
    assert torch.any(layer.weight_orig.grad[mask == 1] != 0)


def test_masks_combine_like_torch():
    ours = nn.Linear(10, 10)
    theirs = copy.deepcopy(ours)
    m1, m2 = random_mask((10, 10), 3), random_mask((10, 10), 4)
    prune.apply_mask(ours, mask=m1)
    prune.apply_mask(ours, mask=m2)
    torch_prune.custom_from_mask(theirs, "weight", m1)
    torch_prune.custom_from_mask(theirs, "weight", m2)
    assert torch.equal(ours.weight_mask, theirs.weight_mask)
    assert torch.equal(ours.weight_mask, m1 * m2)
    assert len(ours._forward_pre_hooks) == 1


def test_remove_is_equivalent_to_torch_remove():
    ours = nn.Conv2d(3, 4, 3)
    theirs = copy.deepcopy(ours)
    mask = random_mask(ours.weight.shape, 5)
    prune.apply_mask(ours, mask=mask)
    torch_prune.custom_from_mask(theirs, "weight", mask)
    prune.remove(ours, "weight")
    torch_prune.remove(theirs, "weight")
    assert isinstance(ours.weight, nn.Parameter)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert torch.equal(ours.weight, theirs.weight)
    assert not ours._forward_pre_hooks and not prune.is_pruned(ours)
    assert not hasattr(ours, "weight_orig") and not hasattr(ours, "weight_mask")
    x = torch.randn(1, 3, 8, 8)
    assert torch.equal(ours(x), theirs(x))


def test_remove_loads_into_a_fresh_model_and_state_dict_round_trips():
    layer = nn.Linear(8, 4)
    prune.prune_layer(layer, 0.5)
    pruned_state = copy.deepcopy(layer.state_dict())
    fresh = nn.Linear(8, 4)
    prune.apply_mask(fresh, mask=torch.ones(4, 8))
    fresh.load_state_dict(pruned_state)                     # a pruned model loads a pruned state dict
    assert torch.equal(fresh.weight_mask, layer.weight_mask)
    prune.remove(layer)
    plain = nn.Linear(8, 4)
    plain.load_state_dict(layer.state_dict())               # after remove(), a plain model loads it
    assert int((plain.weight == 0).sum()) == 16


def test_is_pruned_prunable_layers_and_sparsity(model):
    assert list(prune.prunable_layers(model)) == ["0", "3", "5"]
    assert not prune.is_pruned(model[3])
    mask = prune.prune_layer(model[3], 0.75)
    assert prune.is_pruned(model[3]) and float(mask.mean()) == 0.25 and torch.equal(mask, model[3].weight_mask)
    s = prune.sparsity(model)
    assert s["layers"]["3"] == 0.75 and s["layers"]["0"] == 0.0
    assert s["total"] == 36 + 4608 + 320 and s["zeros"] == 3456
    assert s["global"] == pytest.approx(3456 / s["total"])
    prune.remove_all(model)
    assert not any(prune.is_pruned(m) for m in model.modules())
    assert prune.sparsity(model)["zeros"] == 3456


def test_reapply_masks_zeroes_orig():
    layer = nn.Linear(5, 5)
    mask = random_mask((5, 5), 6)
    prune.apply_mask(layer, mask=mask)
    with torch.no_grad():
        layer.weight_orig.fill_(2.0)
    prune.reapply_masks(layer)
    assert torch.equal(layer.weight_orig.detach(), 2.0 * mask)


def test_bad_inputs():
    layer = nn.Linear(4, 3)
    with pytest.raises(TypeError, match="module must be a torch.nn.Module"):
        prune.apply_mask("fc1", mask=torch.ones(3, 4))
    with pytest.raises(TypeError, match="mask must be a torch.Tensor"):
        prune.apply_mask(layer, mask=[[1, 0]])
    with pytest.raises(ValueError, match=r"mask must have the weight's shape \(3, 4\)"):
        prune.apply_mask(layer, mask=torch.ones(4, 3))
    with pytest.raises(ValueError, match="only 0 and 1"):
        prune.apply_mask(layer, mask=torch.full((3, 4), 0.5))
    with pytest.raises(ValueError, match="name must be a parameter"):
        prune.apply_mask(layer, "kernel", mask=torch.ones(3, 4))
    with pytest.raises(ValueError, match="no pruned parameter 'weight'"):
        prune.remove(layer, "weight")
    with pytest.raises(TypeError, match="model must be a torch.nn.Module, got int"):   # the argument's own name
        prune.prunable_layers(42)
    with pytest.raises(ValueError, match="no nn.Linear or nn.Conv2d"):
        prune.sparsity(nn.Sequential(nn.ReLU()))
    assert masks.PRUNABLE_TYPES == (nn.Linear, nn.Conv2d)


def test_a_pruned_model_can_be_deep_copied(model):
    prune.global_magnitude_prune(model, 0.5)
    twin = copy.deepcopy(model)
    x = torch.randn(2, 1, 8, 8)
    assert torch.equal(twin(x), model(x))
    assert prune.sparsity(twin)["zeros"] == prune.sparsity(model)["zeros"]
