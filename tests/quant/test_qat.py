"""labkit.quant.qat: prepare / train / convert, QAT beats PTQ at 4 bits, freezing, progressive bits."""
from collections import OrderedDict

import pytest
import torch
from torch import nn

from labkit.quant.fake_quant import FakeQuantize, LSQQuantizer, PACTQuantizer
from labkit.quant.modules import QATLayer, QuantizedLinear
from labkit.quant.ptq import quantize_static
from labkit.quant.qat import convert, fit_progressive, freeze_observers, prepare_qat, qat_layers, set_bits
from labkit.train import evaluate, fit


def test_prepare_qat_inserts_quantizers_and_folds_bn():
    model = nn.Sequential(OrderedDict([("conv", nn.Conv2d(1, 4, 3)), ("bn", nn.BatchNorm2d(4)), ("relu", nn.ReLU()),
                                       ("flatten", nn.Flatten()), ("fc", nn.Linear(4 * 6 * 6, 3))])).eval()
    qat = prepare_qat(model, weight_bits=4, act_bits=4)
    assert qat.training and not model.training
    assert not any(isinstance(m, nn.BatchNorm2d) for m in qat.modules())
    conv, fc = qat_layers(qat)
    assert conv.relu and conv.input_quant is not None and fc.input_quant is None
    assert isinstance(conv.weight_quant, FakeQuantize) and conv.weight_quant.bits == 4
    lsq = prepare_qat(model, quantizer="lsq")
    assert isinstance(qat_layers(lsq)[0].weight_quant, LSQQuantizer)
    pact = prepare_qat(model, quantizer="pact")
    assert isinstance(qat_layers(pact)[0].output_quant, PACTQuantizer)
    assert isinstance(qat_layers(pact)[1].output_quant, FakeQuantize)  # logits: no ReLU to clip


def _conv_bn_net() -> nn.Sequential:
    """Conv-BN-ReLU-Linear with non-trivial BN statistics, so that folding BN changes the weights."""
    g = torch.Generator().manual_seed(0)
    model = nn.Sequential(OrderedDict([("conv", nn.Conv2d(1, 4, 3)), ("bn", nn.BatchNorm2d(4)), ("relu", nn.ReLU()),
                                       ("flatten", nn.Flatten()), ("fc", nn.Linear(4 * 6 * 6, 3))]))
    with torch.no_grad():
        model.bn.running_mean.copy_(torch.rand(4, generator=g) - 0.5)
        model.bn.running_var.copy_(torch.rand(4, generator=g) * 2 + 0.2)
        model.bn.weight.copy_(torch.rand(4, generator=g) + 0.5)
        model.bn.bias.copy_(torch.rand(4, generator=g) - 0.5)
    return model.eval()


