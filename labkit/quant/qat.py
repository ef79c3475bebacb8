"""Quantization-aware training: train through fake quantization, then convert.

``prepare_qat`` copies a trained model and wraps every Conv2d/Linear in a ``QATLayer``: its weight
and activations pass through fake-quantizers in the forward pass, and the straight-through
estimator (or LSQ / PACT, see ``fake_quant``) carries the gradient back to the float weights. After
a few epochs of ``labkit.train.fit``, ``convert`` produces the same ``QuantizedConv2d`` /
``QuantizedLinear`` representation as post-training quantization.

Batch norm: labkit **folds BN into the preceding convolution when QAT starts** (``fold_bn=True``),
so the weights that are fake-quantized are exactly the weights used at inference and BN statistics
are frozen from the start (Jacob et al. 2018 fold BN too, and freeze its statistics after a few
epochs; starting from a trained model we freeze them at once). Observers: activation ranges are
moving averages during training; ``freeze_observers`` fixes them for the last epochs (Krishnamoorthi
2018 recommends it). Progressive bit-width lowering (seed 004 §3.1: 8 → 4 → 2 bits): ``set_bits``
plus the schedule of ``fit_progressive``.

Explained in notebooks/05_quantization_aware_training.ipynb
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import nn

from labkit.quant.affine import weight_granularity
from labkit.quant.fake_quant import FakeQuantize, LSQQuantizer, PACTQuantizer
from labkit.quant.modules import QATLayer, check_model, replace_modules, swap_layers
from labkit.quant.observers import MovingAverageMinMaxObserver
from labkit.quant.ptq import fold_batchnorm
from labkit.validate import require_bool, require_choice, require_int, require_module

__all__ = ["QUANTIZERS", "QATMethod", "register_quantizer", "prepare_qat", "freeze_observers", "unfreeze_observers", "convert", "set_bits",
           "fit_progressive", "qat_layers"]

@dataclass(frozen=True)
class QATMethod:
    """How one QAT method fake-quantizes a layer: ``weight(bits, per_channel)`` builds the weight's
    quantizer (``affine.weight_granularity(per_channel)`` gives its ``granularity, axis``), ``activation(bits, after_relu)`` an input/output quantizer. Each returned module has
    the interface of ``fake_quant.FakeQuantize``: ``forward(x)`` (fake-quantized ``x``, a gradient
    to ``x``), ``qparams()``, ``set_bits(b)``, ``freeze()``/``unfreeze()``; and is saveable
    (``labkit.architecture.register_module``). Explained in notebooks/05_quantization_aware_training.ipynb.
    """

    weight: Callable[[int, bool], nn.Module]
    activation: Callable[[int, bool], nn.Module]


QUANTIZERS: dict[str, QATMethod] = {}
"""``name -> QATMethod``: what ``prepare_qat(quantizer=...)`` accepts, in registration order."""


def register_quantizer(name: str, weight: Callable[[int, bool], nn.Module],
                       activation: Callable[[int, bool], nn.Module]) -> QATMethod:
    """Make ``prepare_qat(model, quantizer=name)`` use ``weight``/``activation`` (see ``QATMethod``).

    ``ValueError`` for a name already registered. Explained in notebooks/05_quantization_aware_training.ipynb.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty str, got {name!r}")
    if name in QUANTIZERS:
        raise ValueError(f"quantizer {name!r} is already registered")
    if not callable(weight) or not callable(activation):
        raise TypeError("weight and activation must be callables (bits, flag) -> nn.Module")
    QUANTIZERS[name] = QATMethod(weight, activation)
    return QUANTIZERS[name]


def _minmax_weight(bits: int, per_channel: bool) -> nn.Module:
    """STE (and PACT, which learns only activation clipping): range of the current weight, every step."""
    granularity, axis = weight_granularity(per_channel)
    observer = MovingAverageMinMaxObserver(1.0, bits, symmetric=True, signed=True, granularity=granularity, axis=axis)
    return FakeQuantize(observer, always_observe=True)


def _lsq_weight(bits: int, per_channel: bool) -> nn.Module:
    granularity, axis = weight_granularity(per_channel)
    return LSQQuantizer(bits, signed=True, granularity=granularity, axis=axis)


def _minmax_activation(bits: int, after_relu: bool) -> nn.Module:
    return FakeQuantize(MovingAverageMinMaxObserver(0.01, bits, symmetric=False, signed=False))


def _pact_activation(bits: int, after_relu: bool) -> nn.Module:
    return PACTQuantizer(bits) if after_relu else _minmax_activation(bits, after_relu)


register_quantizer("ste", _minmax_weight, _minmax_activation)
register_quantizer("lsq", _lsq_weight,
                   lambda bits, after_relu: LSQQuantizer(bits, signed=False if after_relu else None, is_activation=True))
register_quantizer("pact", _minmax_weight, _pact_activation)


