"""Small students for distillation: a narrow multi-layer perceptron, built from scratch.

``labkit.models`` has fixed widths (LeNet-300-100 is 266 k parameters); a distillation student
should be much smaller than its teacher, so ``MLPStudent`` takes the hidden widths as an argument:
``MLPStudent(hidden=(32,))`` is flatten → fc1 (32) → ReLU → fc2 (classes), 25 k parameters on
1×28×28. Explained in notebooks/11_distillation_soft_labels.ipynb.
"""
from __future__ import annotations

from collections import OrderedDict

from torch import nn

from labkit import architecture
from labkit.models import IMAGE_SIZES, IN_CHANNELS
from labkit.validate import require_choice, require_int


class MLPStudent(nn.Sequential):
    """flatten → [fc_k → ReLU] for each width in ``hidden`` → fc (classes); named children.

    Input float32 ``[N, C, S, S]``, output logits ``[N, num_classes]``. ``hidden`` is an int or a
    sequence of ints in [1, 4096] (an empty sequence gives logistic regression). ``config()``
    records the input size so that ``measure.report`` needs no ``input_shape``.
    Explained in notebooks/11_distillation_soft_labels.ipynb.
    """

    arch = "mlp-student"

    def __init__(self, hidden=(32,), in_channels: int = 1, num_classes: int = 10, image_size: int = 28):
        widths = (hidden,) if isinstance(hidden, int) and not isinstance(hidden, bool) else hidden
        if not isinstance(widths, (tuple, list)):
            raise TypeError(f"hidden must be an int or a tuple of ints in [1, 4096], got {type(hidden).__name__}")
        widths = tuple(require_int("hidden", w, 1, 4096) for w in widths)
        in_channels = require_choice("in_channels", require_int("in_channels", in_channels), IN_CHANNELS)
        num_classes = require_int("num_classes", num_classes, 2, 1000)
        image_size = require_choice("image_size", require_int("image_size", image_size), IMAGE_SIZES)
        layers, features = [("flatten", nn.Flatten())], in_channels * image_size * image_size
        for k, width in enumerate(widths, start=1):
            layers += [(f"fc{k}", nn.Linear(features, width)), (f"relu{k}", nn.ReLU())]
            features = width
        layers.append((f"fc{len(widths) + 1}", nn.Linear(features, num_classes)))
        super().__init__(OrderedDict(layers))
        self.hidden, self.in_channels, self.num_classes, self.image_size = widths, in_channels, num_classes, image_size

    def config(self) -> dict:
        """The arguments that rebuild this student (and the input size ``measure.report`` reads)."""
        return {"model": self.arch, "hidden": list(self.hidden), "in_channels": self.in_channels,
                "num_classes": self.num_classes, "image_size": self.image_size}


def _build_student(args, children) -> MLPStudent:
    return architecture.with_children(MLPStudent(**args), children)


architecture.register_module(MLPStudent, lambda m: {k: v for k, v in m.config().items() if k != "model"},
                             _build_student)  # saveable with labkit.zoo.save_checkpoint
