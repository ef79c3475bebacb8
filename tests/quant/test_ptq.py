"""labkit.quant.ptq: BN folding, static PTQ on real (tiny) models, dynamic quantization vs torch."""
import warnings
from collections import OrderedDict

import pytest
import torch
from torch import nn

from labkit.quant.affine import fake_quantize, weight_qparams
from labkit.quant.modules import (DynamicQuantLinear, QuantizedConv2d, QuantizedLinear, quantized_layer,
                                  unsupported_layers)
from labkit.quant.observers import OBSERVERS
from labkit.quant.ptq import calibrate, conv_bn_pairs, fold_batchnorm, quantize_dynamic, quantize_static
from labkit.train import evaluate


def _randomise_bn(model: nn.Module) -> nn.Module:
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g))
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.randn(n, generator=g))
            m.bias.data.copy_(torch.randn(n, generator=g))
    return model.eval()


def _conv_bn_net():
    return _randomise_bn(nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(1, 4, 3, padding=1, bias=False)), ("bn1", nn.BatchNorm2d(4)), ("relu1", nn.ReLU()),
        ("conv2", nn.Conv2d(4, 6, 3, groups=2)), ("bn2", nn.BatchNorm2d(6)), ("relu2", nn.ReLU()),
        ("flatten", nn.Flatten()), ("fc", nn.Linear(6 * 6 * 6, 8)), ("bn3", nn.BatchNorm1d(8)),
        ("out", nn.Linear(8, 3))])))


def test_fold_batchnorm_is_numerically_exact_in_eval_mode():
    model = _conv_bn_net()
    x = torch.randn(5, 1, 8, 8)
    folded = fold_batchnorm(model)
    assert not any(isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) for m in folded.modules())
    assert folded.conv1.bias is not None  # a bias is created when the conv had none
    assert torch.allclose(folded(x), model(x), atol=1e-5, rtol=1e-5)
    assert isinstance(model.bn1, nn.BatchNorm2d)  # the input model is untouched


def test_fold_batchnorm_on_a_resnet_uses_the_traced_graph():
    from labkit.models import build
    model = _randomise_bn(build("resnet"))
    pairs = conv_bn_pairs(model)
    assert ("layer2.conv1", "layer2.bn1") in pairs and ("layer2.shortcut.conv", "layer2.shortcut.bn") in pairs
    x = torch.rand(2, 1, 28, 28)
    assert torch.allclose(fold_batchnorm(model)(x), model(x), atol=1e-4, rtol=1e-4)


class _Untraceable(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3))

    def forward(self, x):
        if x.sum() > 0:  # data-dependent control flow: torch.fx cannot trace this
            return self.body(x)
        return self.body(-x)


def test_fold_batchnorm_falls_back_to_sequential_adjacency():
    model = _randomise_bn(_Untraceable())
    x = torch.rand(2, 1, 6, 6)
    folded = fold_batchnorm(model)
    assert isinstance(folded.body[1], nn.Identity)
    assert torch.allclose(folded(x), model(x), atol=1e-5)


def test_static_ptq_8_bit_keeps_accuracy_within_one_point(trained_mlp, blobs):
    float_acc = evaluate(trained_mlp, blobs["test"])
    qmodel = quantize_static(trained_mlp, blobs["train"], weight_bits=8, act_bits=8, num_batches=2, batch_size=256)
    assert abs(evaluate(qmodel, blobs["test"]) - float_acc) <= 0.01
    layers = [m for m in qmodel.modules() if isinstance(m, QuantizedLinear)]
    assert len(layers) == 3
    assert layers[0].input_qparams is not None and layers[1].input_qparams is None  # inputs already on grid
    assert layers[0].relu and layers[1].relu and not layers[2].relu
    assert layers[0].weight_codes.dtype == torch.int8 and layers[0].weight_qparams.scale.shape == (64,)


@pytest.mark.parametrize("observer", [name for name in OBSERVERS if name != "minmax"])
def test_static_ptq_with_every_observer(trained_mlp, blobs, observer):
    kwargs = {"bins": 256} if observer in ("histogram", "percentile", "mse", "entropy") else {}
    qmodel = quantize_static(trained_mlp, blobs["train"][0][:512], observer=observer, observer_kwargs=kwargs)
    assert abs(evaluate(qmodel, blobs["test"]) - evaluate(trained_mlp, blobs["test"])) <= 0.02


