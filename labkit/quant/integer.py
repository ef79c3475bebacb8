"""Integer-only inference: a trained Sequential CNN/MLP run entirely on ``labkit.kernels``.

``convert_to_integer(model, calib_data)`` folds BatchNorm, calibrates activation ranges with
``quantize_static`` and turns every layer into integer data the int8 kernels consume
(Jacob et al. 2018, "Quantization and Training of Neural Networks for Efficient Integer-Arithmetic-
Only Inference"):

- input: the uint8 pixels themselves (``x = q / 255``: scale 1/255, zero point 0, as labkit.data);
- Conv2d / Linear: int8 weight codes, symmetric, one scale ``s_w[n]`` per output channel; an int32
  bias ``round(b / (s_in · s_w[n]))``; the fixed-point multiplier ``quantize_multiplier(s_in ·
  s_w[n] / s_out)`` and the output zero point; a following ReLU is fused (lower clamp at ``z_out``);
- MaxPool2d works on the uint8 codes (max commutes with an increasing affine map), Flatten is a
  reshape, Identity (a folded BatchNorm) is skipped, a stand-alone ReLU clamps at the zero point;
- the last Linear uses *one* weight scale for all classes and returns its int32 accumulators: they
  are proportional to the real logits (common factor ``s_in · s_w``), so ``argmax`` on them is the
  prediction, with no requantization and no float at all.

``IntegerModel.forward_uint8(x_u8)`` → int32 logits ``[B, classes]``; ``model(x_float)`` quantizes
``x`` to pixels first; ``describe()`` lists the layers; ``evaluate_integer(model, data)`` is the
top-1 accuracy. Explained in notebooks/04_integer_inference.ipynb.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from labkit import architecture, kernels
from labkit.quant.affine import channel_view, quantize, weight_qparams
from labkit.quant.modules import QuantizedConv2d, QuantizedLinear
from labkit.quant.ptq import fold_batchnorm, iter_inputs, quantize_static
from labkit.validate import require_int, require_module, require_pair

INPUT_SCALE, INPUT_ZERO_POINT = 1.0 / 255.0, 0
SUPPORTED = (nn.Conv2d, nn.Linear, nn.ReLU, nn.MaxPool2d, nn.Flatten, nn.Identity, nn.BatchNorm2d,
             nn.BatchNorm1d)


@dataclass
class IntegerLayer:
    """One step of an ``IntegerModel``: ``kind`` is conv, linear, logits, maxpool, flatten or relu."""

    name: str
    kind: str
    in_scale: float = float("nan")
    in_zero_point: int = 0
    out_scale: float = float("nan")
    out_zero_point: int = 0
    weight: np.ndarray | None = None         # int8 codes (OIHW or [N, K])
    weight_scale: np.ndarray | None = None   # float64 [N]
    bias: np.ndarray | None = None           # int32 [N]
    multiplier: np.ndarray | None = None     # int32 [N]
    shift: np.ndarray | None = None          # int32 [N]
    relu: bool = False
    params: dict = field(default_factory=dict)
    packed: object = None
    row_sums: np.ndarray | None = None       # int32 [N], for the int32 logits layer
    in_shape: tuple = ()
    out_shape: tuple = ()

    def run(self, x: np.ndarray, reference: bool = False) -> np.ndarray:
        """This step on uint8 (or, for ``logits``, uint8 in / int32 out) codes; ``reference`` uses
        the readable numpy kernels of ``labkit.kernels.reference`` instead of the compiled ones."""
        if reference:
            return self._run_reference(x)
        if self.kind == "conv":
            return self.packed.forward(x, self.in_zero_point, self.multiplier, self.shift,
                                       self.out_zero_point, self.relu)
        if self.kind == "linear":
            return self.packed.forward(x, self.in_zero_point, self.multiplier, self.shift,
                                       self.out_zero_point, self.relu)
        if self.kind == "logits":
            return self._logits(self.packed.gemm(x))
        if self.kind == "maxpool":
            return kernels.maxpool2d_u8(x, **self.params)
        if self.kind == "flatten":
            return x.reshape(x.shape[0], -1)
        if self.kind == "relu":
            return np.maximum(x, np.uint8(self.in_zero_point))
        raise AssertionError(self.kind)

    def _logits(self, sums: np.ndarray) -> np.ndarray:
        """int32 logits from the raw products ``sums = Σ x·w``: ``sums − z_x Σ w + bias``, computed in
        int64 and saturated to int32 as labkit.kernels.reference.qlinear does (int32 arithmetic
        would wrap around; only an absurd bias can reach the limits)."""
        acc = sums.astype(np.int64) - np.int64(self.in_zero_point) * self.row_sums.astype(np.int64)
        if self.bias is not None:
            acc += self.bias.astype(np.int64)
        return np.clip(acc, kernels.reference.INT32_MIN, kernels.reference.INT32_MAX).astype(np.int32)

    def _run_reference(self, x: np.ndarray) -> np.ndarray:
        ref = kernels.reference
        if self.kind == "conv":
            return ref.qconv2d(x, self.in_zero_point, self.weight, self.bias, self.multiplier, self.shift,
                               self.out_zero_point, self.params["stride"], self.params["padding"], self.relu)
        if self.kind == "linear":
            return ref.qlinear(x, self.in_zero_point, self.weight, self.bias, self.multiplier, self.shift,
                               self.out_zero_point, self.relu)
        if self.kind == "logits":
            return self._logits(ref.gemm_u8s8s32(x, self.weight))
        if self.kind == "maxpool":
            k = require_pair("kernel_size", self.params["kernel_size"], 1)
            s = k if self.params["stride"] is None else require_pair("stride", self.params["stride"], 1)
            return ref.maxpool2d_u8(x, k, s, require_pair("padding", self.params["padding"], 0))
        return self.run(x)


class IntegerModel:
    """A model converted by ``convert_to_integer``: a list of ``IntegerLayer`` run on labkit.kernels.

    ``forward_uint8(x)``: uint8 pixels ``[B, C, H, W]`` → int32 logits ``[B, classes]`` (the last
    layer's accumulators, scale ``logit_scale``). ``__call__(x)``: float ``x = q/255`` → the same.
    ``predict(x)`` → int64 classes. Explained in notebooks/04_integer_inference.ipynb.
    """

    def __init__(self, layers: list[IntegerLayer], name: str = "model"):
        self.layers, self.name = layers, name
        self.logit_scale = float(layers[-1].in_scale * layers[-1].weight_scale[0])

    def forward_uint8(self, x: np.ndarray, reference: bool = False) -> np.ndarray:
        """int32 logits for uint8 pixels; ``reference=True`` runs labkit.kernels.reference (numpy)."""
        if isinstance(x, torch.Tensor):
            x = x.numpy()
        if not isinstance(x, np.ndarray) or x.dtype != np.uint8:
            raise TypeError(f"x must be a uint8 numpy array of pixels, got "
                            f"{getattr(x, 'dtype', type(x).__name__)}")
        x = np.ascontiguousarray(x)
        for layer in self.layers:
            x = np.ascontiguousarray(layer.run(x, reference))
        return x

    def __call__(self, x) -> np.ndarray:
        return self.forward_uint8(to_pixels(x))

    def predict(self, x) -> np.ndarray:
        return self(x).argmax(axis=1)

    def describe(self) -> str:
        """A table: layer, kind, input → output shape, scales, zero points, multiplier and shift."""
        head = (f"{'layer':<8} {'kind':<11} {'in shape':<14} {'out shape':<14} {'s_in':>9} {'z_in':>4} "
                f"{'s_w (mean)':>10} {'s_out':>9} {'z_out':>5} {'M (mean)':>9} {'mult[0]':>11} {'shift[0]':>8}")
        rows = [head, "-" * len(head)]
        for layer in self.layers:
            weighted = layer.weight is not None
            s_w = f"{layer.weight_scale.mean():10.3g}" if weighted else f"{'':>10}"
            if layer.multiplier is not None:
                real = layer.multiplier.astype(np.float64) * 2.0 ** (layer.shift.astype(np.float64) - 31)
                mult = f"{real.mean():9.3g} {int(layer.multiplier[0]):>11} {int(layer.shift[0]):>8}"
            else:
                mult = f"{'':>9} {'':>11} {'':>8}"
            kind = layer.kind + ("+relu" if layer.relu else "")
            s_out = f"{layer.out_scale:9.3g}" if layer.out_scale == layer.out_scale else f"{'int32':>9}"
            rows.append(f"{layer.name:<8} {kind:<11} {str(list(layer.in_shape)):<14} {str(list(layer.out_shape)):<14} "
                        f"{layer.in_scale:9.3g} {layer.in_zero_point:>4} {s_w} {s_out} "
                        f"{layer.out_zero_point if layer.out_scale == layer.out_scale else '':>5} {mult}")
        return "\n".join(rows)

    def __repr__(self) -> str:
        return f"IntegerModel({self.name}, {len(self.layers)} layers, isa={kernels.isa()})"


def to_pixels(x) -> np.ndarray:
    """float ``x = q/255`` (tensor or array) → uint8 ``q = clamp(round(255·x), 0, 255)``; uint8
    input is returned unchanged (it already is pixels). ``ValueError`` if ``x`` holds NaN or Inf:
    casting NaN to uint8 gives an arbitrary pixel, and the model a confident made-up class."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    if isinstance(x, np.ndarray) and x.dtype == np.uint8:
        return x
    x = np.asarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        raise ValueError(f"x holds {int((~np.isfinite(x)).sum())} NaN or Inf value(s); pixels must be finite "
                         "numbers in [0, 1] (x = q/255)")
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def _check_modules(model: nn.Module) -> None:
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"convert_to_integer supports nn.Sequential models (LeNet5, LeNet300100, SmallVGG); "
                        f"got {type(model).__name__}")
    for name, module in model.named_children():
        if not isinstance(module, SUPPORTED) or type(module) in (nn.Sequential,):
            raise TypeError(f"convert_to_integer: layer {name!r} is a {type(module).__name__}, which has no "
                            f"integer kernel; supported: {', '.join(t.__name__ for t in SUPPORTED)}")
        if isinstance(module, nn.Conv2d) and (module.groups != 1 or module.dilation != (1, 1)
                                              or module.padding_mode != "zeros"):
            raise TypeError(f"convert_to_integer: layer {name!r} is a Conv2d with groups/dilation/"
                            f"non-zero padding, which the integer kernels do not support")


