"""labkit.models: shapes, parameter counts, named children, the residual add, argument errors."""
import numpy as np
import pytest
import torch
from torch import nn

from labkit import models

# (low, high) parameter counts on 1×28×28 with 10 classes.
PARAM_RANGES = {
    "lenet300": (266_610, 266_610),   # 784·300+300 + 300·100+100 + 100·10+10
    "lenet5": (61_706, 61_706),       # the classic LeNet-5 count
    "vgg": (50_000, 150_000),
    "resnet": (50_000, 200_000),
    "mobilenet": (30_000, 100_000),
    "lenet5-caffe": (431_080, 431_080),  # 20·25+20 + 50·20·25+50 + 800·500+500 + 500·10+10 (Han 2015: 431K)
}


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", models.MODEL_NAMES)
@pytest.mark.parametrize("channels, size", [(1, 28), (3, 32)])
def test_every_model_maps_images_to_logits(name, channels, size):
    torch.manual_seed(0)
    model = models.build(name, in_channels=channels, num_classes=7, image_size=size)
    out = model(torch.rand(3, channels, size, size))
    assert out.shape == (3, 7) and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    assert model.config() == {"model": name, "in_channels": channels, "num_classes": 7, "image_size": size}


@pytest.mark.parametrize("name", models.MODEL_NAMES)
def test_parameter_counts_in_expected_range(name):
    low, high = PARAM_RANGES[name]
    assert low <= n_params(models.build(name)) <= high


@pytest.mark.parametrize("name", models.MODEL_NAMES)
def test_activations_are_relu_modules(name):
    model = models.build(name)
    relus = sum(isinstance(m, nn.ReLU) for m in model.modules())
    assert relus >= (1 if name == "lenet5-caffe" else 2)  # Caffe's LeNet has one ReLU, after fc1
    assert not any(isinstance(m, nn.ReLU) and m.inplace for m in model.modules())


CHILDREN = {
    "lenet300": ["flatten", "fc1", "relu1", "fc2", "relu2", "fc3"],
    "lenet5": ["conv1", "relu1", "pool1", "conv2", "relu2", "pool2",
               "flatten", "fc1", "relu3", "fc2", "relu4", "fc3"],
    "vgg": ["conv1", "bn1", "relu1", "conv2", "bn2", "relu2", "pool1"],
}


@pytest.mark.parametrize("name, first", CHILDREN.items())
def test_sequential_models_have_named_children_in_order(name, first):
    model = models.build(name)
    assert isinstance(model, nn.Sequential)
    assert [n for n, _ in model.named_children()][:len(first)] == first


def test_lenet5_feature_map_is_16x5x5_for_both_input_sizes():
    for channels, size in [(1, 28), (3, 32)]:
        model = models.build("lenet5", in_channels=channels, image_size=size)
        features = model[:7](torch.zeros(1, channels, size, size))  # up to flatten
        assert features.shape == (1, 400)


def _silence_residual_branch(block: models.BasicBlock) -> None:
    with torch.no_grad():
        block.bn2.weight.zero_()
        block.bn2.bias.zero_()


def test_identity_block_adds_its_input():
    torch.manual_seed(0)
    block = models.BasicBlock(8, 8).eval()
    assert isinstance(block.shortcut, nn.Identity)
    x = torch.randn(2, 8, 6, 6)
    _silence_residual_branch(block)   # residual branch now outputs exactly 0
    assert torch.equal(block(x), torch.relu(x))


def test_projection_block_adds_the_1x1_shortcut():
    torch.manual_seed(0)
    block = models.BasicBlock(4, 8, stride=2).eval()
    conv = block.shortcut.conv
    assert conv.kernel_size == (1, 1) and conv.stride == (2, 2)
    x = torch.randn(2, 4, 8, 8)
    branch = block.bn2(block.conv2(block.relu1(block.bn1(block.conv1(x)))))
    assert torch.allclose(block(x), torch.relu(branch + block.shortcut(x)))
    _silence_residual_branch(block)
    assert torch.allclose(block(x), torch.relu(block.shortcut(x)))


def test_resnet_has_identity_and_projection_shortcuts():
    model = models.build("resnet")
    assert isinstance(model.layer1.shortcut, nn.Identity)
    assert isinstance(model.layer2.shortcut, nn.Sequential)
    assert isinstance(model.layer3.shortcut, nn.Sequential)


def test_mobilenet_depthwise_convs_have_one_group_per_channel():
    model = models.build("mobilenet")
    blocks = [m for m in model.modules() if isinstance(m, models.DepthwiseSeparable)]
    assert len(blocks) == len(models.MobileNetSmall.blocks)
    for block in blocks:
        assert block.depthwise.groups == block.depthwise.in_channels == block.depthwise.out_channels
        assert block.pointwise.kernel_size == (1, 1)


@pytest.mark.parametrize("kwargs, word", [({"name": "alexnet"}, "name"),
                                          ({"name": "lenet5", "in_channels": 2}, "in_channels"),
                                          ({"name": "vgg", "image_size": 30}, "image_size"),
                                          ({"name": "resnet", "num_classes": 1}, "num_classes")])
def test_bad_arguments_raise_value_error_naming_them(kwargs, word):
    with pytest.raises(ValueError, match=word):
        models.build(**kwargs)


@pytest.mark.parametrize("name", models.MODEL_NAMES)
@pytest.mark.parametrize("kwargs, word", [({"in_channels": True}, "in_channels"),
                                          ({"in_channels": 1.0}, "in_channels"),
                                          ({"image_size": 28.0}, "image_size"),
                                          ({"num_classes": 10.0}, "num_classes")])
def test_bools_and_floats_are_not_sizes(name, kwargs, word):
    # True == 1 and 1.0 == 1 in Python, so a membership test alone would let them through
    with pytest.raises(TypeError, match=f"{word} must be an integer"):
        models.build(name, **kwargs)


def test_numpy_integer_sizes_become_plain_ints():
    model = models.build("lenet5", in_channels=np.int64(3), image_size=np.int64(32))
    assert model.config()["in_channels"] == 3 and type(model.config()["in_channels"]) is int
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 10)


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="lenet300"):
        models.build("lenet")


@pytest.mark.parametrize("name", ["lenet300", "lenet5", "vgg", "mobilenet"])
def test_slicing_a_sequential_model_gives_a_working_prefix(name):
    model = models.build(name).eval()
    x = torch.rand(2, 1, 28, 28)
    head, tail = model[:3], model[3:]
    assert type(head) is torch.nn.Sequential
    assert torch.allclose(tail(head(x)), model(x))
