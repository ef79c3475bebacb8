"""ONNX QDQ export of labkit's integer model: onnxruntime agrees within 1 LSB; refusals name the layer."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from labkit import models
from labkit.pipeline import onnx_export
from labkit.pipeline.onnx_export import UnsupportedLayerError
from labkit.pipeline.runtime import RuntimeModule
from labkit.quant import integer


@pytest.fixture
def integer_lenet5(lenet5, digits_train):
    return integer.convert_to_integer(lenet5, digits_train.tensors[0][:256])


def test_onnxruntime_matches_labkit_within_one_lsb(integer_lenet5, digits_test, tmp_path):
    path = onnx_export.to_onnx(integer_lenet5, tmp_path / "lenet5.onnx", expose_activations=True)
    sess = onnx_export.session(path)
    x, y = digits_test.tensors
    ours, theirs = onnx_export.labkit_activations(integer_lenet5, x), onnx_export.activations(sess, x)
    assert set(ours) == {"conv1", "pool1", "conv2", "pool2", "fc1", "fc2"} == set(theirs)
    for name in ours:
        assert ours[name].dtype == theirs[name].dtype == np.uint8
        assert np.abs(ours[name].astype(int) - theirs[name].astype(int)).max() <= 1, name
        assert (ours[name] != theirs[name]).mean() < 0.02, name                # rare ties, not a different model
    logits = onnx_export.run(sess, x)
    reference = integer_lenet5(x)
    assert (logits.argmax(1) == reference.argmax(1)).mean() > 0.99
    ratio = logits / integer_lenet5.logit_scale
    assert np.abs(ratio - reference).max() <= 0.02 * np.abs(reference).max()
    assert (logits.argmax(1) == y.numpy()).mean() == pytest.approx((reference.argmax(1) == y.numpy()).mean(), abs=0.01)


def test_the_graph_is_qdq_and_fuses_into_integer_kernels(integer_lenet5, tmp_path):
    import onnx

    proto = onnx.load(str(onnx_export.to_onnx(integer_lenet5, tmp_path / "m.onnx")))
    ops = [n.op_type for n in proto.graph.node]
    assert ops.count("QuantizeLinear") >= 5 and "Conv" in ops and "Gemm" in ops
    weights = {t.name: t for t in proto.graph.initializer}
    assert weights["conv1.weight_q"].data_type == onnx.TensorProto.INT8
    assert weights["conv1.bias_q"].data_type == onnx.TensorProto.INT32
    sess = onnx_export.session(tmp_path / "m.onnx")
    assert RuntimeModule(lambda a: onnx_export.run(sess, a), "onnxruntime")(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]             # written atomically, no leftovers


class Swish(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(x)


@pytest.mark.parametrize("model, message", [
    (nn.Sequential(nn.Flatten(), nn.Linear(784, 32), Swish(), nn.Linear(32, 10)), r"layer '2' \(Swish\) cannot be exported"),
    (models.build("resnet"), "SmallResNet is not an nn.Sequential"),
    (nn.Sequential(nn.Conv2d(1, 4, 3), nn.Conv2d(4, 4, 3, groups=4), nn.Flatten(), nn.Linear(576, 10)),
     r"layer '1' \(Conv2d with groups=4"),
    (models.build("mobilenet"), r"layer 'stem' \(Sequential\)"),
    (nn.Sequential(nn.Flatten(), nn.LSTM(4, 4)), r"layer '1' \(LSTM\)"),
])
def test_a_layer_the_graph_cannot_express_is_refused_with_its_name(model, message):
    with pytest.raises(UnsupportedLayerError, match=message):
        onnx_export.check_exportable(model)
    with pytest.raises(TypeError, match=message):
        onnx_export.to_onnx(model, "never-written.onnx")


def test_to_onnx_wants_an_integer_model(lenet5):
    with pytest.raises(TypeError, match="convert_to_integer"):
        onnx_export.to_onnx(lenet5, "never-written.onnx")
    with pytest.raises(TypeError, match="IntegerModel"):
        onnx_export.to_onnx("lenet5", "never-written.onnx")
