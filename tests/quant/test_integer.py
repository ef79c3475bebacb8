"""labkit.quant.integer: integer-only LeNet-5 / LeNet-300-100 / SmallVGG on labkit.kernels."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from labkit import data, kernels, models, train, zoo
from labkit.quant.integer import IntegerLayer, IntegerModel, convert_to_integer, evaluate_integer, to_pixels


@pytest.fixture(scope="module")
def digits():
    return data.load("digits", "train"), data.load("digits", "test")


@pytest.fixture(scope="module")
def lenet5_int(digits):
    return convert_to_integer(zoo.pretrained("lenet5", "digits", progress=False), digits[0])


@pytest.mark.parametrize("name", ["lenet5", "lenet300"])
def test_accuracy_within_half_a_point_of_fp32(name, digits):
    train_set, test_set = digits
    model = zoo.pretrained(name, "digits", progress=False)
    fp32 = train.evaluate(model, test_set)
    integer = evaluate_integer(convert_to_integer(model, train_set), test_set)
    assert abs(integer - fp32) <= 0.005, (name, fp32, integer)


def test_vgg_with_batchnorm_converts(digits):
    train_set, test_set = digits
    model = zoo.pretrained("vgg", "digits", progress=False)
    im = convert_to_integer(model, train_set, num_batches=2)
    sub = data.eval_subset("digits", 128)
    assert abs(evaluate_integer(im, sub) - train.evaluate(model, sub)) <= 0.02
    assert "conv6" in im.describe() and all(layer.kind != "relu" for layer in im.layers)


def test_compiled_equals_reference_bit_exact(lenet5_int, digits):
    pixels = to_pixels(digits[1].tensors[0][:48])
    numpy_ref = lenet5_int.forward_uint8(pixels, reference=True)
    before = kernels.isa()
    try:
        outputs = {}
        for name in kernels.available_isas():
            kernels.set_isa(name)
            outputs[name] = lenet5_int.forward_uint8(pixels)
    finally:
        kernels.set_isa(before) if before in kernels.available_isas() else None
    for name, out in outputs.items():
        assert out.dtype == np.int32
        np.testing.assert_array_equal(out, numpy_ref, err_msg=name)


def test_float_call_and_predict_agree_with_uint8(lenet5_int, digits):
    x = digits[1].tensors[0][:16]
    logits = lenet5_int(x)
    np.testing.assert_array_equal(logits, lenet5_int.forward_uint8(to_pixels(x)))
    np.testing.assert_array_equal(lenet5_int.predict(x), logits.argmax(1))
    assert logits.shape == (16, 10)
    # the dequantized logits track the float model's
    float_logits = zoo.pretrained("lenet5", "digits", progress=False)(x).detach().numpy()
    assert np.abs(lenet5_int(x).astype(np.float64) * lenet5_int.logit_scale - float_logits).max() < 0.1 * np.abs(float_logits).max()


def test_describe_table(lenet5_int):
    text = lenet5_int.describe()
    for word in ("conv1", "pool1", "fc3", "logits", "shift", "multiplier"[:4]):
        assert word in text
    assert "IntegerModel(lenet5" in repr(lenet5_int)


def test_tiny_linear_hand_checkable():
    """One Linear + ReLU then a logits Linear: the hidden codes equal round(float / s_out) within 1 LSB."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([[0.5, -0.25, 1.0, 0.0], [-1.0, 0.5, 0.25, 0.75], [0.1, 0.2, 0.3, 0.4]]))
        model[1].bias.copy_(torch.tensor([0.1, -0.2, 0.05]))
    x = torch.tensor([[0, 51, 102, 255], [255, 0, 17, 34], [10, 20, 30, 40]], dtype=torch.float32) / 255
    im = convert_to_integer(model, x.reshape(3, 1, 2, 2))
    hidden = im.layers[1]
    assert hidden.kind == "linear" and hidden.relu and hidden.in_scale == pytest.approx(1 / 255)
    # int32 bias = round(b / (s_in s_w))
    expected_bias = np.rint(model[1].bias.detach().double().numpy() / (hidden.in_scale * hidden.weight_scale))
    np.testing.assert_array_equal(hidden.bias, expected_bias.astype(np.int32))
    codes = hidden.run(to_pixels(x).reshape(3, 4))
    real = torch.relu(model[1](x)).detach().double().numpy()
    expected = np.clip(np.rint(real / hidden.out_scale) + hidden.out_zero_point, 0, 255)
    assert np.abs(codes.astype(np.int64) - expected).max() <= 1
    # the logits layer: int32 accumulators × (s_in s_w) ≈ the float logits
    logits = im(x.reshape(3, 1, 2, 2)).astype(np.float64) * im.logit_scale
    np.testing.assert_allclose(logits, model(x).detach().numpy(), atol=0.03)


