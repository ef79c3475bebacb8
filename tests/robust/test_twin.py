"""The straight-through twin: the quantized model's exact forward pass with a usable gradient."""
from __future__ import annotations

import pytest
import torch

from labkit import quant, robust, train
from labkit.quant import fake_quantize_ste


@pytest.fixture()
def static_int8(lenet300, digits):
    return quant.quantize_static(lenet300, digits[0].tensors[0][:256])


def test_twin_outputs_are_bit_identical_to_the_quantized_model(static_int8, digits):
    twin = robust.straight_through_twin(static_int8)
    x = digits[1].tensors[0]
    with torch.no_grad():
        assert torch.equal(twin(x), static_int8(x))


def test_qat_converted_models_have_a_twin_too(lenet300, digits):
    qat = quant.prepare_qat(lenet300, weight_bits=4, act_bits=4)
    train.fit(qat, digits[0], epochs=1, progress=False)
    converted = quant.convert(qat)
    twin = robust.straight_through_twin(converted)
    with torch.no_grad():
        assert torch.equal(twin(digits[1].tensors[0]), converted(digits[1].tensors[0]))


def test_twin_gradient_is_the_straight_through_one(static_int8, digits):
    x, y = digits[1].tensors[0][:16], digits[1].tensors[1][:16]
    got = robust.input_gradient(robust.straight_through_twin(static_int8), x, y)
    # the same network written out by hand with fake_quantize_ste at every activation quantizer
    xv = x.clone().requires_grad_(True)
    h = xv.flatten(1)
    for layer in (static_int8.fc1, static_int8.fc2, static_int8.fc3):
        if layer.input_qparams is not None:
            h = fake_quantize_ste(h, layer.input_qparams)
        h = torch.nn.functional.linear(h, layer.weight, layer.bias)
        h = torch.relu(h) if layer.relu else h
        if layer.output_qparams is not None:
            h = fake_quantize_ste(h, layer.output_qparams)
    (expected,) = torch.autograd.grad(torch.nn.functional.cross_entropy(h, y, reduction="sum"), xv)
    torch.testing.assert_close(got, expected)
    assert got.abs().sum() > 0


def test_attacking_through_the_twin_hurts_the_quantized_model(static_int8, digits):
    twin = robust.straight_through_twin(static_int8)
    clean = train.evaluate(static_int8, digits[1])
    attacked = robust.robust_correct(static_int8, digits[1], 0.1, source=twin).float().mean().item()
    assert attacked < clean - 0.3


def test_the_original_is_untouched_and_bad_models_are_refused(static_int8, lenet300):
    twin = robust.straight_through_twin(static_int8)
    assert isinstance(twin.fc1, robust.StraightThroughQuantized)
    assert isinstance(static_int8.fc1, quant.QuantizedLinear)
    with pytest.raises(TypeError, match="no QuantizedLinear"):
        robust.straight_through_twin(lenet300)
    with pytest.raises(TypeError, match="DynamicQuantLinear"):
        robust.straight_through_twin(quant.quantize_dynamic(lenet300))
    with pytest.raises(TypeError, match="layer"):
        robust.StraightThroughQuantized(lenet300.fc1)
