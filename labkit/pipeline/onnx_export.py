"""Export labkit's integer-only model to ONNX in QDQ form and run it in onnxruntime.

Why build the graph ourselves (``onnx.helper``) instead of ``torch.onnx.export``? The model to deploy
is labkit's ``IntegerModel`` (chapter 04): its int8 weight codes, per-channel scales, int32 biases and
activation scales/zero points are already decided. ``torch.onnx`` would export a *float* torch model
and leave the quantization to another tool, which would choose different scales — the exported model
would not be the one whose accuracy we measured. Writing the graph from the integer model exports
exactly those numbers. The QDQ ("quantize-dequantize") form keeps every integer tensor and says where
it is quantized; a runtime fuses each ``DequantizeLinear → Conv/Gemm → QuantizeLinear`` into an integer
kernel (onnxruntime: ``QLinearConv``, ``QGemm``)::

    x ─Q(1/255, 0)─DQ─┬─ Conv(DQ(W int8, s_w[c]), DQ(b int32, s_in·s_w[c])) ─Relu─Q(s_out, z_out)─DQ─ …
                      …─ MaxPool ─ Flatten ─ Gemm(…) → float logits = s_in·s_w · (labkit's int32 logits)

Agreement is checked where it can be exact: every quantized activation (uint8) of onnxruntime lies within
1 LSB of labkit's (onnxruntime rounds ``acc·s_in·s_w/s_out`` in float, labkit with gemmlowp's fixed-point
multiplier; the two differ only at exact ties and in the multiplier's last bit). A layer that this QDQ
graph cannot express is refused with its name (``UnsupportedLayerError``).

Explained in notebooks/14_pipeline_tradeoffs_export.ipynb
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from labkit.quant import integer
from labkit.validate import require_int, require_pair

__all__ = ["OPSET", "UnsupportedLayerError", "check_exportable", "to_onnx", "session", "run", "activations",
           "labkit_activations"]

OPSET = 17
EXPORTABLE = (nn.Conv2d, nn.Linear, nn.ReLU, nn.MaxPool2d, nn.Flatten, nn.Identity, nn.Dropout, nn.BatchNorm1d,
              nn.BatchNorm2d)


class UnsupportedLayerError(TypeError):
    """A layer the QDQ export cannot express; the message names it."""


def check_exportable(model: nn.Module) -> None:
    """``UnsupportedLayerError`` naming the first layer of ``model`` that the QDQ graph cannot express.

    The graph is built from labkit's integer-only model, so the model must be an ``nn.Sequential`` of
    Conv2d (no groups, no dilation, zero padding), Linear, ReLU, MaxPool2d, Flatten, Dropout and
    BatchNorm (folded), ending in a Linear. Explained in notebooks/14_pipeline_tradeoffs_export.ipynb
    """
    if not isinstance(model, nn.Sequential):
        raise UnsupportedLayerError(f"model {type(model).__name__} is not an nn.Sequential: its forward() is Python "
                                    "code (a residual add, a branch) that labkit's integer model, and so this QDQ "
                                    "export, has no node for")
    for name, module in model.named_children():
        if not isinstance(module, EXPORTABLE) or type(module) is nn.Sequential:
            raise UnsupportedLayerError(f"layer {name!r} ({type(module).__name__}) cannot be exported: the QDQ graph "
                                        f"has integer forms only for {', '.join(t.__name__ for t in EXPORTABLE)}")
        if isinstance(module, nn.Conv2d) and (module.groups != 1 or module.dilation != (1, 1)
                                              or module.padding_mode != "zeros"):
            raise UnsupportedLayerError(f"layer {name!r} (Conv2d with groups={module.groups}, dilation="
                                        f"{module.dilation}, padding_mode={module.padding_mode!r}) cannot be exported: "
                                        "labkit's int8 convolution has no grouped, dilated or non-zero-padded form")


def _const(name: str, array: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.ascontiguousarray(array), name)


class _Graph:
    """Nodes and initializers, appended layer by layer."""

    def __init__(self):
        self.nodes, self.inits, self.tapped = [], [], []

    def add(self, op: str, inputs: list, output: str, **attrs) -> str:
        self.nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output

    def const(self, name: str, array: np.ndarray) -> str:
        self.inits.append(_const(name, array))
        return name

    def requantize(self, x: str, layer: integer.IntegerLayer) -> str:
        """``Q(x; scale, zp) → DQ``: the uint8 activation (kept in ``tapped`` with its shape) and its float view."""
        name, scale, zero_point = layer.name, layer.out_scale, layer.out_zero_point
        s = self.const(f"{name}.scale", np.array(scale, dtype=np.float32))
        z = self.const(f"{name}.zero_point", np.array(zero_point, dtype=np.uint8))
        q = self.add("QuantizeLinear", [x, s, z], f"{name}.q")
        self.tapped.append((q, ["N", *layer.out_shape]))
        return self.add("DequantizeLinear", [q, s, z], f"{name}.dq")


def _weights(g: _Graph, layer: integer.IntegerLayer) -> tuple[str, str | None]:
    """DQ(int8 weight, per-channel scale) and DQ(int32 bias, s_in·s_w)."""
    scale = np.asarray(layer.weight_scale, dtype=np.float32)
    w_q = g.const(f"{layer.name}.weight_q", layer.weight.astype(np.int8))
    w_s = g.const(f"{layer.name}.weight_scale", scale)
    w_z = g.const(f"{layer.name}.weight_zero_point", np.zeros(scale.shape, dtype=np.int8))
    w = g.add("DequantizeLinear", [w_q, w_s, w_z], f"{layer.name}.weight", axis=0)
    if layer.bias is None:
        return w, None
    b_q = g.const(f"{layer.name}.bias_q", layer.bias.astype(np.int32))
    b_s = g.const(f"{layer.name}.bias_scale", (layer.in_scale * np.asarray(layer.weight_scale, np.float64)).astype(np.float32))
    b_z = g.const(f"{layer.name}.bias_zero_point", np.zeros(scale.shape, dtype=np.int32))
    return w, g.add("DequantizeLinear", [b_q, b_s, b_z], f"{layer.name}.bias", axis=0)


def _layer(g: _Graph, layer: integer.IntegerLayer, x: str) -> str:
    """Append one integer layer; return the name of its (float, dequantized) output."""
    if layer.kind in ("conv", "linear", "logits"):
        w, b = _weights(g, layer)
        inputs = [x, w] + ([b] if b else [])
        if layer.kind == "conv":
            (ph, pw), stride = layer.params["padding"], list(layer.params["stride"])
            y = g.add("Conv", inputs, f"{layer.name}.conv", strides=stride, pads=[ph, pw, ph, pw])
        else:
            y = g.add("Gemm", inputs, f"{layer.name}.gemm" if layer.kind == "linear" else "logits", transB=1)
        if layer.kind == "logits":
            return y
        if layer.relu:
            y = g.add("Relu", [y], f"{layer.name}.relu")
        return g.requantize(y, layer)
    if layer.kind == "maxpool":
        k = require_pair("kernel_size", layer.params["kernel_size"], 1)
        s = k if layer.params["stride"] is None else require_pair("stride", layer.params["stride"], 1)
        p = require_pair("padding", layer.params["padding"], 0)
        y = g.add("MaxPool", [x], f"{layer.name}.maxpool", kernel_shape=list(k), strides=list(s),
                  pads=[p[0], p[1], p[0], p[1]])
        return g.requantize(y, layer)
    if layer.kind == "flatten":
        return g.add("Flatten", [x], f"{layer.name}.flatten", axis=1)
    if layer.kind == "relu":
        return g.requantize(g.add("Relu", [x], f"{layer.name}.relu"), layer)
    raise UnsupportedLayerError(f"layer {layer.name!r} of kind {layer.kind!r} has no QDQ translation")


def to_onnx(model: integer.IntegerModel, path, *, expose_activations: bool = False) -> Path:
    """Write ``model`` (an ``IntegerModel`` from ``quant.integer.convert_to_integer``) as an ONNX QDQ graph.

    Input ``x`` float32 ``[N, C, H, W]`` pixels in [0, 1]; output ``logits`` float32 ``[N, classes]``
    = ``logit_scale`` × labkit's int32 logits. With ``expose_activations`` every quantized activation
    (uint8) is a graph output too, named ``<layer>.q``, for layer-by-layer comparison. The file is
    checked by ``onnx.checker`` and written atomically; returns its path.
    Explained in notebooks/14_pipeline_tradeoffs_export.ipynb
    """
    if isinstance(model, nn.Module):
        check_exportable(model)
        raise TypeError("to_onnx exports an IntegerModel: convert the float model first with "
                        "labkit.quant.integer.convert_to_integer(model, calib_data)")
    if not isinstance(model, integer.IntegerModel):
        raise TypeError(f"model must be a labkit IntegerModel, got {type(model).__name__}")
    g = _Graph()
    s_in = g.const("input.scale", np.array(integer.INPUT_SCALE, dtype=np.float32))
    z_in = g.const("input.zero_point", np.array(integer.INPUT_ZERO_POINT, dtype=np.uint8))
    x = g.add("DequantizeLinear", [g.add("QuantizeLinear", ["x", s_in, z_in], "input.q"), s_in, z_in], "input.dq")
    for layer in model.layers:
        x = _layer(g, layer, x)
    shape = ["N", *model.layers[0].in_shape]
    classes = int(model.layers[-1].weight.shape[0])
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", classes])]
    if expose_activations:
        outputs += [helper.make_tensor_value_info(name, TensorProto.UINT8, shape) for name, shape in g.tapped]
    graph = helper.make_graph(g.nodes, f"labkit-{model.name}", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                              shape)], outputs, g.inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="labkit")
    onnx.checker.check_model(proto, full_check=True)
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    onnx.save(proto, str(tmp))
    os.replace(tmp, path)
    return path


def session(path, threads: int = 1):
    """An ``onnxruntime.InferenceSession`` of ``path`` on the CPU with ``threads`` intra-op threads and
    every graph optimisation (QDQ fusion into integer kernels) enabled."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = require_int("threads", threads, 1)
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run(sess, x) -> np.ndarray:
    """Float logits ``[N, classes]`` of an onnxruntime session for float pixels ``x`` ``[N, C, H, W]``."""
    x = np.ascontiguousarray(np.asarray(x.numpy() if hasattr(x, "numpy") else x, dtype=np.float32))
    return sess.run(["logits"], {"x": x})[0]


def activations(sess, x) -> dict[str, np.ndarray]:
    """Every exposed uint8 activation ``{layer: array}`` of a session of a ``expose_activations`` export."""
    x = np.ascontiguousarray(np.asarray(x.numpy() if hasattr(x, "numpy") else x, dtype=np.float32))
    names = [o.name for o in sess.get_outputs() if o.name.endswith(".q")]
    return {n.removesuffix(".q"): a for n, a in zip(names, sess.run(names, {"x": x}))}


def labkit_activations(model: integer.IntegerModel, x) -> dict[str, np.ndarray]:
    """labkit's uint8 output of every requantizing layer (conv, linear, maxpool, relu) for float pixels ``x``."""
    out, h = {}, integer.to_pixels(x)
    for layer in model.layers:
        h = np.ascontiguousarray(layer.run(h))
        if layer.kind in ("conv", "linear", "maxpool", "relu"):
            out[layer.name] = h
    return out
