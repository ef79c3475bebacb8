"""One vocabulary for per-channel quantization (issue 10): ``affine.channel_view`` / ``from_channel_view`` /
``broadcast_channels`` and ``affine.weight_granularity`` / ``weight_qparams``, which observers, LSQ, the
layer wrappers, QAT, mixed precision, ``binary`` and ``quant.integer`` all call.

Each shared helper is compared, bit for bit, with the code that each file wrote for itself before
(the ``old_*`` functions below are those lines, kept here as the oracle), on random tensors with
several shapes and axes."""
import pytest
import torch
from torch import nn

from labkit.quant import affine, binary, integer
from labkit.quant.affine import (broadcast_channels, channel_view, from_channel_view, qparams_from_range, quantize,
                                 quantize_tensor, tensor_range, weight_granularity, weight_qparams)
from labkit.quant.fake_quant import LSQQuantizer, lsq_init_step
from labkit.quant.modules import DynamicQuantLinear
from labkit.quant.observers import MinMaxObserver, MovingAverageMinMaxObserver, PerChannelMinMaxObserver
from labkit.quant.qat import prepare_qat

SHAPES = [(7,), (5, 9), (4, 3, 6), (6, 2, 3, 3), (3, 1, 5, 5)]


def _random(shape, seed, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g) * torch.rand((), generator=g) * 10).to(dtype)


def _cases():
    for i, shape in enumerate(SHAPES):
        for axis in range(-len(shape), len(shape)):
            yield pytest.param(shape, axis, 31 * i + axis, id=f"{'x'.join(map(str, shape))}-axis{axis}")


# --------------------------------------------------------------------------- the old per-file code (oracle)
def old_observer_view(x, axis):            # observers.MinMaxObserver, fake_quant.lsq_init_step, affine.tensor_range
    return x.movedim(axis, 0).reshape(x.shape[axis], -1)


