"""Post-training quantization: batch-norm folding, calibration, static and dynamic quantization.

Static PTQ (Jacob et al., "Quantization and Training of Neural Networks for Efficient
Integer-Arithmetic-Only Inference", CVPR 2018; Krishnamoorthi, "Quantizing deep convolutional
networks for efficient inference: A whitepaper", 2018):

1. fold each BatchNorm into the convolution before it (``fold_batchnorm``);
2. wrap every Conv2d/Linear with observers and run a few calibration batches (``calibrate``);
3. quantize the weights (signed, symmetric, per output channel by default) and freeze the
   activation ranges the observers chose → ``QuantizedConv2d``/``QuantizedLinear`` layers.

Dynamic PTQ (what ``torch.quantization.quantize_dynamic`` does, seed 003) quantizes only the
weights ahead of time and measures each activation batch's range at run time — no calibration
set, best for Linear-heavy models whose cost is reading the weights.

Explained in notebooks/03_post_training_quantization.ipynb
"""
from __future__ import annotations

import copy
from typing import Iterator

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from labkit.quant.affine import broadcast_channels, check_bits
from labkit.quant.modules import (DynamicQuantLinear, ObservedLayer, check_model, replace_modules, swap_layers)
from labkit.quant.observers import OBSERVERS, make_observer
from labkit.validate import require_bool, require_choice, require_int, require_module

__all__ = ["fold_batchnorm", "conv_bn_pairs", "iter_inputs", "calibrate", "quantize_static", "quantize_dynamic"]


# --------------------------------------------------------------------------- batch-norm folding
def conv_bn_pairs(model: nn.Module) -> list[tuple[str, str]]:
    """Names ``(layer, bn)`` of every BatchNorm applied directly to a Conv2d (BatchNorm2d) or a
    Linear (BatchNorm1d) output that nothing else reads. Found by tracing the model with
    ``torch.fx``; if the model cannot be traced, by adjacency inside ``nn.Sequential`` containers."""
    try:
        return _pairs_from_graph(model)
    except Exception:  # untraceable forward (data-dependent control flow, ...)
        return _pairs_from_sequentials(model)


def _foldable(layer: nn.Module, bn: nn.Module) -> bool:
    matching = (isinstance(layer, nn.Conv2d) and type(bn) is nn.BatchNorm2d) or \
               (isinstance(layer, nn.Linear) and type(bn) is nn.BatchNorm1d)
    return matching and bn.track_running_stats and bn.running_mean is not None  # else BN uses batch stats


def _pairs_from_graph(model: nn.Module) -> list[tuple[str, str]]:
    graph = torch.fx.symbolic_trace(model).graph
    modules = dict(model.named_modules())
    calls = [n for n in graph.nodes if n.op == "call_module"]
    uses = {}
    for node in calls:
        uses[node.target] = uses.get(node.target, 0) + 1
    pairs = []
    for node in calls:
        src = node.args[0] if node.args else None
        if not (isinstance(src, torch.fx.Node) and src.op == "call_module" and len(src.users) == 1):
            continue
        if uses[node.target] == 1 and uses[src.target] == 1 and _foldable(modules[src.target], modules[node.target]):
            pairs.append((src.target, node.target))
    return pairs


def _pairs_from_sequentials(model: nn.Module) -> list[tuple[str, str]]:
    pairs = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Sequential):
            children = list(module.named_children())
            for (a, first), (b, second) in zip(children, children[1:]):
                if _foldable(first, second):
                    prefix = f"{name}." if name else ""
                    pairs.append((prefix + a, prefix + b))
    return pairs