# 16-bit fake quantization is a rounding of about 1e-5 of the range; LSQ's initial step
# (2·mean|x|/√Q_P) is coarser, so its outputs move by ~1e-3 of the logits
@pytest.mark.parametrize("quantizer,atol", [("ste", 1e-3), ("lsq", 2e-2), ("pact", 1e-3)])
@pytest.mark.parametrize("fold_bn", [True, False])
def test_16_bit_qat_model_computes_the_float_function(quantizer, atol, fold_bn):
    model = _conv_bn_net()
    x = torch.rand(32, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    qat = prepare_qat(model, weight_bits=16, act_bits=16, quantizer=quantizer, fold_bn=fold_bn).eval()
    assert any(isinstance(m, nn.BatchNorm2d) for m in qat.modules()) == (not fold_bn)
    ref = model(x)
    assert (qat(x) - ref).abs().max() < atol * ref.abs().max()
    coarse = prepare_qat(model, weight_bits=2, act_bits=2, quantizer=quantizer, fold_bn=fold_bn).eval()
    assert (coarse(x) - ref).abs().max() > 10 * atol * ref.abs().max()  # the tolerance does tell bits apart


def test_prepare_qat_refuses_layers_it_would_leave_float():
    model = nn.Sequential(nn.Conv1d(1, 2, 3), nn.Flatten(), nn.Linear(2 * 6, 3))
    with pytest.raises(TypeError, match=r"'0' \(Conv1d\).*supported: nn\.Conv2d and nn\.Linear"):
        prepare_qat(model)


def test_qat_at_4_bits_beats_ptq_at_4_bits(trained_mlp, blobs):
    ptq = quantize_static(trained_mlp, blobs["train"][0][:500], weight_bits=4, act_bits=4)
    qat = prepare_qat(trained_mlp, weight_bits=4, act_bits=4)
    fit(qat, blobs["train"], epochs=2, lr=1e-3, batch_size=100, progress=False)
    ptq_acc, qat_acc = evaluate(ptq, blobs["test"]), evaluate(convert(qat), blobs["test"])
    assert qat_acc > ptq_acc + 0.005, (qat_acc, ptq_acc)


@pytest.mark.parametrize("quantizer", ["ste", "lsq", "pact"])
def test_gradients_reach_weights_and_learned_quantizers(trained_mlp, blobs, quantizer):
    qat = prepare_qat(trained_mlp, weight_bits=4, act_bits=4, quantizer=quantizer)
    x, y = blobs["train"][0][:64], blobs["train"][1][:64]
    nn.functional.cross_entropy(qat(x), y).backward()
    layer = qat_layers(qat)[0]
    assert layer.layer.weight.grad is not None and layer.layer.weight.grad.abs().sum() > 0
    if quantizer == "lsq":
        assert layer.weight_quant.step.grad is not None and layer.output_quant.step.grad is not None
    if quantizer == "pact":
        assert layer.output_quant.alpha.grad is not None


@pytest.mark.parametrize("quantizer", ["ste", "lsq", "pact"])
def test_convert_gives_the_same_outputs_as_the_qat_model(trained_mlp, blobs, quantizer):
    qat = prepare_qat(trained_mlp, weight_bits=4, act_bits=6, quantizer=quantizer)
    fit(qat, (blobs["train"][0][:300], blobs["train"][1][:300]), epochs=1, batch_size=100, progress=False)
    qat.eval()
    x = blobs["test"][0][:200]
    converted = convert(qat)
    assert all(isinstance(m, QuantizedLinear) for m in converted if not isinstance(m, (nn.Flatten, nn.Identity)))
    assert torch.allclose(converted(x), qat(x), atol=1e-5)
    assert converted[1].weight_codes.dtype == torch.int8
    assert int(converted[1].weight_codes.abs().max()) <= 8


def test_freeze_observers_fixes_the_activation_ranges(trained_mlp, blobs):
    qat = prepare_qat(trained_mlp, weight_bits=8, act_bits=8)
    x = blobs["train"][0][:100]
    qat(x)
    assert freeze_observers(qat) == 7  # 3 weights + 3 outputs + 1 input
    out_quant = qat_layers(qat)[0].output_quant
    before = out_quant.qparams().scale.clone()
    qat(x * 5)
    assert torch.equal(out_quant.qparams().scale, before)


def test_progressive_bit_lowering(trained_mlp, blobs):
    qat = prepare_qat(trained_mlp, weight_bits=8, act_bits=8)
    history = fit_progressive(qat, (blobs["train"][0][:400], blobs["train"][1][:400]),
                              schedule=[(8, 1), (4, 1), (2, 1)], batch_size=100, progress=False)
    assert [h["bits"] for h in history] == [8, 4, 2]
    assert all(q.bits == 2 for layer in qat_layers(qat) for q in layer.quantizers())
    codes = convert(qat)[1].weight_codes
    assert set(codes.unique().tolist()) <= {-2, -1, 0, 1}
    assert set_bits(qat, 3, activations=False) == 3


# --------------------------------------------------------------------------- bad input
def test_bad_arguments_raise(trained_mlp):
    with pytest.raises(ValueError, match="quantizer"):
        prepare_qat(trained_mlp, quantizer="dorefa")
    with pytest.raises(ValueError, match="weight_bits"):
        prepare_qat(trained_mlp, weight_bits=0)
    with pytest.raises(TypeError, match="per_channel"):
        prepare_qat(trained_mlp, per_channel="yes")
    with pytest.raises(TypeError, match="model"):
        prepare_qat([trained_mlp])
    with pytest.raises(ValueError, match="prepare_qat"):
        set_bits(trained_mlp, 4)
    with pytest.raises(ValueError, match="prepare_qat"):
        convert(trained_mlp)
    qat = prepare_qat(trained_mlp)
    with pytest.raises(ValueError, match="bits"):
        set_bits(qat, 17)
    with pytest.raises(ValueError, match="schedule"):
        fit_progressive(qat, torch.zeros(1), schedule=[])
    with pytest.raises(ValueError, match="bits"):
        fit_progressive(qat, torch.zeros(1), schedule=[(0, 1)])
    with pytest.raises(TypeError, match="layer"):
        QATLayer(nn.ReLU(), FakeQuantize(), None, None)
