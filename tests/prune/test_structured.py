"""Structured pruning: channel criteria by hand, surgery that is exact on zeroed channels, counts, errors."""
import copy

import pytest
import torch
from torch import nn

from labkit import measure, models, prune
from labkit.prune import structured, surgery
from labkit.train import set_seed


def trained_like(name: str) -> nn.Module:
    """A model with non-trivial BatchNorm statistics (random γ, β, μ, σ²), in eval mode."""
    set_seed(0)
    model = models.build(name)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5), m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.1, 0.1), m.running_var.uniform_(0.5, 2.0)
    return model.eval()


@pytest.mark.parametrize("name", ["lenet5", "vgg", "resnet"])
@pytest.mark.parametrize("criterion", ["l1", "random"])
def test_surgery_is_exact_when_removed_channels_are_zero(name, criterion):
    model = trained_like(name)
    scores = prune.channel_scores(model, criterion)
    keep = {n: prune.keep_indices(s, 0.5) for n, s in scores.items()}
    zeroed = prune.zero_channels(copy.deepcopy(model), keep)
    small = prune.prune_channels(zeroed, keep)
    x = torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.allclose(small(x), zeroed(x), atol=1e-5)
        assert not torch.allclose(small(x), model(x), atol=1e-3)   # the zeroing did change the model
    assert measure.count_parameters(small) < measure.count_parameters(model)
    assert measure.total_macs(small, (1, 28, 28)) < measure.total_macs(model, (1, 28, 28))
    assert measure.size_on_disk(small, "fp32") < measure.size_on_disk(model, "fp32")
    assert type(small) is type(model)


def test_surgery_keeps_the_original_untouched():
    model = trained_like("vgg")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    small, keep = prune.structured_prune(model, 0.5)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert small.conv1.weight.shape == (8, 1, 3, 3) and small.conv2.weight.shape == (8, 8, 3, 3)
    assert torch.equal(small.conv1.weight, model.conv1.weight[keep["conv1"]])
    assert torch.equal(small.bn1.running_var, model.bn1.running_var[keep["conv1"]])
    assert small.fc1.weight.shape == (64, 32 * 9)                    # 32 of 64 channels × 3·3 positions


def test_lenet5_counts_match_hand_formulas():
    """conv2 keeps 8 of 16 filters: conv2 8·6·25 + 8, fc1 reads 8·5·5 = 200 inputs."""
    model = models.build("lenet5")
    small = prune.prune_channels(model, {"conv2": list(range(8))})
    expected = 6 * 1 * 25 + 6 + 8 * 6 * 25 + 8 + 120 * 200 + 120 + 84 * 120 + 84 + 10 * 84 + 10
    assert measure.count_parameters(small) == expected
    macs = 28 * 28 * 6 * 25 + 10 * 10 * 8 * 6 * 25 + 200 * 120 + 120 * 84 + 84 * 10
    assert measure.total_macs(small, (1, 28, 28)) == macs
    x = torch.rand(2, 1, 28, 28)
    zeroed = prune.zero_channels(copy.deepcopy(model), {"conv2": list(range(8))})
    assert torch.allclose(prune.prune_channels(zeroed, {"conv2": range(8)})(x), zeroed(x), atol=1e-5)


def test_resnet_prunes_only_the_inner_width():
    model = trained_like("resnet")
    assert list(prune.channel_groups(model)) == ["layer1.conv1", "layer2.conv1", "layer3.conv1"]
    small, _ = prune.structured_prune(model, 0.75)
    assert small.layer3.conv1.weight.shape == (16, 32, 3, 3) and small.layer3.conv2.weight.shape == (64, 16, 3, 3)
    assert small.layer3.bn1.num_features == 16 and small.layer3.bn2.num_features == 64
    assert small.fc.weight.shape == (10, 64)


def test_linear_hidden_neurons_with_flag():
    model = models.build("lenet5")
    groups = prune.channel_groups(model, linear=True)
    assert list(groups) == ["conv1", "conv2", "fc1", "fc2"] and groups["conv2"].positions == 25
    small = prune.prune_channels(model, {"fc1": range(60)})
    assert small.fc1.weight.shape == (60, 400) and small.fc2.weight.shape == (84, 60)
    mlp = models.build("lenet300")
    with pytest.raises(ValueError, match="unsupported model type"):
        prune.structured_prune(mlp, 0.5, "l2")                       # no conv: nothing without linear=True
    small, keep = prune.structured_prune(mlp, 0.5, "l2", linear=True)
    assert small.fc1.weight.shape == (150, 784) and small.fc2.weight.shape == (50, 150)
    rows = mlp.fc1.weight.detach().norm(dim=1)
    assert rows[keep["fc1"]].min() >= rows.sort().values[149]          # the 150 largest row norms stay
    with pytest.raises(TypeError, match="linear must be True or False"):
        prune.channel_scores(mlp, "l2", linear="yes")



def with_shifts(name: str) -> nn.Module:
    """``trained_like`` with clearly positive BN shifts β and conv biases, so relu(β) ≠ 0 matters."""
    model = trained_like(name)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.bias.uniform_(0.1, 0.6)
            elif isinstance(m, nn.Conv2d) and m.bias is not None:
                m.bias.uniform_(0.1, 0.5)
    return model


