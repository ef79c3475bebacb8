"""The lab's model zoo, written from scratch: six small image classifiers.

- ``LeNet300100`` — the fully connected LeNet-300-100 that Han et al., "Learning both Weights and
  Connections for Efficient Neural Networks" (NeurIPS 2015) prune (1.64 % MNIST error).
- ``LeNet5`` — LeCun et al., "Gradient-Based Learning Applied to Document Recognition" (1998),
  the classic ~61 k-parameter conv net (0.80 % MNIST error in Han et al. 2015).
- ``LeNet5Caffe`` — Caffe's 431 k-parameter LeNet-5 (conv 20, conv 50, fc 500, fc 10), the one
  Han et al. 2015 and Deep Compression (Han et al., ICLR 2016) actually prune.
- ``SmallVGG`` — a narrow VGG (Simonyan & Zisserman, "Very Deep Convolutional Networks for
  Large-Scale Image Recognition", 2015): stacks of conv3×3-BN-ReLU with max-pooling.
- ``SmallResNet`` — a ResNet-8 (He et al., "Deep Residual Learning for Image Recognition", 2016)
  with identity and 1×1-projection shortcuts; the shortcut is what structured pruning must respect.
- ``MobileNetSmall`` — depthwise-separable convolutions (Howard et al., "MobileNets: Efficient
  Convolutional Neural Networks for Mobile Vision Applications", 2017).

Every model takes ``x`` float32 ``[N, C, H, W]`` (C = 1 or 3, H = W = 28 or 32) and returns logits
``[N, num_classes]``. Activations are ``nn.ReLU`` modules and the LeNets and the VGG are
``nn.Sequential`` subclasses with named children, so converters (quantizers, pruners, the
integer-only path) can walk them in order. Build them by name with ``build``.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from labkit.validate import require_choice, require_int

MODEL_NAMES = ("lenet300", "lenet5", "vgg", "resnet", "mobilenet", "lenet5-caffe")
IN_CHANNELS = (1, 3)
IMAGE_SIZES = (28, 32)


def _check_config(in_channels, num_classes, image_size) -> tuple[int, int, int]:
    """The three sizes as plain ints. ``require_int`` comes first because ``True in (1, 3)`` and
    ``1.0 in (1, 3)`` are both true in Python, and a float size fails only deep inside torch."""
    in_channels = require_choice("in_channels", require_int("in_channels", in_channels), IN_CHANNELS)
    num_classes = require_int("num_classes", num_classes, 2, 1000)
    image_size = require_choice("image_size", require_int("image_size", image_size), IMAGE_SIZES)
    return in_channels, num_classes, image_size


class _Config:
    """Mixin that records how a model was built, so ``zoo.save_checkpoint`` can rebuild it."""

    arch = ""

    def _remember(self, in_channels: int, num_classes: int, image_size: int) -> None:
        self.in_channels, self.num_classes, self.image_size = in_channels, num_classes, image_size

    def config(self) -> dict:
        """The arguments of ``build`` that recreate this architecture."""
        return {"model": self.arch, "in_channels": self.in_channels,
                "num_classes": self.num_classes, "image_size": self.image_size}


class _NamedSequential(nn.Sequential):
    """An ``nn.Sequential`` with named children whose slices are plain ``nn.Sequential``s.

    ``nn.Sequential`` slices by calling ``type(self)(OrderedDict)``, which a subclass with its own
    constructor cannot accept; ``model[:7]`` (the feature extractor) returns a plain one instead.
    """

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return nn.Sequential(OrderedDict(list(self._modules.items())[idx]))
        return super().__getitem__(idx)


class LeNet300100(_Config, _NamedSequential):
    """LeNet-300-100: flatten → fc1 (300) → ReLU → fc2 (100) → ReLU → fc3 (classes).

    Input ``[N, C, S, S]`` float32, output logits ``[N, num_classes]``; ``y = W3·relu(W2·relu(W1·x))``
    with biases. 266 610 parameters on 1×28×28 (Han et al. 2015's pruning baseline).
    Explained in notebooks/00_why_compress.ipynb.
    """

    arch = "lenet300"

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 28):
        in_channels, num_classes, image_size = _check_config(in_channels, num_classes, image_size)
        features = in_channels * image_size * image_size
        super().__init__(OrderedDict([
            ("flatten", nn.Flatten()),
            ("fc1", nn.Linear(features, 300)), ("relu1", nn.ReLU()),
            ("fc2", nn.Linear(300, 100)), ("relu2", nn.ReLU()),
            ("fc3", nn.Linear(100, num_classes)),
        ]))
        self._remember(in_channels, num_classes, image_size)


class LeNet5(_Config, _NamedSequential):
    """LeNet-5: two conv5×5-ReLU-maxpool stages, then fc120-ReLU, fc84-ReLU, fc(classes).

    Input ``[N, C, S, S]`` float32, output logits ``[N, num_classes]``. A 28×28 input is padded by 2
    so that the feature maps are 28→14→10→5 exactly as in the 32×32 original; the flattened
    feature is 16·5·5 = 400. 61 706 parameters on 1×28×28.
    Explained in notebooks/00_why_compress.ipynb.
    """

    arch = "lenet5"

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 28):
        in_channels, num_classes, image_size = _check_config(in_channels, num_classes, image_size)
        pad = (32 - image_size) // 2  # 2 for 28×28, 0 for 32×32: both reach 16×5×5
        super().__init__(OrderedDict([
            ("conv1", nn.Conv2d(in_channels, 6, 5, padding=pad)), ("relu1", nn.ReLU()),
            ("pool1", nn.MaxPool2d(2)),
            ("conv2", nn.Conv2d(6, 16, 5)), ("relu2", nn.ReLU()), ("pool2", nn.MaxPool2d(2)),
            ("flatten", nn.Flatten()),
            ("fc1", nn.Linear(16 * 5 * 5, 120)), ("relu3", nn.ReLU()),
            ("fc2", nn.Linear(120, 84)), ("relu4", nn.ReLU()),
            ("fc3", nn.Linear(84, num_classes)),
        ]))
        self._remember(in_channels, num_classes, image_size)


class LeNet5Caffe(_Config, _NamedSequential):
    """Caffe's LeNet-5 ("lenet" in Caffe's MNIST example), the network Han et al. 2015 prune:
    conv5×5(20) → maxpool → conv5×5(50) → maxpool → fc1 (500) → ReLU → fc2 (classes).

    As in Caffe, the convolutions are not followed by a ReLU (only fc1 is). Input ``[N, C, S, S]``
    float32, output logits ``[N, num_classes]``; on 1×28×28 the maps are 28→24→12→8→4, so fc1 sees
    50·4·4 = 800 features. 431 080 parameters on 1×28×28, seven times LeCun's ``LeNet5``; Han et al.
    report 0.80 % MNIST error for it. Explained in notebooks/10_pruning_schedules_automation.ipynb.
    """

    arch = "lenet5-caffe"

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 28):
        in_channels, num_classes, image_size = _check_config(in_channels, num_classes, image_size)
        side = ((image_size - 4) // 2 - 4) // 2  # 4 for 28×28, 5 for 32×32
        super().__init__(OrderedDict([
            ("conv1", nn.Conv2d(in_channels, 20, 5)), ("pool1", nn.MaxPool2d(2)),
            ("conv2", nn.Conv2d(20, 50, 5)), ("pool2", nn.MaxPool2d(2)),
            ("flatten", nn.Flatten()),
            ("fc1", nn.Linear(50 * side * side, 500)), ("relu1", nn.ReLU()),
            ("fc2", nn.Linear(500, num_classes)),
        ]))
        self._remember(in_channels, num_classes, image_size)


class SmallVGG(_Config, _NamedSequential):
    """A narrow VGG: three blocks of 2 × (conv3×3-BN-ReLU) + maxpool, then fc1 (64)-ReLU-fc2.

    Channel widths 16, 32, 64; children are named conv1, bn1, relu1, ..., pool1..pool3, flatten,
    fc1, relu7, fc2. Input ``[N, C, S, S]`` float32, output ``[N, num_classes]``; the spatial size
    after three pools is ``S // 8`` (3 for 28, 4 for 32). ≈ 109 k parameters on 1×28×28.
    Explained in notebooks/09_structured_pruning.ipynb.
    """

    arch = "vgg"
    widths = (16, 16, 32, 32, 64, 64)

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 28):
        in_channels, num_classes, image_size = _check_config(in_channels, num_classes, image_size)
        layers, channels = [], in_channels
        for i, width in enumerate(self.widths, start=1):
            layers += [(f"conv{i}", nn.Conv2d(channels, width, 3, padding=1, bias=False)),
                       (f"bn{i}", nn.BatchNorm2d(width)), (f"relu{i}", nn.ReLU())]
            if i % 2 == 0:
                layers.append((f"pool{i // 2}", nn.MaxPool2d(2)))
            channels = width
        side = image_size // 8
        last = len(self.widths) + 1
        layers += [("flatten", nn.Flatten()),
                   ("fc1", nn.Linear(channels * side * side, 64)), (f"relu{last}", nn.ReLU()),
                   ("fc2", nn.Linear(64, num_classes))]
        super().__init__(OrderedDict(layers))
        self._remember(in_channels, num_classes, image_size)


class BasicBlock(nn.Module):
    """ResNet basic block: ``relu2(bn2(conv2(relu1(bn1(conv1(x))))) + shortcut(x))``.

    ``x`` float32 ``[N, c_in, H, W]`` → ``[N, c_out, H/stride, W/stride]``. The shortcut is the
    identity when shapes match, else a 1×1 convolution (with ``stride``) + BN — the "projection"
    shortcut of He et al. 2016. Because the two branches are added, a pruner must remove the same
    output channels from ``conv2`` and from the shortcut.
    Explained in notebooks/09_structured_pruning.ipynb.
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        if stride == 1 and c_in == c_out:
            self.shortcut = nn.Identity()
        else:
            self.shortcut = nn.Sequential(OrderedDict([
                ("conv", nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)),
                ("bn", nn.BatchNorm2d(c_out))]))
        self.relu2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + self.shortcut(x))