def test_quantized_layers_simulate_integer_inference(trained_mlp, blobs):
    qmodel = quantize_static(trained_mlp, blobs["train"][0][:256], weight_bits=4, act_bits=6, per_channel=False)
    fc1 = qmodel[1]
    codes = fc1.weight_codes
    assert int(codes.min()) >= -8 and int(codes.max()) <= 7 and fc1.weight_qparams.scale.dim() == 0
    assert torch.equal(fc1.weight, (codes.float() - 0) * fc1.weight_qparams.scale)
    y = fc1(blobs["test"][0][:16].flatten(1))
    assert torch.equal(fake_quantize(y, fc1.output_qparams), y)  # outputs sit on the activation grid
    assert fc1.nbytes() == 64 * 64 // 2 + 4 + 64 * 4


def test_static_ptq_on_lenet5_and_a_resnet():
    from labkit.models import build
    torch.manual_seed(0)
    x = torch.rand(32, 1, 28, 28)
    for name in ("lenet5", "resnet"):
        model = _randomise_bn(build(name))
        qmodel = quantize_static(model, x, num_batches=1)
        kinds = {type(m) for m in qmodel.modules()}
        assert QuantizedConv2d in kinds and QuantizedLinear in kinds
        ref, out = model(x), qmodel(x)
        cos = torch.nn.functional.cosine_similarity(ref.flatten(), out.flatten(), dim=0)
        assert cos > 0.99, name


@pytest.mark.parametrize("name", ["lenet300", "lenet5", "vgg", "resnet", "mobilenet"])
def test_every_zoo_model_is_supported_and_fully_quantized(name):
    from labkit.models import build
    model = _randomise_bn(build(name))
    assert unsupported_layers(model) == []
    qmodel = quantize_static(model, torch.rand(8, 1, 28, 28), num_batches=1)
    assert not any(type(m) in (nn.Conv2d, nn.Linear) for m in qmodel.modules())  # no layer left in float


@pytest.mark.parametrize("model", [
    nn.Sequential(nn.Conv1d(1, 2, 3), nn.Flatten(), nn.Linear(2 * 6, 3)),
    nn.Sequential(nn.Flatten(), nn.Linear(8, 8), nn.Unflatten(1, (1, 8)), nn.Sequential(nn.ConvTranspose1d(1, 1, 1)),
                  nn.Flatten(), nn.Linear(8, 3)),
], ids=["conv1d", "nested-convtranspose"])
def test_quantize_static_refuses_layers_it_would_leave_float(model):
    x = torch.rand(4, 1, 8)
    bad = unsupported_layers(model)
    assert len(bad) == 1
    name, layer = bad[0]
    with pytest.raises(TypeError, match=rf"'{name}' \({type(layer).__name__}\).*supported: nn\.Conv2d and nn\.Linear"):
        quantize_static(model, x)


def test_unsupported_layers_names_each_weight_bearing_module_it_cannot_handle():
    model = nn.Sequential(OrderedDict([
        ("embed", nn.Embedding(10, 8)), ("rnn", nn.Sequential(nn.LSTM(8, 8))), ("attn", nn.MultiheadAttention(8, 2)),
        ("conv3d", nn.Conv3d(1, 1, 1)), ("norm", nn.LayerNorm(8)), ("bn", nn.BatchNorm1d(8)), ("act", nn.GELU()),
        ("pool", nn.AdaptiveAvgPool2d(1)), ("fc", nn.Linear(8, 2))]))
    assert [(n, type(m).__name__) for n, m in unsupported_layers(model)] == [
        ("embed", "Embedding"), ("rnn.0", "LSTM"), ("attn", "MultiheadAttention"), ("conv3d", "Conv3d"),
        ("norm", "LayerNorm")]
    gru = nn.GRU(2, 2)
    assert unsupported_layers(gru) == [("", gru)]
    with pytest.raises(TypeError, match=r"'<model>' \(GRU\)"):
        quantize_static(gru, torch.rand(4, 2))


def test_calibrate_counts_batches_and_accepts_many_data_forms(blobs):
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 2))
    x, y = blobs["train"]
    assert calibrate(model, x, batch_size=500) == 4
    assert calibrate(model, (x, y), num_batches=2, batch_size=100) == 2
    assert calibrate(model, torch.utils.data.TensorDataset(x, y), batch_size=1000) == 2
    assert calibrate(model, [(x[:10], y[:10]), (x[10:20], y[10:20])]) == 2
    assert calibrate(model, torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x[:50]), batch_size=25)) == 2