def group_output(model: nn.Module, group, x: torch.Tensor) -> torch.Tensor:
    """What the group's consumer hands on: the output of its BatchNorm if one follows, else its own."""
    seen = []
    module = model.get_submodule(group.consumer_norm or group.consumer)
    handle = module.register_forward_hook(lambda m, i, out: seen.append(out.detach()))
    with torch.no_grad():
        model(x)
    handle.remove()
    return seen[0]


@pytest.mark.parametrize("name", ["lenet5", "vgg", "resnet"])
def test_fold_absorbs_the_constant_of_gamma_zero_channels(name):
    """β ≠ 0, γ = 0 (or a zero filter with a bias): the removed channel outputs relu(β); folding it
    into the next layer is exact for Linear / unpadded consumers and on the interior of padded ones,
    and removing it without the fold is not."""
    model = with_shifts(name)
    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(2))
    groups = prune.channel_groups(model)
    for group_name, scores in prune.channel_scores(model, "l1").items():
        group, keep = groups[group_name], {group_name: prune.keep_indices(scores, 0.5)}
        shifted = prune.zero_channels(copy.deepcopy(model), keep, keep_shift=True)
        constants = surgery.removed_constants(shifted, group, keep[group_name])
        assert constants.numel() == group.channels // 2 and (constants > 0.05).all()
        reference = group_output(shifted, group, x)
        folded = group_output(prune.prune_channels(shifted, keep, fold=True), group, x)
        cut = group_output(prune.prune_channels(shifted, keep), group, x)
        consumer = model.get_submodule(group.consumer)
        padded = isinstance(consumer, nn.Conv2d) and consumer.padding != (0, 0)
        inner = (..., slice(1, -1), slice(1, -1)) if padded else (...,)
        torch.testing.assert_close(folded[inner], reference[inner], rtol=1e-5, atol=1e-5)
        assert (cut[inner] - reference[inner]).abs().max() > 1e-2, group_name
        if padded:   # the border ring sees the zero padding instead of relu(β): not exact there
            assert (folded - reference).abs().max() > 1e-4, group_name
        else:        # the whole network is the same function
            with torch.no_grad():
                torch.testing.assert_close(prune.prune_channels(shifted, keep, fold=True)(x), shifted(x),
                                           rtol=1e-5, atol=1e-5)


def test_fold_by_hand_on_a_linear_chain():
    """fc1 (2 neurons, β-free, biases 0.5 and −1) → ReLU → fc2: removing neuron 0 adds relu(0.5)·W2[:, 0]."""
    model = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 2))
    with torch.no_grad():
        model[0].bias.copy_(torch.tensor([0.5, -1.0]))
        model[2].weight.copy_(torch.tensor([[1.0, 2.0], [-3.0, 4.0]]))
        model[2].bias.copy_(torch.tensor([0.25, 0.0]))
    small = prune.prune_channels(model, {"0": [1]}, fold=True)
    assert small[2].bias.tolist() == pytest.approx([0.25 + 0.5 * 1.0, 0.0 + 0.5 * -3.0])
    small = prune.prune_channels(model, {"0": [0]}, fold=True)            # relu(−1) = 0: nothing to fold
    assert small[2].bias.tolist() == pytest.approx([0.25, 0.0])
    assert prune.prune_channels(model, {"0": [1]})[2].bias.tolist() == pytest.approx([0.25, 0.0])
    assert prune.prune_channels(model, {"0": [0, 1]}, fold=True)[2].bias.tolist() == pytest.approx([0.25, 0.0])
    with pytest.raises(TypeError, match="fold must be True or False"):
        prune.prune_channels(model, {"0": [1]}, fold=1)


def test_fold_goes_into_the_running_mean_of_a_bias_free_consumer():
    model = with_shifts("vgg")
    keep = {"conv2": prune.keep_indices(prune.channel_scores(model, "l1")["conv2"], 0.5)}
    small = prune.prune_channels(model, keep, fold=True)
    assert small.conv3.bias is None and measure.count_parameters(small) == \
        measure.count_parameters(prune.prune_channels(model, keep))
    assert not torch.equal(small.bn3.running_mean, model.bn3.running_mean)
    assert torch.equal(small.bn3.running_var, model.bn3.running_var)

def test_filter_norms_by_hand():
    w = torch.tensor([[[[1.0, -2.0], [0.0, 2.0]]], [[[3.0, 0.0], [-4.0, 0.0]]]])   # [2, 1, 2, 2]
    assert prune.filter_norms(w, 1).tolist() == [5.0, 7.0]
    assert prune.filter_norms(w, 2).tolist() == [3.0, 5.0]
    assert torch.allclose(prune.filter_norms(w, 2).float(), prune.group_norms(w))