class SmallResNet(_Config, nn.Module):
    """ResNet-8: stem conv3×3(16)-BN-ReLU, three stages of one BasicBlock (16, 32, 64 channels;
    strides 1, 2, 2 — the last two with 1×1 projection shortcuts), global average pool, fc.

    Input ``[N, C, S, S]`` float32, output logits ``[N, num_classes]``; global pooling makes the
    classifier independent of S. ≈ 78 k parameters on 1×28×28.
    Explained in notebooks/09_structured_pruning.ipynb.
    """

    arch = "resnet"
    widths = (16, 32, 64)

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 28):
        in_channels, num_classes, image_size = _check_config(in_channels, num_classes, image_size)
        super().__init__()
        w = self.widths
        self.stem = nn.Sequential(OrderedDict([
            ("conv", nn.Conv2d(in_channels, w[0], 3, padding=1, bias=False)),
            ("bn", nn.BatchNorm2d(w[0])), ("relu", nn.ReLU())]))
        self.layer1 = BasicBlock(w[0], w[0], stride=1)
        self.layer2 = BasicBlock(w[0], w[1], stride=2)
        self.layer3 = BasicBlock(w[1], w[2], stride=2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(w[2], num_classes)
        self._remember(in_channels, num_classes, image_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer3(self.layer2(self.layer1(self.stem(x))))
        return self.fc(self.flatten(self.pool(x)))


class DepthwiseSeparable(_NamedSequential):
    """Depthwise 3×3 conv (``groups=c_in``)-BN-ReLU, then pointwise 1×1 conv-BN-ReLU.

    ``[N, c_in, H, W]`` → ``[N, c_out, H/stride, W/stride]``. Costs ``9·c_in + c_in·c_out`` weights
    instead of ``9·c_in·c_out`` for a full 3×3 convolution (Howard et al. 2017).
    Explained in notebooks/13_lowrank_lightweight.ipynb.
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__(OrderedDict([
            ("depthwise", nn.Conv2d(c_in, c_in, 3, stride=stride, padding=1, groups=c_in, bias=False)),
            ("bn1", nn.BatchNorm2d(c_in)), ("relu1", nn.ReLU()),
            ("pointwise", nn.Conv2d(c_in, c_out, 1, bias=False)),
            ("bn2", nn.BatchNorm2d(c_out)), ("relu2", nn.ReLU()),
        ]))


class MobileNetSmall(_Config, _NamedSequential):
    """A small MobileNet: stem conv3×3(16)-BN-ReLU, six depthwise-separable blocks
    (32/2, 64, 64/2, 128, 128/2, 256 — width/stride: each stride-2 block halves the map,
    28→14→7→4), global average pool, fc.

    Input ``[N, C, S, S]`` float32, output logits ``[N, num_classes]``. ≈ 71 k parameters on
    1×28×28, about a seventh of the same stack built from full 3×3 convolutions.
    Explained in notebooks/13_lowrank_lightweight.ipynb.
    """

    arch = "mobilenet"
    blocks = ((32, 2), (64, 1), (64, 2), (128, 1), (128, 2), (256, 1))

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 28):
        in_channels, num_classes, image_size = _check_config(in_channels, num_classes, image_size)
        layers = [("stem", nn.Sequential(OrderedDict([
            ("conv", nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)),
            ("bn", nn.BatchNorm2d(16)), ("relu", nn.ReLU())])))]
        channels = 16
        for i, (width, stride) in enumerate(self.blocks, start=1):
            layers.append((f"block{i}", DepthwiseSeparable(channels, width, stride)))
            channels = width
        layers += [("pool", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten()),
                   ("fc", nn.Linear(channels, num_classes))]
        super().__init__(OrderedDict(layers))
        self._remember(in_channels, num_classes, image_size)


_CLASSES = {cls.arch: cls for cls in (LeNet300100, LeNet5, SmallVGG, SmallResNet, MobileNetSmall, LeNet5Caffe)}


def build(name: str, in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> nn.Module:
    """Build an untrained model by name (one of ``MODEL_NAMES``) for ``[N, in_channels, S, S]``
    inputs (``in_channels`` 1 or 3, ``S = image_size`` 28 or 32) and ``num_classes`` logits.

    Weights use PyTorch's default initialisation, so call ``train.set_seed`` first for repeatable
    numbers. Raises ``ValueError`` naming the argument for an unknown name or unsupported shape.
    Explained in notebooks/00_why_compress.ipynb.
    """
    require_choice("name", name, MODEL_NAMES)
    return _CLASSES[name](in_channels=in_channels, num_classes=num_classes, image_size=image_size)
