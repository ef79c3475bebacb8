"""Layer wrappers shared by PTQ, QAT and mixed precision, and the walker that inserts them.

- ``ObservedLayer``   a float Conv2d/Linear with observers on its input/output (PTQ calibration)
- ``QATLayer``        a float Conv2d/Linear whose weight and activations are fake-quantized (QAT)
- ``QuantizedLinear`` / ``QuantizedConv2d``  the *quantized model* representation that PTQ and QAT
  both produce: integer weight codes with their scale/zero point, float32 bias, and the
  calibrated activation parameters; the forward pass simulates integer inference
  (``x̂ = fq(x)``, ``ŵ = (w_q - z_w)·s_w``, ``y = fq(relu(ŵ ∗ x̂ + b))``)
- ``DynamicQuantLinear``  int8 weights ahead of time, activation range measured per batch

``swap_layers`` walks a model. Inside an ``nn.Sequential`` it follows the data: a Conv2d/Linear
directly followed by ``nn.ReLU`` is fused with it (the output is observed *after* the ReLU, so all
2^b levels cover non-negative values), and a layer whose input comes from another quantized layer
through ReLU / max-pool / flatten / dropout only needs no input quantizer, because those
operations keep values on the grid (0 is a level). Elsewhere (e.g. a ResNet block) each layer gets
its own input and output quantizers.

Explained in notebooks/03_post_training_quantization.ipynb
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

from labkit import architecture
from labkit.quant.affine import (QParams, broadcast_channels, check_bits, dequantize, fake_quantize, qparams_from_range,
                                 quantize, quantized_nbytes, weight_qparams)
from labkit.validate import nonfinite_parameters, require_bool, require_module

__all__ = [
    "LAYER_TYPES", "GRID_PRESERVING", "quantizable_layers", "swap_layers", "replace_modules",
    "QuantizedLayer", "QuantizedLinear", "QuantizedConv2d", "quantized_layer",
    "ObservedLayer", "QATLayer", "DynamicQuantLinear", "check_model", "unsupported_layers",
]

LAYER_TYPES = (nn.Conv2d, nn.Linear)
GRID_PRESERVING = (nn.ReLU, nn.MaxPool2d, nn.Flatten, nn.Dropout, nn.Identity)
# BatchNorm is the only other module with parameters that the flows know: folded into the layer
# before it, or (fold_bn=False, or no layer before it) kept in float on purpose.
FOLDABLE_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)
_SUPPORTED_TEXT = ("nn.Conv2d and nn.Linear (quantized), nn.BatchNorm1d/nn.BatchNorm2d (folded or kept float), "
                  "and modules without parameters (activations, pooling, flatten, dropout, containers)")


def check_model(model) -> nn.Module:
    """``TypeError`` unless ``model`` is a float32 ``nn.Module`` made only of supported modules (see
    ``unsupported_layers``); ``ValueError`` if it has no Conv2d/Linear, NaN/Inf weights, or is on the
    meta device.
    Quantization starts from float32: a float64/float16 model is named (convert it with ``.float()``)."""
    require_module("model", model, dtypes=(torch.float32,))
    broken = list(nonfinite_parameters(model))
    if broken:
        raise ValueError(f"model holds NaN or Inf in {', '.join(broken[:3])}: its quantization ranges would be "
                         "NaN; find where training diverged (train.fit now stops there) and retrain")
    _require_supported(model)
    if not any(isinstance(m, LAYER_TYPES) for m in model.modules()):
        raise ValueError(f"model must contain at least one nn.Conv2d or nn.Linear layer to quantize; "
                         f"{type(model).__name__} has none")
    return model


def unsupported_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` of every module with parameters of its own that labkit cannot quantize
    (Conv1d/Conv3d, ConvTranspose*, RNN/LSTM/GRU, Embedding, MultiheadAttention, LayerNorm...):
    left alone, it would silently stay float in a model reported as quantized. Conv2d/Linear,
    BatchNorm1d/2d, labkit's own wrappers and parameter-free modules are supported."""
    return _find_unsupported(model, "")