def test_dynamic_quantization_matches_torch(trained_mlp, blobs):
    tq = pytest.importorskip("torch.ao.quantization")
    x = blobs["test"][0][:256]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = tq.quantize_dynamic(trained_mlp, {nn.Linear}, dtype=torch.qint8)(x)
    # fbgemm (x86) keeps activations in 7 bits: reduce_range=True reproduces it
    ours = quantize_dynamic(trained_mlp, bits=8, reduce_range=True)
    assert sum(isinstance(m, DynamicQuantLinear) for m in ours.modules()) == 3
    assert torch.allclose(ours(x), theirs, atol=1e-4)
    full = quantize_dynamic(trained_mlp)(x)  # 8-bit activations: still close to torch and to float
    ref = trained_mlp(x)
    assert (full - theirs).abs().max() < 0.02 * ref.abs().max()
    assert (full - ref).abs().max() <= (theirs - ref).abs().max() * 1.5


def test_dynamic_quantization_measures_each_batch():
    layer = nn.Linear(4, 3)
    q = DynamicQuantLinear(layer, bits=8)
    small = torch.tensor([[0.1, 0.2, 0.3, 0.4]])
    big = torch.tensor([[100.0, -100.0, 50.0, 1.0]])
    alone = q(small)
    together = q(torch.cat([small, big]))[:1]  # a wider batch range: coarser activation steps
    assert torch.allclose(alone, layer(small), atol=2e-3)
    assert not torch.equal(alone, together)
    assert q(torch.zeros(0, 4)).shape == (0, 3)


# --------------------------------------------------------------------------- bad input
def test_empty_calibration_set_raises(trained_mlp):
    with pytest.raises(ValueError, match="calib"):
        quantize_static(trained_mlp, torch.zeros(0, 1, 8, 8))
    with pytest.raises(ValueError, match="calib"):
        quantize_static(trained_mlp, [])


def test_bad_arguments_raise(trained_mlp, blobs):
    x = blobs["train"][0][:64]
    with pytest.raises(TypeError, match="model"):
        quantize_static("lenet5", x)
    with pytest.raises(ValueError, match="Conv2d or nn.Linear"):
        quantize_static(nn.Sequential(nn.ReLU()), x)
    with pytest.raises(ValueError, match="weight_bits"):
        quantize_static(trained_mlp, x, weight_bits=0)
    with pytest.raises(ValueError, match="act_bits"):
        quantize_static(trained_mlp, x, act_bits=17)
    with pytest.raises(ValueError, match="observer"):
        quantize_static(trained_mlp, x, observer="kl")
    with pytest.raises(ValueError, match="num_batches"):
        quantize_static(trained_mlp, x, num_batches=0)
    with pytest.raises(ValueError, match="finite"):
        quantize_static(trained_mlp, torch.full((4, 1, 8, 8), float("nan")))
    with pytest.raises(TypeError, match="batches"):
        quantize_static(trained_mlp, ["not a tensor"])
    with pytest.raises(TypeError, match="data"):
        quantize_static(trained_mlp, 3)
    with pytest.raises(ValueError, match="nn.Linear"):
        quantize_dynamic(nn.Sequential(nn.Conv2d(1, 1, 1)))
    with pytest.raises(TypeError, match="model"):
        fold_batchnorm(None)


def test_unsupported_layer_types_raise():
    conv1d = nn.Conv1d(1, 2, 3)
    with pytest.raises(TypeError, match="layer"):
        quantized_layer(conv1d, weight_qparams(conv1d.weight))
    with pytest.raises(TypeError, match="layer"):
        QuantizedLinear(nn.Conv2d(1, 2, 3), weight_qparams(torch.zeros(2, 1, 3, 3)))
    reflect = nn.Conv2d(1, 2, 3, padding=1, padding_mode="reflect")
    with pytest.raises(ValueError, match="padding_mode"):
        quantized_layer(reflect, weight_qparams(reflect.weight))
    with pytest.raises(TypeError, match="layer"):
        DynamicQuantLinear(nn.Conv2d(1, 1, 1))
    # the supported types are dispatched to the layer that computes their operation
    conv = nn.Conv2d(2, 3, 3, stride=2, padding=1)
    qconv = quantized_layer(conv, weight_qparams(conv.weight, bits=16))
    x = torch.randn(2, 2, 7, 7)
    assert isinstance(qconv, QuantizedConv2d)
    assert torch.allclose(qconv(x), conv(x), atol=1e-4)  # 16-bit weights: the float convolution