def old_grouped(x, axis, group_size):      # affine._grouped before issue 10
    moved = x.unsqueeze(0) if x.dim() == 1 else x.movedim(axis, 0)
    per_channel = moved[0].numel()
    return moved.reshape(moved.shape[0], per_channel // group_size, group_size)


def old_lsq_step_shape(step, x, axis):     # LSQQuantizer.forward, affine._broadcast, DynamicQuantLinear
    shape = [1] * x.dim()
    shape[axis] = -1
    return step.reshape(shape)


def old_channel_mean(x, per_channel):      # binary._channel_mean
    return x.mean(dim=tuple(range(1, x.dim())), keepdim=True) if per_channel else x.mean()


def old_weight_qparams(weight, bits=8, per_channel=True, symmetric=True):   # modules.weight_qparams
    granularity = "channel" if per_channel else "tensor"
    lo, hi = tensor_range(weight.detach(), granularity, axis=0)
    return qparams_from_range(lo, hi, bits, symmetric, signed=True, axis=0 if per_channel else None)


def old_symmetric_codes(w, per_channel):   # integer._symmetric_codes
    w = w.detach().double().reshape(w.shape[0], -1)
    amax = w.abs().amax(dim=1) if per_channel else w.abs().max().expand(w.shape[0])
    scale = torch.where(amax > 0, amax / 127, torch.ones_like(amax))
    codes = torch.clamp(torch.round(w / scale[:, None]), -127, 127).to(torch.int8)
    return codes.numpy(), scale.numpy()


# --------------------------------------------------------------------------- the channel view
@pytest.mark.parametrize("shape, axis, seed", list(_cases()))
def test_channel_view_is_the_old_reshape_and_goes_back(shape, axis, seed):
    x = _random(shape, seed)
    v = channel_view(x, axis)
    assert torch.equal(v, old_observer_view(x, axis)) and v.shape == (shape[axis], x.numel() // shape[axis])
    assert torch.equal(from_channel_view(v, x, axis), x)
    assert torch.equal(from_channel_view(v * 2, x, axis), x * 2)
    step = torch.rand(shape[axis]) + 0.1
    assert torch.equal(broadcast_channels(step, x.dim(), axis), old_lsq_step_shape(step, x, axis % x.dim()))
    assert torch.equal(x / broadcast_channels(step, x.dim(), axis),
                       from_channel_view(v / step[:, None], x, axis))
    lo, hi = tensor_range(x, "channel", axis)
    assert torch.equal(lo, v.amin(1)) and torch.equal(hi, v.amax(1))


def test_channel_view_of_a_transposed_tensor_and_bad_axes():
    x = _random((4, 5, 6), 0).transpose(0, 2)   # not contiguous
    assert torch.equal(channel_view(x, 1), old_observer_view(x, 1))
    assert torch.equal(from_channel_view(channel_view(x, 1), x, 1), x)
    for bad in (3, -4):
        with pytest.raises(ValueError, match=r"axis must be an integer in \[-3, 2\]"):
            channel_view(x, bad)
    with pytest.raises(TypeError, match="axis"):
        channel_view(x, 1.0)
    p = torch.tensor(2.0)
    assert broadcast_channels(p, 3, 1) is p and broadcast_channels(torch.ones(5), 3, None).shape == (5,)


@pytest.mark.parametrize("shape, axis, seed", [c for c in _cases() if c.values[0] != (7,)] +
                         [pytest.param((12,), 0, 5, id="1-D")])
def test_groups_are_cut_from_the_channel_view(shape, axis, seed):
    x = _random(shape, seed)
    axis = axis % x.dim()
    per_channel = x.numel() if x.dim() == 1 else x.numel() // shape[axis]
    for group_size in [d for d in range(1, per_channel + 1) if per_channel % d == 0]:
        g = affine._grouped(x, axis, group_size)
        assert torch.equal(g, old_grouped(x, axis, group_size))
        assert torch.equal(affine._ungrouped(g, x, axis), x)


@pytest.mark.parametrize("shape", [s for s in SHAPES if len(s) >= 2])
@pytest.mark.parametrize("seed", range(4))
def test_binary_channel_mean_equals_the_old_keepdim_mean(shape, seed):
    x = _random(shape, seed).abs()
    for per_channel in (False, True):
        new, old = binary._channel_mean(x, per_channel), old_channel_mean(x, per_channel)
        assert new.shape == old.shape and torch.equal(new, old)
    counts = binary.count_levels(torch.round(x), per_channel=True)
    assert counts.tolist() == [torch.unique(row).numel() for row in torch.round(x)]


# --------------------------------------------------------------------------- weights: one translation, one home
def test_weight_granularity_translates_the_model_level_switch():
    assert weight_granularity(True) == ("channel", 0)
    assert weight_granularity(False) == ("tensor", None)
    with pytest.raises(TypeError, match="per_channel must be True or False"):
        weight_granularity(1)


@pytest.mark.parametrize("shape", [s for s in SHAPES if len(s) >= 2])
@pytest.mark.parametrize("bits", [2, 4, 8])
def test_weight_qparams_full_variant_is_the_old_modules_function(shape, bits):
    w = _random(shape, bits)
    for per_channel in (True, False):
        for symmetric in (True, False):
            new, old = weight_qparams(w, bits, per_channel, symmetric), old_weight_qparams(w, bits, per_channel, symmetric)
            assert torch.equal(new.scale, old.scale) and torch.equal(new.zero_point, old.zero_point)
            assert (new.axis, new.granularity, new.qmin) == (old.axis, old.granularity, old.qmin)
            assert torch.equal(quantize(w, new), quantize(w, old))
    _, per_channel = quantize_tensor(w, bits, symmetric=True, signed=True, granularity="channel", axis=0)
    assert torch.equal(weight_qparams(w, bits).scale, per_channel.scale)


@pytest.mark.parametrize("shape", [s for s in SHAPES if len(s) >= 2])
@pytest.mark.parametrize("seed", range(3))
def test_restricted_variant_is_the_old_integer_codes(shape, seed):
    w = _random(shape, seed)
    w[0] = 0.0  # an all-zero channel: scale 1, codes 0
    for per_channel in (True, False):
        codes, scale = integer._symmetric_codes(w, per_channel)
        old_codes, old_scale = old_symmetric_codes(w, per_channel)
        assert codes.dtype == old_codes.dtype and (codes == old_codes).all()
        assert scale.dtype == old_scale.dtype and (scale == old_scale).all()
    qp = weight_qparams(w, 8, per_channel=True, variant="restricted")
    assert qp.scale.dtype == torch.float64 and (qp.qmin, qp.qmax, qp.levels) == (-127, 127, 255)
    assert float(qp.scale[0]) == 1.0
    q = quantize(w, qp)
    assert int(q.min()) >= -127 and torch.equal(quantize(-w, qp), -q)   # symmetric about 0: −w ↦ −q
    with pytest.raises(ValueError, match="variant='restricted' is a symmetric grid"):
        weight_qparams(w, 8, symmetric=False, variant="restricted")
    with pytest.raises(ValueError, match="variant must be one of 'full', 'restricted'"):
        weight_qparams(w, 8, variant="narrow")


def test_dynamic_linear_weights_come_from_weight_qparams():
    layer = nn.Linear(6, 4)
    for per_channel in (True, False):
        dyn = DynamicQuantLinear(layer, per_channel=per_channel)
        expected = weight_qparams(layer.weight, 8, per_channel)
        assert torch.equal(dyn.weight_qparams.scale, expected.scale)
        assert dyn.weight_qparams.granularity == ("channel" if per_channel else "tensor")


# --------------------------------------------------------------------------- observers and LSQ in the same words
@pytest.mark.parametrize("cls", [MinMaxObserver, MovingAverageMinMaxObserver])
@pytest.mark.parametrize("shape, axis, seed", [c for c in _cases() if len(c.values[0]) >= 2])
def test_observer_per_tensor_and_per_channel_match_quantize_tensor(cls, shape, axis, seed):
    x = _random(shape, seed)
    per_tensor, per_channel = cls(symmetric=True, signed=True), cls(symmetric=True, signed=True,
                                                                      granularity="channel", axis=axis)
    per_tensor(x), per_channel(x)
    qp_t, qp_c = per_tensor.calculate_qparams(), per_channel.calculate_qparams()
    _, want_t = quantize_tensor(x, 8, True, True, "tensor")
    _, want_c = quantize_tensor(x, 8, True, True, "channel", axis)
    assert qp_t.granularity == "tensor" and qp_t.axis is None and torch.equal(qp_t.scale, want_t.scale)
    assert qp_c.granularity == "channel" and qp_c.axis == axis % x.dim() and torch.equal(qp_c.scale, want_c.scale)
    assert torch.equal(per_channel.min_val.min(), per_tensor.min_val)          # the tensor's range is the
    assert torch.equal(per_channel.max_val.max(), per_tensor.max_val)          # union of the channels'
    assert "granularity='channel'" in repr(per_channel) and "granularity" not in repr(per_tensor)


def test_per_channel_observer_is_minmax_with_granularity_channel():
    x = _random((5, 4, 3), 1)
    a, b = PerChannelMinMaxObserver(axis=1), MinMaxObserver(granularity="channel", axis=1)
    a(x), b(x)
    assert a.granularity == "channel" and torch.equal(a.calculate_qparams().scale, b.calculate_qparams().scale)


@pytest.mark.parametrize("shape, axis, seed", [c for c in _cases() if len(c.values[0]) >= 2])
def test_lsq_per_tensor_and_per_channel(shape, axis, seed):
    x = _random(shape, seed)
    assert torch.equal(lsq_init_step(x, 4, True, "channel", axis),
                       (2 * old_observer_view(x.abs(), axis % x.dim()).mean(1) / 7 ** 0.5).clamp_min(1e-8))
    tensor_q, channel_q = LSQQuantizer(4, signed=True), LSQQuantizer(4, signed=True, granularity="channel", axis=axis)
    out_t, out_c = tensor_q(x), channel_q(x)
    assert tensor_q.step.shape == () and channel_q.step.shape == (shape[axis],)
    assert tensor_q.qparams().axis is None and channel_q.qparams().axis == axis % x.dim()
    # every channel given the per-tensor step: the same output as per tensor
    with torch.no_grad():
        channel_q.step.copy_(tensor_q.step.detach().expand(shape[axis]))
    assert torch.equal(channel_q(x), out_t) and out_c.shape == x.shape


def test_qat_turns_per_channel_into_granularity_channel_axis_0():
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 5), nn.ReLU(), nn.Linear(5, 3))
    for quantizer in ("ste", "lsq", "pact"):
        for per_channel in (True, False):
            layer = prepare_qat(model, per_channel=per_channel, quantizer=quantizer)[1]
            wq = layer.weight_quant
            granularity = (wq.observer if quantizer != "lsq" else wq).granularity
            assert granularity == weight_granularity(per_channel)[0]
            assert wq.qparams().scale.shape == ((5,) if per_channel else ())


@pytest.mark.parametrize("shape", [s for s in SHAPES if len(s) >= 2])
def test_ternary_error_alpha_per_channel_is_the_old_keepdim_max(shape):
    w = _random(shape, 7)
    for per_channel in (False, True):
        w_hat = binary.ternarize(w.double(), per_channel, 0.7)
        old = w_hat.abs().amax(dim=tuple(range(1, w.dim())), keepdim=True) if per_channel else w_hat.abs().max()
        assert binary.ternary_error(w, 0.7, per_channel)["alpha"] == float(old.mean())