def _fold_into(layer: nn.Module, bn: nn.Module) -> None:
    """``w' = w·γ/σ``, ``b' = (b - μ)·γ/σ + β`` with ``σ = sqrt(var + eps)`` (float64, then float32)."""
    with torch.no_grad():
        sigma = torch.sqrt(bn.running_var.double() + bn.eps)
        gamma = bn.weight.double() if bn.weight is not None else torch.ones_like(sigma)
        beta = bn.bias.double() if bn.bias is not None else torch.zeros_like(sigma)
        factor = gamma / sigma
        w = layer.weight.double() * broadcast_channels(factor, layer.weight.dim(), 0)   # per output channel
        b = layer.bias.double() if layer.bias is not None else torch.zeros_like(sigma)
        layer.weight.copy_(w.to(layer.weight.dtype))
        new_bias = ((b - bn.running_mean.double()) * factor + beta).to(layer.weight.dtype)
        if layer.bias is None:
            layer.bias = nn.Parameter(new_bias)
        else:
            layer.bias.copy_(new_bias)


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` (in eval mode) with each BatchNorm merged into the Conv2d/Linear before it.

    In eval mode BN is the per-channel affine map ``y = γ·(x - μ)/sqrt(var + eps) + β``, so
    ``BN(W∗x + b) = W'∗x + b'`` with ``W' = W·γ/σ`` (per output channel) and
    ``b' = (b - μ)·γ/σ + β``. The BN module is replaced by ``nn.Identity``; the outputs are equal to
    the original model's in eval mode up to float32 rounding. The input model is not modified.
    Explained in notebooks/03_post_training_quantization.ipynb.
    """
    require_module("model", model)
    folded = copy.deepcopy(model).eval()
    for layer_name, bn_name in conv_bn_pairs(folded):
        _fold_into(folded.get_submodule(layer_name), folded.get_submodule(bn_name))
        folded.set_submodule(bn_name, nn.Identity())
    return folded


# --------------------------------------------------------------------------- calibration data
MAX_BATCH_SIZE = 2**31 - 1  # torch splits tensors with int64 sizes: 2**63 overflowed in C ("unpacking long long")


def iter_inputs(data, batch_size: int = 256) -> Iterator[torch.Tensor]:
    """Yield input batches ``x`` from ``data``: a ``Dataset`` (first item of each sample), an
    ``(x, y)`` pair of tensors, an ``x`` tensor (cut into ``batch_size`` rows), or any iterable of
    batches (a ``DataLoader``, a list of tensors or of ``(x, y)`` tuples). ``batch_size`` in
    [1, ``MAX_BATCH_SIZE``]."""
    batch_size = require_int("batch_size", batch_size, 1, MAX_BATCH_SIZE)
    if isinstance(data, torch.Tensor):
        if data.dim() == 0:
            raise ValueError("data must be a batch of inputs [N, ...], got a 0-d tensor")
        yield from data.split(batch_size)
    elif isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data) \
            and not data[1].is_floating_point() and len(data[0]) == len(data[1]):
        yield from data[0].split(batch_size)
    elif isinstance(data, TensorDataset):
        yield from data.tensors[0].split(batch_size)
    elif isinstance(data, Dataset) and not isinstance(data, torch.utils.data.IterableDataset):
        for batch in DataLoader(data, batch_size=batch_size):
            yield batch[0] if isinstance(batch, (tuple, list)) else batch
    elif hasattr(data, "__iter__"):
        for batch in data:
            x = batch[0] if isinstance(batch, (tuple, list)) else batch
            if not isinstance(x, torch.Tensor):
                raise TypeError(f"calibration batches must be tensors or (x, y) tuples, got {type(x).__name__}")
            yield x
    else:
        raise TypeError(f"data must be a Dataset, DataLoader, tensor, (x, y) pair or iterable of batches, "
                        f"got {type(data).__name__}")


@torch.no_grad()
def calibrate(model: nn.Module, data, num_batches: int | None = None, batch_size: int = 256) -> int:
    """Run up to ``num_batches`` batches of ``data`` through ``model`` in eval mode (observers record
    their statistics); returns the number of batches used. ``ValueError`` if ``data`` is empty.
    Explained in notebooks/03_post_training_quantization.ipynb."""
    if num_batches is not None:
        num_batches = require_int("num_batches", num_batches, 1, None)
    was_training = model.training
    model.eval()
    seen = 0
    try:
        for x in iter_inputs(data, batch_size):
            if num_batches is not None and seen >= num_batches:
                break
            if x.numel() == 0:
                continue
            try:
                model(x)
            except (RuntimeError, IndexError) as error:  # a shape or dtype the model's layers refuse
                raise ValueError(f"calib_data gives inputs of shape {list(x.shape)} that the model cannot take: "
                                 f"{str(error).splitlines()[0]}") from error
            seen += 1
    finally:
        model.train(was_training)
    if seen == 0:
        raise ValueError("calib_data must hold at least one non-empty batch, got an empty calibration set")
    return seen


# --------------------------------------------------------------------------- static PTQ
def quantize_static(model: nn.Module, calib_data, weight_bits: int = 8, act_bits: int = 8,
                    per_channel: bool = True, observer: str = "minmax", num_batches: int | None = None,
                    batch_size: int = 256, fold_bn: bool = True, observer_kwargs: dict | None = None) -> nn.Module:
    """Static post-training quantization; returns a quantized copy of ``model`` in eval mode.

    Every Conv2d/Linear becomes a ``QuantizedConv2d``/``QuantizedLinear``: weights stored as signed
    ``weight_bits`` codes (symmetric; ``per_channel``: one scale per output channel,
    ``granularity="channel", axis=0``, see ``affine.weight_qparams``), activations
    fake-quantized to unsigned ``act_bits`` with the range chosen by ``observer`` (one of
    ``OBSERVERS``: minmax, moving_average, histogram, percentile, mse, entropy) on up to
    ``num_batches`` batches of ``batch_size`` inputs (in [1, ``MAX_BATCH_SIZE``]) of ``calib_data``.
    BatchNorms are folded first (``fold_bn``). The result is an ordinary ``nn.Module``: evaluate it
    with ``labkit.train.evaluate``. ``TypeError`` if the model holds a weight-bearing layer other than
    Conv2d/Linear/BatchNorm (a Conv1d, an LSTM...), which would otherwise stay float without a word.
    Explained in notebooks/03_post_training_quantization.ipynb.
    """
    check_model(model)
    weight_bits = require_int("weight_bits", weight_bits, 1, 16)
    act_bits = require_int("act_bits", act_bits, 1, 16)
    per_channel, fold_bn = require_bool("per_channel", per_channel), require_bool("fold_bn", fold_bn)
    require_choice("observer", observer, tuple(OBSERVERS))
    batch_size = require_int("batch_size", batch_size, 1, MAX_BATCH_SIZE)
    if num_batches is not None:
        num_batches = require_int("num_batches", num_batches, 1, None)
    kwargs = dict(observer_kwargs or {})
    qmodel = fold_batchnorm(model) if fold_bn else copy.deepcopy(model).eval()

    def observe(layer, quantize_input, relu):
        def new():
            return make_observer(observer, act_bits, **kwargs)
        return ObservedLayer(layer, new() if quantize_input else None, new(), relu)

    qmodel = swap_layers(qmodel, observe)
    calibrate(qmodel, calib_data, num_batches, batch_size)
    qmodel = replace_modules(qmodel, ObservedLayer, lambda m: m.to_quantized(weight_bits, per_channel))
    return qmodel.eval()


# --------------------------------------------------------------------------- dynamic PTQ
def quantize_dynamic(model: nn.Module, bits: int = 8, reduce_range: bool = False,
                     per_channel: bool = False) -> nn.Module:
    """Dynamic quantization: a copy of ``model`` whose ``nn.Linear`` layers are ``DynamicQuantLinear``
    (signed symmetric ``bits``-bit weights now — ``per_channel``: one scale per output channel,
    ``granularity="channel", axis=0`` — activation range measured on every batch).

    ``torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)`` corresponds to
    ``bits=8, reduce_range=True`` on x86 (fbgemm drops one activation bit). Other layers stay float.
    ``ValueError`` if the model has no ``nn.Linear``. Explained in notebooks/03_post_training_quantization.ipynb.
    """
    require_module("model", model, dtypes=(torch.float32,))  # float64 layers around float32 outputs would fail
    if not any(isinstance(m, nn.Linear) for m in model.modules()):
        raise ValueError(f"model must contain at least one nn.Linear layer; {type(model).__name__} has none")
    bits = check_bits(bits)
    qmodel = copy.deepcopy(model).eval()
    return replace_modules(qmodel, nn.Linear, lambda m: DynamicQuantLinear(m, bits, reduce_range, per_channel))