def test_errors(digits):
    train_set = digits[0]
    with pytest.raises(TypeError, match="BatchNorm|Dropout"):
        convert_to_integer(nn.Sequential(nn.Flatten(), nn.Linear(4, 2), nn.Dropout(), nn.Linear(2, 2)),
                           torch.rand(4, 1, 2, 2))
    with pytest.raises(TypeError, match="Dropout"):
        convert_to_integer(nn.Sequential(nn.Flatten(), nn.Dropout(), nn.Linear(4, 2)), torch.rand(4, 1, 2, 2))
    with pytest.raises(TypeError, match="Sequential"):
        convert_to_integer(models.build("resnet"), train_set)
    with pytest.raises(TypeError, match="Module"):
        convert_to_integer("lenet5", train_set)
    with pytest.raises(TypeError, match="IntegerModel"):
        evaluate_integer(models.build("lenet5"), train_set)
    im = convert_to_integer(models.build("lenet300"), torch.rand(8, 1, 28, 28))
    with pytest.raises(TypeError, match="uint8"):
        im.forward_uint8(np.zeros((1, 1, 28, 28), dtype=np.float32))
    assert isinstance(im, IntegerModel)


def test_logits_saturate_instead_of_wrapping():
    """An absurd int32 bias near ±2**31: the logits Σ(x − z_x)·w + bias are computed in int64 and
    saturated to int32 (as labkit.kernels.reference.qlinear does), on the compiled kernels and on the
    numpy reference alike; int32 arithmetic would wrap around to the opposite sign."""
    w = np.array([[127, 127, 127], [-128, -128, -128]], dtype=np.int8)
    bias = np.array([2**31 - 1, -(2**31)], dtype=np.int32)
    layer = IntegerLayer("fc", "logits", in_zero_point=200, weight=w, bias=bias, packed=kernels.PackedLinear(w),
                         row_sums=w.astype(np.int32).sum(axis=1))
    x = np.array([[255, 255, 255], [0, 0, 0], [200, 200, 200]], dtype=np.uint8)
    # row 0: x − z_x = 55 pushes both columns past the limits; row 1: −200 pulls both back inside;
    # row 2: x = z_x leaves exactly the bias
    exact = (x.astype(np.int64) - 200) @ w.astype(np.int64).T + bias
    assert exact[0, 0] > 2**31 - 1 and exact[0, 1] < -(2**31)
    expected = np.array([[2**31 - 1, -(2**31)], exact[1], [2**31 - 1, -(2**31)]], dtype=np.int64)
    for reference in (False, True):
        got = layer.run(x, reference=reference)
        assert got.dtype == np.int32
        np.testing.assert_array_equal(got, expected)


# --------------------------------------------------------------------------- issue 9: no silent answers
@pytest.fixture(scope="module")
def tiny_int():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
    x = torch.rand(32, 1, 4, 4)
    return convert_to_integer(model, x), x, model(x).argmax(1)


@pytest.mark.parametrize("batch_size, error", [(-1, ValueError), (0, ValueError), (2.5, TypeError)])
def test_evaluate_integer_names_a_bad_batch_size(tiny_int, batch_size, error):
    im, x, y = tiny_int
    assert evaluate_integer(im, (x, y), batch_size=7) > 0.8
    with pytest.raises(error, match="^batch_size must be an integer >= 1"):
        evaluate_integer(im, (x, y), batch_size=batch_size)  # before: -1 → 0.0, 0 → "range() arg 3"


def test_evaluate_integer_names_labels_that_are_not_class_indices(tiny_int):
    im, x, y = tiny_int
    for bad in (y + 3, y[:5], y.float()):
        with pytest.raises(ValueError, match=r"^data labels must be 32 integer class indices in \[0, 2\]"):
            evaluate_integer(im, (x, bad))


def test_nan_images_are_refused_not_classified(tiny_int):
    im = tiny_int[0]
    with pytest.raises(ValueError, match="^x holds 32 NaN"):
        im.predict(torch.full((2, 1, 4, 4), float("nan")))  # before: a class, for an all-NaN batch
    with pytest.raises(ValueError, match="^x holds 1 NaN or Inf"):
        x = torch.rand(1, 1, 4, 4)
        x[0, 0, 1, 2] = float("inf")
        evaluate_integer(im, (x, torch.tensor([0])))


def test_one_converter_per_layer_type_looked_up_by_type():
    from labkit.quant import integer

    class LeakyNamedReLU(nn.ReLU):                       # a subclass finds its base class's converter
        pass
    assert integer.converter_for(LeakyNamedReLU()) is integer.convert_relu
    assert integer.converter_for(nn.Flatten()) is integer.convert_flatten
    assert integer.converter_for(nn.Tanh()) is None
    stream = integer.Stream((4, 9, 9), 0.5, 3)
    layer = integer.convert_maxpool("pool", nn.MaxPool2d(2), stream)
    assert stream.shape == (4, 4, 4) and (layer.in_scale, layer.out_scale, layer.out_zero_point) == (0.5, 0.5, 3)
    assert integer.convert_flatten("flat", nn.Flatten(), stream).kind == "flatten" and stream.shape == (64,)