def _multipliers(real: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pairs = [kernels.quantize_multiplier(float(r)) for r in real]
    return (np.array([p[0] for p in pairs], dtype=np.int32), np.array([p[1] for p in pairs], dtype=np.int32))


def _symmetric_codes(w: torch.Tensor, per_channel: bool) -> tuple[np.ndarray, np.ndarray]:
    """int8 codes ``[N, K]`` in [-127, 127] and float64 scales ``[N]`` for a weight ``[N, ...]``:
    ``affine.weight_qparams(variant="restricted")`` (``s = max|w| / 127``)."""
    qp = weight_qparams(w, 8, per_channel, variant="restricted")
    codes = channel_view(quantize(w.detach(), qp), 0)
    return codes.numpy(), np.broadcast_to(qp.scale.numpy(), (codes.shape[0],)).copy()


def convert_to_integer(model: nn.Module, calib_data, num_batches: int | None = 4, observer: str = "minmax",
                       batch_size: int = 256) -> IntegerModel:
    """An ``IntegerModel`` computing ``model`` (LeNet5 / LeNet300100 / SmallVGG or any Sequential of
    Conv2d, Linear, BatchNorm, ReLU, MaxPool2d, Flatten) with integers only.

    Activation ranges come from ``quantize_static(model, calib_data, observer=observer,
    num_batches=num_batches)`` (so the hidden layers use exactly its weight codes and activation
    parameters); the input is the uint8 pixel (scale 1/255, zero point 0); the last Linear is
    quantized per tensor and returns int32 logits. ``TypeError`` names any unsupported module.
    Explained in notebooks/04_integer_inference.ipynb.
    """
    require_module("model", model)
    _check_modules(model)
    if num_batches is not None:
        num_batches = require_int("num_batches", num_batches, 1, None)
    folded = fold_batchnorm(model)
    qmodel = quantize_static(folded, calib_data, observer=observer, num_batches=num_batches,
                             batch_size=batch_size, fold_bn=False)
    children = [(n, m) for n, m in qmodel.named_children() if type(m) is not nn.Identity]
    weighted = [i for i, (_, m) in enumerate(children) if isinstance(m, (QuantizedConv2d, QuantizedLinear))]
    if not weighted or not isinstance(children[weighted[-1]][1], QuantizedLinear) or weighted[-1] != len(children) - 1:
        raise TypeError("convert_to_integer needs a model that ends with an nn.Linear (the logits layer)")

    sample = next(iter(iter_inputs(calib_data, 1)))[:1]
    stream = Stream(tuple(sample.shape[1:]), INPUT_SCALE, INPUT_ZERO_POINT)
    layers: list[IntegerLayer] = []
    for index, (name, module) in enumerate(children):
        convert = converter_for(module)
        if convert is None:
            raise TypeError(f"convert_to_integer: layer {name!r} ({type(module).__name__}) is not supported here")
        in_shape = stream.shape
        layer = convert(name, module, stream, folded=folded, last=index == len(children) - 1)
        layer.in_shape, layer.out_shape = in_shape, stream.shape
        layers.append(layer)
    return IntegerModel(layers, getattr(model, "arch", type(model).__name__))


# --------------------------------------------------------------------------- one converter per layer type
@dataclass
class Stream:
    """The activation flowing between layers while converting: its shape (without the batch), and the
    scale and zero point of its uint8 codes. Each converter reads it and updates it for the next layer."""

    shape: tuple
    scale: float
    zero_point: int


def convert_weighted(name: str, module, stream: Stream, *, folded: nn.Module, last: bool) -> IntegerLayer:
    """A ``QuantizedConv2d``/``QuantizedLinear`` as int8 codes, an int32 bias ``round(b / (s_in·s_w))``
    and the fixed-point requantization ``s_in·s_w / s_out``; the ``last`` layer (per-tensor weights,
    ``_symmetric_codes``) returns int32 ``logits`` instead. Explained in notebooks/04_integer_inference.ipynb."""
    is_conv, scale = isinstance(module, QuantizedConv2d), stream.scale
    if last:
        codes, w_scale = _symmetric_codes(folded.get_submodule(name).weight, per_channel=False)
    else:
        codes = channel_view(module.weight_codes, 0).numpy().astype(np.int8)
        w_scale = np.broadcast_to(module.weight_qparams.scale.double().numpy(), (codes.shape[0],)).copy()
        if int(module.weight_qparams.zero_point.abs().max()) != 0:
            raise AssertionError("weights must be symmetric")
    codes = np.ascontiguousarray(codes.reshape(module.weight_codes.shape))
    bias = None
    if module.bias is not None:
        bias = np.clip(np.rint(module.bias.double().numpy() / (scale * w_scale)), -(2**31), 2**31 - 1).astype(np.int32)
    layer = IntegerLayer(name, "conv" if is_conv else "linear", in_scale=scale, in_zero_point=stream.zero_point,
                         weight=codes, weight_scale=w_scale, bias=bias, relu=module.relu)
    if is_conv:
        stride, padding = tuple(module.stride), tuple(module.padding)
        layer.params = {"stride": stride, "padding": padding}
        stream.shape = (codes.shape[0], *_window_output(stream.shape[1:], codes.shape[2:], stride, padding))
    else:
        stream.shape = (codes.shape[0],)
    layer.packed = _pack(layer)
    if last:
        layer.kind = "logits"
        layer.row_sums = codes.astype(np.int32).sum(axis=1).astype(np.int32)
    else:
        out_qp = module.output_qparams
        layer.out_scale, layer.out_zero_point = float(out_qp.scale), int(out_qp.zero_point)
        layer.multiplier, layer.shift = _multipliers(scale * w_scale / layer.out_scale)
        stream.scale, stream.zero_point = layer.out_scale, layer.out_zero_point
    return layer


def _window_output(size, kernel, stride, padding) -> tuple[int, int]:
    """``(H + 2p − k) // s + 1`` per spatial dimension (convolution and pooling windows)."""
    return tuple((n + 2 * p - k) // st + 1 for n, k, st, p in zip(size, kernel, stride, padding))


def convert_maxpool(name: str, module: nn.MaxPool2d, stream: Stream, **_) -> IntegerLayer:
    """Max pooling on uint8 codes (monotone, so the codes keep their scale and zero point)."""
    if module.dilation not in (1, (1, 1)) or module.ceil_mode:
        raise TypeError(f"convert_to_integer: MaxPool2d {name!r} with dilation/ceil_mode is not supported")
    params = {"kernel_size": module.kernel_size, "stride": module.stride, "padding": module.padding}
    k = require_pair("k", module.kernel_size, 1)
    s = k if module.stride is None else require_pair("s", module.stride, 1)
    stream.shape = (stream.shape[0], *_window_output(stream.shape[1:], k, s, require_pair("p", module.padding, 0)))
    return _passthrough(IntegerLayer(name, "maxpool", params=params), stream)


def convert_flatten(name: str, module: nn.Flatten, stream: Stream, **_) -> IntegerLayer:
    """``[C, H, W] → [C·H·W]``: the codes are unchanged."""
    stream.shape = (int(np.prod(stream.shape)),)
    return _passthrough(IntegerLayer(name, "flatten"), stream)


def convert_relu(name: str, module: nn.ReLU, stream: Stream, **_) -> IntegerLayer:
    """``max(q, z)`` on codes (a ReLU not fused into the layer before it)."""
    return _passthrough(IntegerLayer(name, "relu"), stream)


def _passthrough(layer: IntegerLayer, stream: Stream) -> IntegerLayer:
    layer.in_scale, layer.in_zero_point = stream.scale, stream.zero_point
    layer.out_scale, layer.out_zero_point = stream.scale, stream.zero_point
    return layer


CONVERTERS = {QuantizedConv2d: convert_weighted, QuantizedLinear: convert_weighted, nn.MaxPool2d: convert_maxpool,
              nn.Flatten: convert_flatten, nn.ReLU: convert_relu}
"""``layer type -> converter(name, module, stream, *, folded, last) -> IntegerLayer``: what
``convert_to_integer`` can turn into integer-only steps (subclasses included)."""


def converter_for(module: nn.Module):
    """The converter of ``module``'s type or of its nearest base class in ``CONVERTERS``; None if none."""
    return next((CONVERTERS[cls] for cls in type(module).__mro__ if cls in CONVERTERS), None)


def _images_and_labels(data) -> tuple:
    """``(x [N, ...], y [N])`` from an ``(x, y)`` pair, a TensorDataset or a Dataset of pairs."""
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(hasattr(t, "shape") for t in data):
        x, y = data
    elif isinstance(getattr(data, "tensors", None), tuple) and len(data.tensors) == 2:
        x, y = data.tensors
    elif isinstance(data, torch.utils.data.Dataset) and len(data) and isinstance(data[0], (tuple, list)):
        x, y = torch.stack([d[0] for d in data]), torch.tensor([int(d[1]) for d in data])
    else:
        raise TypeError(f"data must be an (x, y) pair of arrays or tensors, or a Dataset of (image, label) pairs; "
                        f"got {type(data).__name__}")
    if len(x.shape) == 0 or len(x) == 0:
        raise ValueError(f"data must hold at least one image [N, C, H, W], got x of shape {list(x.shape)}")
    return x, y


def _pack(layer: IntegerLayer):
    """The weights of a conv / linear / logits layer packed once for the int8 kernels."""
    if layer.kind == "conv":
        return kernels.PackedConv2d(layer.weight, layer.bias, layer.params["stride"], layer.params["padding"])
    return kernels.PackedLinear(layer.weight, layer.bias)


def evaluate_integer(model: IntegerModel, data, batch_size: int = 512) -> float:
    """Top-1 accuracy (fraction) of an ``IntegerModel`` on a Dataset / ``(x, y)`` pair of float pixels,
    ``batch_size`` ≥ 1 images at a time; labels must be class indices of the model's logits.
    Explained in notebooks/04_integer_inference.ipynb."""
    if not isinstance(model, IntegerModel):
        raise TypeError(f"model must be an IntegerModel (from convert_to_integer), got {type(model).__name__}")
    batch_size = require_int("batch_size", batch_size, 1, None)  # -1 gave accuracy 0.0, silently
    x, y = _images_and_labels(data)
    y = np.asarray(y)
    classes = int(model.layers[-1].weight.shape[0])
    if y.ndim != 1 or len(y) != len(x) or y.dtype.kind not in "iu" or y.min() < 0 or y.max() >= classes:
        raise ValueError(f"data labels must be {len(x)} integer class indices in [0, {classes - 1}] (one per "
                         f"image), got shape {list(y.shape)} of dtype {y.dtype}"
                         + (f" in [{y.min()}, {y.max()}]" if y.size else ""))
    pixels = to_pixels(x)
    correct = 0
    for start in range(0, len(pixels), batch_size):
        pred = model.forward_uint8(pixels[start:start + batch_size]).argmax(axis=1)
        correct += int((pred == y[start:start + batch_size]).sum())
    return correct / len(pixels)


# --------------------------------------------------------------------------- saving (labkit.zoo)
_LAYER_FIELDS = ("name", "kind", "in_scale", "in_zero_point", "out_scale", "out_zero_point", "relu", "params",
                 "in_shape", "out_shape")
_LAYER_ARRAYS = ("weight", "weight_scale", "bias", "multiplier", "shift", "row_sums")


def _to_plain(model: IntegerModel) -> tuple[dict, dict]:
    """``({"name", "layers": [plain fields per layer]}, {"layers.i.<array>": tensor})``; the packed
    kernels are not saved: ``_from_plain`` packs the same codes again."""
    layers, tensors = [], {}
    for i, layer in enumerate(model.layers):
        layers.append({name: getattr(layer, name) for name in _LAYER_FIELDS})
        for name in _LAYER_ARRAYS:
            if getattr(layer, name) is not None:
                tensors[f"layers.{i}.{name}"] = torch.from_numpy(np.ascontiguousarray(getattr(layer, name)))
    return {"name": model.name, "layers": layers}, tensors


def _from_plain(args: dict, tensors: dict) -> IntegerModel:
    layers = []
    for i, fields in enumerate(args["layers"]):
        arrays = {name: tensors.pop(f"layers.{i}.{name}").numpy() for name in _LAYER_ARRAYS
                  if f"layers.{i}.{name}" in tensors}
        layer = IntegerLayer(**fields, **arrays)
        if layer.weight is not None:
            layer.packed = _pack(layer)
        layers.append(layer)
    if tensors:
        raise ValueError(f"the state dict holds arrays no layer uses: {sorted(tensors)[:5]}")
    return IntegerModel(layers, args["name"])


architecture.register_object(IntegerModel, _to_plain, _from_plain)  # zoo.save_checkpoint(integer_model, path)
