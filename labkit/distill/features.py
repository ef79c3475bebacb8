"""Reading a network's intermediate activations, and bridging a narrow student to a wide teacher.

- ``FeatureTap(model, layer_names)``  forward hooks that record the outputs of named sub-modules
  (``model.named_modules()`` names, e.g. ``"pool1"`` or ``"layer2.0"``) on every forward pass, in
  ``tap.features``; ``tap.remove()`` (or leaving the ``with`` block) removes every hook it added.
- ``Regressor(in_channels, out_channels)``  FitNets' regressor: a 1×1 convolution for feature maps
  ``[N, C, H, W]`` (a linear layer for vectors ``[N, D]``) that maps the student's width to the
  teacher's, so that a hint loss can compare them. It is trained with the student, then thrown away.
- ``layer_features(model, data, layer_names)``  every named activation for a whole dataset, computed
  once (eval mode, no_grad, mode restored): a teacher's features are cached like its logits.

Explained in notebooks/12_distillation_features.ipynb.
"""
from __future__ import annotations

import torch
from torch import nn

from labkit import train
from labkit.validate import require_choice, require_int, require_module


class FeatureTap:
    """Record the outputs of ``layer_names`` (sub-modules of ``model``) on every forward pass.

    ``features[name]`` is the latest output tensor of that layer (with its graph, so a loss on it
    back-propagates into the model). Use as a context manager or call ``remove()``; afterwards the
    model carries no hook of ours. ``layer_names`` is a non-empty list of names from
    ``model.named_modules()``; an unknown name raises ``ValueError`` listing the valid ones.
    Explained in notebooks/12_distillation_features.ipynb.
    """

    def __init__(self, model: nn.Module, layer_names):
        require_module("model", model)
        if isinstance(layer_names, str):
            layer_names = [layer_names]
        if not isinstance(layer_names, (list, tuple)) or not layer_names:
            raise TypeError(f"layer_names must be a non-empty list of layer names, got {layer_names!r}")
        modules = dict(model.named_modules())
        modules.pop("", None)
        for name in layer_names:
            if name not in modules:
                raise ValueError(f"layer_names: {name!r} is not a layer of this model; choose from "
                                 f"{', '.join(modules)}")
        self.layer_names = list(dict.fromkeys(layer_names))
        self.features: dict[str, torch.Tensor] = {}
        self._handles = [modules[name].register_forward_hook(self._recorder(name)) for name in self.layer_names]

    def _recorder(self, name: str):
        def hook(module, inputs, output):
            self.features[name] = output
        return hook

    def remove(self) -> None:
        """Remove every hook this tap added (idempotent) and forget the recorded features."""
        for handle in self._handles:
            handle.remove()
        self._handles, self.features = [], {}

    def __enter__(self) -> "FeatureTap":
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


class Regressor(nn.Module):
    """FitNets' regressor ``r``: a 1×1 conv (``kind="conv"``, for ``[N, C, H, W]``) or a linear layer
    (``kind="linear"``, for ``[N, D]``) from ``in_channels`` (student) to ``out_channels`` (teacher).

    Without bias, so that it is a pure change of basis per position. Explained in
    notebooks/12_distillation_features.ipynb.
    """

    def __init__(self, in_channels: int, out_channels: int, kind: str = "conv"):
        super().__init__()
        in_channels = require_int("in_channels", in_channels, 1, 65536)
        out_channels = require_int("out_channels", out_channels, 1, 65536)
        self.kind = require_choice("kind", kind, ("conv", "linear"))
        self.map = (nn.Conv2d(in_channels, out_channels, 1, bias=False) if kind == "conv"
                    else nn.Linear(in_channels, out_channels, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.map(x)


def regressor_for(student_features: torch.Tensor, teacher_features: torch.Tensor) -> Regressor | None:
    """A ``Regressor`` from the student's width to the teacher's, or None when they already match.

    Both tensors ``[N, C, H, W]`` (a 1×1 conv) or ``[N, D]`` (a linear layer); only ``shape[1]`` is read.
    Explained in notebooks/12_distillation_features.ipynb.
    """
    for name, x in (("student_features", student_features), ("teacher_features", teacher_features)):
        if not isinstance(x, torch.Tensor) or x.dim() not in (2, 4):
            raise ValueError(f"{name} must be a tensor [N, C, H, W] or [N, D], got "
                             f"{getattr(x, 'shape', type(x).__name__)}")
    if student_features.dim() != teacher_features.dim():
        raise ValueError(f"student_features and teacher_features must both be maps or both vectors, got "
                         f"{tuple(student_features.shape)} and {tuple(teacher_features.shape)}")
    if student_features.shape[1] == teacher_features.shape[1]:
        return None
    kind = "conv" if student_features.dim() == 4 else "linear"
    return Regressor(student_features.shape[1], teacher_features.shape[1], kind)


def layer_features(model: nn.Module, data, layer_names, batch_size: int = 512) -> dict[str, torch.Tensor]:
    """``{name: float32 [N, ...]}``: the activations of ``layer_names`` for every sample of ``data``,
    plus ``"logits"``. Runs once under ``torch.no_grad()`` in ``eval()`` mode; the mode is restored.
    Explained in notebooks/12_distillation_features.ipynb.
    """
    require_int("batch_size", batch_size, 1, None)
    dataset = train.as_dataset(data)
    loader = train.batch_loader(dataset, batch_size, None)
    was_training = model.training
    model.eval()
    out: dict[str, list] = {}
    try:
        with FeatureTap(model, layer_names) as tap, torch.no_grad():
            for batch in loader:
                out.setdefault("logits", []).append(model(batch[0]).float())
                for name in tap.layer_names:
                    out.setdefault(name, []).append(tap.features[name].float())
    finally:
        model.train(was_training)
    return {name: torch.cat(chunks) for name, chunks in out.items()}