def test_bn_scores_and_l1_penalty_value_and_gradient():
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Conv2d(3, 2, 3), nn.BatchNorm2d(2))
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([0.5, -2.0, 0.0]))
        model[4].weight.copy_(torch.tensor([1.0, -0.25]))
    assert prune.bn_scale_scores(model[1]).tolist() == [0.5, 2.0, 0.0]
    penalty = prune.bn_l1_regularizer(0.1)(model)
    assert penalty.item() == pytest.approx(0.1 * 3.75)
    penalty.backward()
    assert model[1].weight.grad.tolist() == pytest.approx([0.1, -0.1, 0.0])
    assert model[4].weight.grad.tolist() == pytest.approx([0.1, -0.1])
    assert model[0].weight.grad is None                                # only γ is regularised



def test_bn_l1_proximal_soft_thresholds_gamma_only():
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Conv2d(3, 2, 3), nn.BatchNorm2d(2))
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([0.5, -0.05, 0.1]))
        model[4].weight.copy_(torch.tensor([-1.0, 0.08]))
    conv = model[0].weight.detach().clone()
    structured.bn_l1_proximal(0.1)(model)
    assert model[1].weight.tolist() == pytest.approx([0.4, 0.0, 0.0])      # |γ| ≤ t lands exactly on 0
    assert model[4].weight.tolist() == pytest.approx([-0.9, 0.0])
    assert torch.equal(model[0].weight, conv)                              # only γ is touched
    with pytest.raises(ValueError, match="threshold"):
        structured.bn_l1_proximal(-0.1)
    with pytest.raises(ValueError, match="no affine BatchNorm"):
        structured.bn_l1_proximal(0.1)(models.build("lenet5"))

def test_correlation_picks_a_duplicated_filter():
    torch.manual_seed(0)
    w = torch.randn(5, 3, 3, 3)
    w[3] = 0.5 * w[1]                                       # filter 3 duplicates filter 1, at half the norm
    scores = prune.correlation_scores(w)
    assert int(torch.argmin(scores)) == 3
    assert sorted(scores.tolist()) == [0, 1, 2, 3, 4]
    assert prune.keep_indices(scores, 0.2).tolist() == [0, 1, 2, 4]


def test_geometric_median_scores_by_hand():
    w = torch.tensor([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0]])
    assert prune.geometric_median_scores(w).tolist() == [4.0, 3.0, 5.0]   # the middle one is most replaceable


def test_keep_indices_rounding_and_ties():
    s = torch.tensor([3.0, 1.0, 1.0, 2.0])
    assert prune.keep_indices(s, 0.5).tolist() == [0, 3]
    assert prune.keep_indices(s, 0.25).tolist() == [0, 2, 3]      # tie: the lower index goes first
    assert prune.keep_indices(s, 0.0).tolist() == [0, 1, 2, 3]


def test_bad_inputs():
    model = models.build("vgg")
    with pytest.raises(ValueError, match=r"amount must be .*\[0.0, 1.0\)"):
        prune.structured_prune(model, 1.0)
    with pytest.raises(TypeError, match="amount"):
        prune.structured_prune(model, "half")
    with pytest.raises(ValueError, match="keep at least one"):
        prune.keep_indices(torch.ones(2), 0.9)
    with pytest.raises(ValueError, match="criterion must be one of"):
        prune.channel_scores(model, "l3")
    with pytest.raises(ValueError, match="needs a BatchNorm"):
        prune.channel_scores(models.build("lenet5"), "bn")
    with pytest.raises(ValueError, match="at least one channel"):
        prune.prune_channels(model, {"conv1": []})
    with pytest.raises(ValueError, match=r"in \[0, 15\]"):
        prune.prune_channels(model, {"conv1": [0, 16]})
    with pytest.raises(ValueError, match="unknown group 'fc2'"):
        prune.prune_channels(model, {"fc2": [0]})
    with pytest.raises(TypeError, match="integer channel indices"):
        prune.prune_channels(model, {"conv1": [0.5]})
    with pytest.raises(TypeError, match="keep must be a dict"):
        prune.prune_channels(model, [0, 1])
    with pytest.raises(ValueError, match="unsupported model type MobileNetSmall"):
        prune.channel_groups(models.build("mobilenet"))
    with pytest.raises(ValueError, match="unsupported module 'attn'"):
        prune.channel_groups(nn.Sequential(__import__("collections").OrderedDict(
            conv=nn.Conv2d(1, 2, 3), attn=nn.Softmax(1), conv2=nn.Conv2d(2, 2, 3))))
    with pytest.raises(ValueError, match="depthwise"):
        prune.channel_groups(nn.Sequential(nn.Conv2d(2, 2, 3, groups=2), nn.Conv2d(2, 2, 3)))
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        prune.channel_groups("vgg")
    with pytest.raises(ValueError, match="p must be one of"):
        prune.filter_norms(torch.ones(2, 2), 3)
    with pytest.raises(ValueError, match="lam must be"):
        prune.bn_l1_regularizer(2.0)
    with pytest.raises(ValueError, match="no affine BatchNorm"):
        prune.bn_l1_penalty(models.build("lenet5"), 0.1)
    masked = models.build("lenet5")
    prune.global_magnitude_prune(masked, 0.5)
    with pytest.raises(ValueError, match="remove_all"):
        prune.structured_prune(masked, 0.5)
