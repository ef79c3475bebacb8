"""Issue 10: an observer and a QAT quantizer are each one class/function plus one registration, and
then work by name everywhere (make_observer, quantize_static, saving; prepare_qat, convert)."""
import pytest
import torch
from torch import nn

from labkit import architecture
from labkit.quant import observers, qat
from labkit.quant.fake_quant import FakeQuantize
from labkit.quant.modules import QuantizedLinear
from labkit.quant.observers import MinMaxObserver, make_observer, register_observer
from labkit.quant.ptq import quantize_static


class HalfRangeObserver(MinMaxObserver):
    """Min/max shrunk to half: clips the outer values (a toy observer, easy to check by hand)."""

    def range(self):
        return self.min_val / 2, self.max_val / 2


@pytest.fixture
def half_range():
    register_observer("half_range")(HalfRangeObserver)
    yield "half_range"
    del observers.OBSERVERS["half_range"]


def test_registered_observer_works_by_name_everywhere(half_range, trained_mlp, blobs):
    obs = make_observer(half_range, bits=8)
    obs(torch.tensor([-4.0, 0.0, 2.0]))
    lo, hi = obs.range()
    assert (float(lo), float(hi)) == (-2.0, 1.0)
    assert float(obs.calculate_qparams().scale) == pytest.approx(3.0 / 255)
    assert half_range in observers.OBSERVERS and list(observers.OBSERVERS)[:6] == [
        "minmax", "moving_average", "histogram", "percentile", "mse", "entropy"]
    x, _ = blobs["test"]
    qmodel = quantize_static(trained_mlp, x[:200], observer=half_range, act_bits=8)
    minmax = quantize_static(trained_mlp, x[:200], observer="minmax", act_bits=8)
    half_scales = [m.output_qparams.scale for m in qmodel.modules() if isinstance(m, QuantizedLinear)]
    full_scales = [m.output_qparams.scale for m in minmax.modules() if isinstance(m, QuantizedLinear)]
    for half, full in zip(half_scales, full_scales):
        torch.testing.assert_close(half, full / 2, rtol=1e-5, atol=1e-8)
    tree, state = architecture.describe(obs)                 # saveable: rebuilt with what it has seen
    rebuilt = architecture.build(tree, state)
    assert type(rebuilt) is HalfRangeObserver and torch.equal(rebuilt.min_val, obs.min_val)


def test_register_observer_refuses_taken_names_and_non_observers():
    with pytest.raises(ValueError, match="'minmax' is already registered"):
        register_observer("minmax")
    with pytest.raises(TypeError, match="decorates an Observer subclass"):
        register_observer("not_an_observer")(nn.Linear)
    assert "not_an_observer" not in observers.OBSERVERS


@pytest.fixture
def per_tensor_ste():
    def weight(bits, per_channel):                 # ignores per_channel: one range for the whole weight
        return FakeQuantize(observers.MovingAverageMinMaxObserver(1.0, bits, symmetric=True, signed=True),
                            always_observe=True)

    def activation(bits, after_relu):
        return FakeQuantize(observers.MovingAverageMinMaxObserver(0.01, bits))
    qat.register_quantizer("per_tensor_ste", weight, activation)
    yield "per_tensor_ste"
    del qat.QUANTIZERS["per_tensor_ste"]


def test_registered_qat_quantizer_is_used_by_prepare_qat_and_convert(per_tensor_ste, trained_mlp, blobs):
    qmodel = qat.prepare_qat(trained_mlp, 4, 8, quantizer=per_tensor_ste)
    layers = qat.qat_layers(qmodel)
    assert len(layers) == 3 and all(layer.weight_quant.qparams().scale.numel() == 1 for layer in layers)
    per_channel = qat.qat_layers(qat.prepare_qat(trained_mlp, 4, 8, quantizer="ste"))
    assert per_channel[0].weight_quant.qparams().scale.numel() == 64
    x, _ = blobs["test"]
    with torch.no_grad():
        qmodel(x[:256])                                  # the activation observers see data (train mode)
    converted = qat.convert(qmodel.eval())
    torch.testing.assert_close(converted(x[:64]), qmodel(x[:64]), rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="quantizer must be one of 'ste', 'lsq', 'pact', 'per_tensor_ste'"):
        qat.prepare_qat(trained_mlp, quantizer="nope")
    with pytest.raises(ValueError, match="already registered"):
        qat.register_quantizer("ste", lambda b, f: None, lambda b, f: None)