def prepare_qat(model: nn.Module, weight_bits: int = 8, act_bits: int = 8, per_channel: bool = True,
                quantizer: str = "ste", fold_bn: bool = True) -> nn.Module:
    """A copy of ``model``, in train mode, with fake quantization inserted for QAT.

    Weights: signed ``weight_bits``, symmetric; ``per_channel``: one scale per output channel
    (``granularity="channel", axis=0``, see ``affine.weight_granularity``), else one per tensor.
    Activations: ``act_bits`` at every layer output (after a fused ReLU) and at inputs that are not
    already quantized. ``quantizer``: ``"ste"`` (min/max ranges + straight-through estimator),
    ``"lsq"`` (learned step sizes for weights and activations), ``"pact"`` (learned clipping
    level for activations after ReLU, STE weights) or one added with ``register_quantizer``. BN is folded first (see the module docstring).
    Train the result with ``labkit.train.fit``; then ``convert``. ``TypeError`` if the model holds a
    weight-bearing layer other than Conv2d/Linear/BatchNorm (a Conv1d, an LSTM...).
    Explained in notebooks/05_quantization_aware_training.ipynb.
    """
    check_model(model)
    weight_bits = require_int("weight_bits", weight_bits, 1, 16)
    act_bits = require_int("act_bits", act_bits, 1, 16)
    require_bool("per_channel", per_channel), require_bool("fold_bn", fold_bn)
    method = QUANTIZERS[require_choice("quantizer", quantizer, tuple(QUANTIZERS))]
    qmodel = fold_batchnorm(model) if fold_bn else copy.deepcopy(model)

    def wrap(layer, quantize_input, relu):
        wq = method.weight(weight_bits, per_channel)
        with torch.no_grad():
            wq(layer.weight)  # initialise from the trained weight (LSQ's step, the weight's range)
        iq = method.activation(act_bits, False) if quantize_input else None
        return QATLayer(layer, wq, iq, method.activation(act_bits, relu), relu)

    return swap_layers(qmodel, wrap).train()


def qat_layers(model: nn.Module) -> list[QATLayer]:
    """Every ``QATLayer`` inside ``model``."""
    return [m for m in model.modules() if isinstance(m, QATLayer)]


def _require_qat(model) -> list[QATLayer]:
    require_module("model", model)
    layers = qat_layers(model)
    if not layers:
        raise ValueError("model has no QATLayer: call prepare_qat(model) first")
    return layers


def freeze_observers(model: nn.Module, learned: bool = False) -> int:
    """Stop every observer of a QAT model (ranges fixed from now on); with ``learned=True`` also stop
    training LSQ steps and PACT clipping levels. Returns the number of quantizers frozen.
    Explained in notebooks/05_quantization_aware_training.ipynb."""
    count = 0
    for layer in _require_qat(model):
        for q in layer.quantizers():
            if isinstance(q, FakeQuantize) or learned:
                q.freeze()
                count += 1
    return count


def unfreeze_observers(model: nn.Module) -> int:
    """Undo ``freeze_observers`` (observers and learned quantizers both resume)."""
    count = 0
    for layer in _require_qat(model):
        for q in layer.quantizers():
            q.unfreeze()
            count += 1
    return count


def set_bits(model: nn.Module, bits: int, weights: bool = True, activations: bool = True) -> int:
    """Change the bit width of every weight and/or activation quantizer of a QAT model (progressive
    lowering, seed 004 §3.1). Observed ranges and learned steps are kept (LSQ rescales its step to
    cover the same range). Returns the number of quantizers changed. Explained in notebooks/05_quantization_aware_training.ipynb."""
    bits = require_int("bits", bits, 1, 16)
    require_bool("weights", weights), require_bool("activations", activations)
    count = 0
    for layer in _require_qat(model):
        chosen = ([layer.weight_quant] if weights else []) + \
                 ([q for q in (layer.input_quant, layer.output_quant) if q is not None] if activations else [])
        for q in chosen:
            q.set_bits(bits)
            count += 1
    return count


def convert(model: nn.Module) -> nn.Module:
    """A copy of a QAT model (eval mode) in which every ``QATLayer`` is a ``QuantizedConv2d`` /
    ``QuantizedLinear``: integer weight codes from the trained weights and the final quantizer
    parameters — the representation ``quantize_static`` returns. Its outputs equal the QAT model's
    in eval mode. Explained in notebooks/05_quantization_aware_training.ipynb."""
    _require_qat(model)
    return replace_modules(copy.deepcopy(model), QATLayer, lambda m: m.to_quantized()).eval()


def fit_progressive(model: nn.Module, train_data, schedule: Sequence[tuple[int, int]] = ((8, 1), (4, 1), (2, 2)),
                    **fit_kwargs) -> list[dict]:
    """Train a QAT model with a decreasing bit width: for each ``(bits, epochs)`` of ``schedule``,
    ``set_bits(model, bits)`` then ``labkit.train.fit(model, train_data, epochs=epochs, **fit_kwargs)``.

    Returns the concatenated per-epoch history, each entry with an extra ``"bits"`` key.
    Explained in notebooks/05_quantization_aware_training.ipynb.
    """
    from labkit.train import fit  # quant may import train; lazily, so `import labkit.quant` stays light

    _require_qat(model)
    if isinstance(schedule, (str, bytes)) or not hasattr(schedule, "__iter__"):
        raise TypeError(f"schedule must be a sequence of (bits, epochs) pairs, got {type(schedule).__name__}")
    stages = list(schedule)
    if not stages:
        raise ValueError("schedule must hold at least one (bits, epochs) pair, got an empty sequence")
    for stage in stages:
        if not (isinstance(stage, (tuple, list)) and len(stage) == 2):
            raise ValueError(f"schedule entries must be (bits, epochs) pairs, got {stage!r}")
        require_int("bits", stage[0], 1, 16), require_int("epochs", stage[1], 1, 10_000)
    history = []
    for bits, epochs in stages:
        set_bits(model, bits)
        for entry in fit(model, train_data, epochs=epochs, **fit_kwargs):
            history.append({**entry, "bits": bits})
    return history