def _find_unsupported(module: nn.Module, name: str) -> list[tuple[str, nn.Module]]:
    if isinstance(module, LAYER_TYPES + FOLDABLE_NORMS) or _is_wrapper(module):
        return []  # their children (e.g. a QATLayer's quantizers) belong to them
    if next(module.parameters(recurse=False), None) is not None:
        return [(name, module)]
    return [found for child_name, child in module.named_children()
            for found in _find_unsupported(child, f"{name}.{child_name}" if name else child_name)]


def _require_supported(model: nn.Module) -> None:
    bad = unsupported_layers(model)
    if bad:
        where = ", ".join(f"{name or '<model>'!r} ({type(m).__name__})" for name, m in bad)
        raise TypeError(f"model contains layers labkit.quant cannot quantize: {where}; supported: {_SUPPORTED_TEXT}")


def quantizable_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` of every ``nn.Conv2d``/``nn.Linear`` in ``model``, in module order."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, LAYER_TYPES)]


# --------------------------------------------------------------------------- walking a model
Maker = Callable[[nn.Module, bool, bool], nn.Module]


def swap_layers(model: nn.Module, make: Maker) -> nn.Module:
    """Replace (in place) every Conv2d/Linear by ``make(layer, quantize_input, relu)``; returns
    ``model`` (or the new module when ``model`` itself is a bare layer).

    ``relu`` is True when the layer is followed by an ``nn.ReLU`` in the same ``nn.Sequential`` (with
    only ``nn.Identity`` — e.g. a folded BatchNorm — in between); that ReLU is then replaced by ``nn.Identity`` (the wrapper applies it). ``quantize_input`` is False
    only when the input is already on a quantization grid (see the module docstring).
    ``TypeError`` (naming the layer) if ``model`` holds a layer it cannot quantize (``unsupported_layers``).
    """
    if isinstance(model, LAYER_TYPES):
        return make(model, True, False)
    _require_supported(model)  # the walk below would step over any other weight-bearing layer
    _walk(model, make, on_grid=False)
    return model


def _walk(parent: nn.Module, make: Maker, on_grid: bool) -> bool:
    """Swap the layers below ``parent``; return whether its output is on a quantization grid."""
    names = [n for n, m in parent._modules.items() if m is not None]
    sequential = isinstance(parent, nn.Sequential)
    i = 0
    while i < len(names):
        child = parent._modules[names[i]]
        if isinstance(child, LAYER_TYPES):
            j = fused_relu(parent, names, i, skip=(nn.Identity,))   # folded BNs became nn.Identity
            parent._modules[names[i]] = make(child, not (sequential and on_grid), j is not None)
            if j is not None:
                parent._modules[names[j]] = nn.Identity()
                i = j
            on_grid = True
        elif _is_wrapper(child) or (isinstance(child, GRID_PRESERVING) and sequential):
            pass
        elif isinstance(child, nn.Sequential) and sequential:
            on_grid = _walk(child, make, on_grid)
        else:
            _walk(child, make, on_grid=False)
            on_grid = False
        i += 1
    return on_grid and sequential


def fused_relu(parent: nn.Module, names: list[str], i: int, skip: tuple = (nn.Identity,)) -> int | None:
    """Index in ``names`` (``parent``'s children) of the ``nn.ReLU`` that follows child ``i`` in the
    ``nn.Sequential`` ``parent`` with only ``skip`` modules between — the ReLU fused with that layer —
    or None (no such ReLU, or ``parent`` is not an ``nn.Sequential``)."""
    if not isinstance(parent, nn.Sequential):
        return None
    j = i + 1
    while j < len(names) and isinstance(parent._modules[names[j]], skip):
        j += 1
    return j if j < len(names) and type(parent._modules[names[j]]) is nn.ReLU else None


def activation_taps(model: nn.Module) -> dict[str, nn.Module]:
    """``{layer name: module whose output to watch}`` for every Conv2d/Linear of a float ``model``: the
    layer itself, or the ``nn.ReLU`` fused with it (``fused_relu``, over ``nn.Identity`` and BatchNorm) —
    the tensor static PTQ quantizes (its output observer sits after the fused ReLU).
    Explained in notebooks/03_post_training_quantization.ipynb."""
    taps = {}
    for parent_name, parent in model.named_modules():
        names = [n for n, m in parent._modules.items() if m is not None]
        for i, child_name in enumerate(names):
            child = parent._modules[child_name]
            if isinstance(child, LAYER_TYPES):
                j = fused_relu(parent, names, i, skip=(nn.Identity, nn.BatchNorm1d, nn.BatchNorm2d))
                taps[f"{parent_name}.{child_name}" if parent_name else child_name] = (
                    child if j is None else parent._modules[names[j]])
    return taps


def _is_wrapper(module: nn.Module) -> bool:
    return isinstance(module, (QuantizedLayer, ObservedLayer, QATLayer, DynamicQuantLinear))


def replace_modules(model: nn.Module, kind: type, fn: Callable[[nn.Module], nn.Module]) -> nn.Module:
    """Replace (in place) every submodule of type ``kind`` by ``fn(module)``; returns the model (or
    ``fn(model)`` if the model itself is a ``kind``)."""
    if isinstance(model, kind):
        return fn(model)
    for name, child in list(model._modules.items()):
        if child is None:
            continue
        if isinstance(child, kind):
            model._modules[name] = fn(child)
        else:
            replace_modules(child, kind, fn)
    return model


# --------------------------------------------------------------------------- the quantized representation
def _save_qparams(module: nn.Module, prefix: str, qp: QParams | None) -> None:
    if qp is None:
        module.register_buffer(f"{prefix}_scale", None)
        module.register_buffer(f"{prefix}_zero_point", None)
        setattr(module, f"{prefix}_spec", None)
        return
    module.register_buffer(f"{prefix}_scale", qp.scale.detach().clone().float())
    module.register_buffer(f"{prefix}_zero_point", qp.zero_point.detach().clone().to(torch.int32))
    setattr(module, f"{prefix}_spec", (qp.bits, qp.signed, qp.symmetric, qp.axis, qp.group_size))


def _load_qparams(module: nn.Module, prefix: str) -> QParams | None:
    spec = getattr(module, f"{prefix}_spec")
    if spec is None:
        return None
    return QParams(getattr(module, f"{prefix}_scale"), getattr(module, f"{prefix}_zero_point"), *spec)


class QuantizedLayer(nn.Module):
    """Base of ``QuantizedLinear``/``QuantizedConv2d``: integer weights + simulated integer inference.

    Buffers: ``weight_codes`` (``int8`` up to 8 bits), ``weight_scale``/``weight_zero_point``
    (per tensor ``[]`` or per output channel ``[C_out]``), ``bias`` float32 ``[C_out]`` or None, and
    optional ``input_*``/``output_*`` activation parameters. Forward:
    ``y = fq_out(relu(F(fq_in(x), (w_q - z_w)·s_w) + b))`` where ``fq`` is affine fake quantization
    and ``F`` is the linear map or the convolution. Explained in notebooks/03_post_training_quantization.ipynb.
    """

    float_type: type = nn.Module

    def __init__(self, layer: nn.Module, weight_qp: QParams, input_qp: QParams | None = None,
                 output_qp: QParams | None = None, relu: bool = False):
        super().__init__()
        if not isinstance(layer, self.float_type):
            raise TypeError(f"layer must be an {self.float_type.__name__}, got {type(layer).__name__}")
        self.relu = require_bool("relu", relu)
        self.register_buffer("weight_codes", quantize(layer.weight.detach(), weight_qp))
        _save_qparams(self, "weight", weight_qp)
        self.register_buffer("bias", None if layer.bias is None else layer.bias.detach().clone().float())
        _save_qparams(self, "input", input_qp)
        _save_qparams(self, "output", output_qp)

    @property
    def weight_qparams(self) -> QParams:
        return _load_qparams(self, "weight")

    @property
    def input_qparams(self) -> QParams | None:
        return _load_qparams(self, "input")

    @property
    def output_qparams(self) -> QParams | None:
        return _load_qparams(self, "output")

    @property
    def weight(self) -> torch.Tensor:
        """The dequantized weight ``(w_q - z_w)·s_w`` (float32, the float layer's shape)."""
        return dequantize(self.weight_codes, self.weight_qparams)

    def _op(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        in_qp, out_qp = self.input_qparams, self.output_qparams
        if in_qp is not None:
            x = fake_quantize(x, in_qp, check=False)
        y = self._op(x, self.weight)
        if self.relu:
            y = F.relu(y)
        if out_qp is not None:
            y = fake_quantize(y, out_qp, check=False)
        return y

    def nbytes(self) -> int:
        """Bytes of the packed weight codes + their scales/zero points + a float32 bias."""
        bias = 0 if self.bias is None else 4 * self.bias.numel()
        return quantized_nbytes(self.weight_qparams, self.weight_codes.numel()) + bias

    def extra_repr(self) -> str:
        qp = self.weight_qparams
        acts = [p for p, q in (("in", self.input_qparams), ("out", self.output_qparams)) if q is not None]
        act_bits = (self.output_qparams or self.input_qparams)
        return (f"weight_bits={qp.bits}, weight={qp.granularity}/{'sym' if qp.symmetric else 'asym'}, "
                f"act_bits={act_bits.bits if act_bits else None} on {'+'.join(acts) or 'none'}, relu={self.relu}")


class QuantizedLinear(QuantizedLayer):
    """``nn.Linear`` with integer weights: ``x [N, *, in] → y [N, *, out]``. See ``QuantizedLayer``.
    Explained in notebooks/03_post_training_quantization.ipynb."""

    float_type = nn.Linear

    def __init__(self, layer: nn.Linear, weight_qp: QParams, input_qp: QParams | None = None,
                 output_qp: QParams | None = None, relu: bool = False):
        super().__init__(layer, weight_qp, input_qp, output_qp, relu)
        self.in_features, self.out_features = layer.in_features, layer.out_features

    def _op(self, x, w):
        return F.linear(x, w, self.bias)


class QuantizedConv2d(QuantizedLayer):
    """``nn.Conv2d`` (zero padding) with integer weights: ``[N, C_in, H, W] → [N, C_out, H', W']``.
    See ``QuantizedLayer``. Explained in notebooks/03_post_training_quantization.ipynb."""

    float_type = nn.Conv2d

    def __init__(self, layer: nn.Conv2d, weight_qp: QParams, input_qp: QParams | None = None,
                 output_qp: QParams | None = None, relu: bool = False):
        if isinstance(layer, nn.Conv2d) and layer.padding_mode != "zeros":
            raise ValueError(f"layer.padding_mode must be 'zeros' to quantize, got {layer.padding_mode!r}")
        super().__init__(layer, weight_qp, input_qp, output_qp, relu)
        self.stride, self.padding, self.dilation, self.groups = layer.stride, layer.padding, layer.dilation, layer.groups

    def _op(self, x, w):
        return F.conv2d(x, w, self.bias, self.stride, self.padding, self.dilation, self.groups)


def quantized_layer(layer: nn.Module, weight_qp: QParams, input_qp: QParams | None = None,
                    output_qp: QParams | None = None, relu: bool = False) -> QuantizedLayer:
    """``QuantizedConv2d`` or ``QuantizedLinear`` for ``layer``; ``TypeError`` for any other type."""
    for cls in (QuantizedConv2d, QuantizedLinear):
        if isinstance(layer, cls.float_type):
            return cls(layer, weight_qp, input_qp, output_qp, relu)
    raise TypeError(f"layer must be an nn.Conv2d or nn.Linear, got {type(layer).__name__}")


# --------------------------------------------------------------------------- calibration wrapper (PTQ)
class ObservedLayer(nn.Module):
    """A float layer with observers: ``input_observer(x)``, ``y = relu?(layer(x))``,
    ``output_observer(y)``; returns ``y`` unchanged. ``to_quantized`` turns it into a
    ``QuantizedLayer`` with the observed activation parameters. Explained in notebooks/03_post_training_quantization.ipynb.
    """

    def __init__(self, layer: nn.Module, input_observer: nn.Module | None, output_observer: nn.Module | None,
                 relu: bool = False):
        super().__init__()
        if not isinstance(layer, LAYER_TYPES):
            raise TypeError(f"layer must be an nn.Conv2d or nn.Linear, got {type(layer).__name__}")
        self.layer, self.relu = layer, require_bool("relu", relu)
        self.input_observer, self.output_observer = input_observer, output_observer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_observer is not None:
            self.input_observer(x)
        y = self.layer(x)
        if self.relu:
            y = F.relu(y)
        if self.output_observer is not None:
            self.output_observer(y)
        return y

    def to_quantized(self, weight_bits: int = 8, per_channel: bool = True, symmetric: bool = True) -> QuantizedLayer:
        wqp = weight_qparams(self.layer.weight, weight_bits, per_channel, symmetric)
        in_qp = self.input_observer.calculate_qparams() if self.input_observer is not None else None
        out_qp = self.output_observer.calculate_qparams() if self.output_observer is not None else None
        return quantized_layer(self.layer, wqp, in_qp, out_qp, self.relu)


# --------------------------------------------------------------------------- training wrapper (QAT)
class QATLayer(nn.Module):
    """A float Conv2d/Linear trained through fake quantization:
    ``y = oq(relu?(F(iq(x), wq(w)) + b))`` with ``wq``, ``iq``, ``oq`` fake-quantizers
    (``FakeQuantize``, ``LSQQuantizer``, ``PACTQuantizer``; ``iq``/``oq`` may be None). The float
    weight ``layer.weight`` is what the optimizer updates. Explained in notebooks/05_quantization_aware_training.ipynb.
    """

    def __init__(self, layer: nn.Module, weight_quant: nn.Module, input_quant: nn.Module | None,
                 output_quant: nn.Module | None, relu: bool = False):
        super().__init__()
        if not isinstance(layer, LAYER_TYPES):
            raise TypeError(f"layer must be an nn.Conv2d or nn.Linear, got {type(layer).__name__}")
        self.layer, self.relu = layer, require_bool("relu", relu)
        self.weight_quant, self.input_quant, self.output_quant = weight_quant, input_quant, output_quant

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_quant is not None:
            x = self.input_quant(x)
        w = self.weight_quant(self.layer.weight)
        if isinstance(self.layer, nn.Linear):
            y = F.linear(x, w, self.layer.bias)
        else:
            y = self.layer._conv_forward(x, w, self.layer.bias)
        if self.relu:
            y = F.relu(y)
        if self.output_quant is not None:
            y = self.output_quant(y)
        return y

    def quantizers(self) -> list[nn.Module]:
        return [q for q in (self.weight_quant, self.input_quant, self.output_quant) if q is not None]

    def to_quantized(self) -> QuantizedLayer:
        """The same layer as integer weights + the learned/observed activation parameters."""
        with torch.no_grad():
            self.weight_quant.eval()
            self.weight_quant(self.layer.weight)  # make sure the weight quantizer saw the final weight
        wqp = self.weight_quant.qparams()
        in_qp = self.input_quant.qparams() if self.input_quant is not None else None
        out_qp = self.output_quant.qparams() if self.output_quant is not None else None
        return quantized_layer(self.layer, wqp, in_qp, out_qp, self.relu)


# --------------------------------------------------------------------------- dynamic quantization
class DynamicQuantLinear(nn.Module):
    """``nn.Linear`` with int8 weights quantized ahead of time and activations quantized per call.

    Weights: signed symmetric, per tensor (torch's ``default_weight_observer``) or, with ``per_channel``,
    one scale per output channel (``granularity="channel", axis=0``; ``affine.weight_qparams``). Each
    forward measures ``[min(x), max(x)]`` of the incoming batch (0 included),
    quantizes ``x`` to unsigned ``bits`` (``bits - 1`` with ``reduce_range``, as fbgemm does to
    avoid overflow in its 16-bit intermediate sums), multiplies the integers exactly —
    ``acc = Σ (x_q - z_x)(w_q - z_w)``, computed in float64, which holds every such sum exactly — and
    rescales: ``y = s_x·s_w·acc + b``. ``x [*, in] → y [*, out]`` float32.
    Explained in notebooks/03_post_training_quantization.ipynb.
    """

    def __init__(self, layer: nn.Linear, bits: int = 8, reduce_range: bool = False, per_channel: bool = False):
        super().__init__()
        if not isinstance(layer, nn.Linear):
            raise TypeError(f"layer must be an nn.Linear, got {type(layer).__name__}")
        self.bits = check_bits(bits)
        self.reduce_range = require_bool("reduce_range", reduce_range)
        if reduce_range and bits < 2:
            raise ValueError("bits must be >= 2 when reduce_range=True")
        self.in_features, self.out_features = layer.in_features, layer.out_features
        wqp = weight_qparams(layer.weight, bits, require_bool("per_channel", per_channel), symmetric=True)
        self.register_buffer("weight_codes", quantize(layer.weight.detach(), wqp))
        _save_qparams(self, "weight", wqp)
        self.register_buffer("bias", None if layer.bias is None else layer.bias.detach().clone().float())

    @property
    def weight_qparams(self) -> QParams:
        return _load_qparams(self, "weight")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.in_features).float()
        if flat.shape[0] == 0:
            return x.new_zeros(*x.shape[:-1], self.out_features)
        act_bits = self.bits - 1 if self.reduce_range else self.bits
        lo, hi = torch.aminmax(flat)
        xqp = qparams_from_range(lo, hi, act_bits, symmetric=False, signed=False)
        x_int = quantize(flat, xqp).double() - xqp.zero_point.double()
        wqp = self.weight_qparams
        w_int = self.weight_codes.double() - broadcast_channels(wqp.zero_point.double(), 2, wqp.axis)
        acc = x_int @ w_int.T  # exact integer sums
        y = (acc * (xqp.scale.double() * wqp.scale.double())).float()
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, bits={self.bits}, "
                f"reduce_range={self.reduce_range}, weight={self.weight_qparams.granularity}")


# --------------------------------------------------------------------------- saving (labkit.architecture)
def _describe_quantized(module: QuantizedLayer) -> dict:
    """The float layer's constructor arguments (its shape), the fused ReLU and the three QParams specs;
    the codes, scales, zero points and bias are buffers, saved in the state dict."""
    if isinstance(module, QuantizedLinear):
        shape = {"in_features": module.in_features, "out_features": module.out_features}
    else:
        out_channels, in_per_group, *kernel = module.weight_codes.shape
        shape = {"in_channels": in_per_group * module.groups, "out_channels": out_channels,
                 "kernel_size": tuple(kernel), "stride": module.stride, "padding": module.padding,
                 "dilation": module.dilation, "groups": module.groups}
    return {**shape, "bias": module.bias is not None, "relu": module.relu, "weight_spec": module.weight_spec,
            "input_spec": module.input_spec, "output_spec": module.output_spec}


def _quantized_builder(cls: type) -> Callable:
    def build(args, children):
        specs = ("weight_spec", "input_spec", "output_spec")
        layer = cls.float_type(**{k: v for k, v in args.items() if k not in specs and k != "relu"})
        module = cls(layer, weight_qparams(layer.weight), relu=args["relu"])
        for name in specs:
            setattr(module, name, None if args[name] is None else tuple(args[name]))
        return module
    return build


def _describe_dynamic(module: DynamicQuantLinear) -> dict:
    return {"in_features": module.in_features, "out_features": module.out_features, "bias": module.bias is not None,
            "bits": module.bits, "reduce_range": module.reduce_range,
            "per_channel": module.weight_spec[3] is not None}


def _build_dynamic(args, children) -> DynamicQuantLinear:
    layer = nn.Linear(args["in_features"], args["out_features"], bias=args["bias"])
    return DynamicQuantLinear(layer, args["bits"], args["reduce_range"], args["per_channel"])


def _build_qat(args, children) -> QATLayer:
    return QATLayer(children["layer"], children["weight_quant"], children.get("input_quant"),
                    children.get("output_quant"), args["relu"])


for _cls in (QuantizedLinear, QuantizedConv2d):
    architecture.register_module(_cls, _describe_quantized, _quantized_builder(_cls))
architecture.register_module(DynamicQuantLinear, _describe_dynamic, _build_dynamic)
architecture.register_module(QATLayer, lambda module: {"relu": module.relu}, _build_qat)
