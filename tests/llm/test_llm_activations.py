"""SmoothQuant, LLM.int8() and the int4 layout: exactness where the maths says exact, gains where it says better."""
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from labkit.llm.activations import capture_inputs, channel_absmax, inject_outlier_channels, outlier_ratio
from labkit.llm.int4 import Int4Linear, dequantize_int4, pack_int4, unpack_int4
from labkit.llm.llm_int8 import Int8MixedLinear, llm_int8_model
from labkit.llm.model import GPTConfig, TinyGPT, linear_layers
from labkit.llm.rtn import rtn_quantize
from labkit.llm.smoothquant import W8A8Linear, fake_quant_int8, smooth_model, smoothing_scales, w8a8_model
from labkit.llm.storage import nbytes_on_disk
from labkit.llm.weight_only import GroupQuantLinear, quantize_weights

CFG = GPTConfig(vocab_size=13, context=16, d_model=64, n_head=2, n_layer=2)


def model_and_ids(seed=0):
    torch.manual_seed(seed)
    model = TinyGPT(CFG).eval()
    with torch.no_grad():                        # trained-looking LayerNorms: spread gains
        for block in model.blocks:
            for ln in (block.ln1, block.ln2):
                ln.weight.uniform_(0.5, 1.5)
    ids = torch.randint(0, 13, (16, 16), generator=torch.Generator().manual_seed(seed))
    return model, ids


def outlier_activations(seed=0, n=512, inp=64, outliers=(3, 17), gain=40.0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, inp, generator=g)
    x[:, list(outliers)] *= gain
    return x


def test_smoothing_scales_formula():
    act = torch.tensor([4.0, 1.0, 9.0])
    w = torch.tensor([[1.0, -2.0, 0.5], [0.25, 1.0, -1.0]])
    s = smoothing_scales(act, w, alpha=0.5)
    torch.testing.assert_close(s, torch.tensor([2 / 1.0, 1 / 2 ** 0.5, 3 / 1.0]))
    with pytest.raises(ValueError, match="alpha"):
        smoothing_scales(act, w, alpha=1.5)


@torch.no_grad()
def test_smoothing_lowers_w8a8_error_on_outlier_channels_and_is_exact_in_float():
    x = outlier_activations()
    layer = nn.Linear(64, 32)
    ref = layer(x)
    naive = F.linear(fake_quant_int8(x), fake_quant_int8(layer.weight, "channel"), layer.bias)
    s = smoothing_scales(channel_absmax(x), layer.weight, 0.5)
    smoothed = nn.Linear(64, 32)
    with torch.no_grad():
        smoothed.weight.copy_(layer.weight * s), smoothed.bias.copy_(layer.bias)
    torch.testing.assert_close(smoothed(x / s), ref, rtol=1e-4, atol=1e-4)           # float: unchanged
    smooth_out = W8A8Linear(smoothed)(x / s)
    err = lambda y: float(((y - ref) ** 2).mean())
    assert err(smooth_out) < 0.2 * err(naive)


@torch.no_grad()
def test_smooth_model_equals_the_original_in_float_and_helps_w8a8_with_outliers():
    model, ids = model_and_ids()
    outliers = inject_outlier_channels(model, [5, 40], factor=40.0)
    ref = model(ids)
    torch.testing.assert_close(outliers(ids), ref, rtol=1e-4, atol=1e-4)           # the injection is exact
    stats = {k: channel_absmax(v) for k, v in capture_inputs(outliers, ids).items()}
    assert outlier_ratio(stats["blocks.0.attn.qkv"]) > 20
    smoothed = smooth_model(outliers, stats, 0.5)
    torch.testing.assert_close(smoothed(ids), ref, rtol=1e-4, atol=1e-4)
    err = lambda m: float(((m(ids) - ref) ** 2).mean())
    assert err(w8a8_model(smoothed)) < 0.5 * err(w8a8_model(outliers))
    with pytest.raises(ValueError, match="no statistics for blocks.0.attn.qkv"):
        smooth_model(model, {}, 0.5)


@torch.no_grad()
def test_llm_int8_threshold_zero_is_the_float_input_times_the_int8_weight():
    g = torch.Generator().manual_seed(0)
    layer = nn.Linear(64, 32)
    x = torch.randn(40, 64, generator=g)
    mixed = Int8MixedLinear(layer, threshold=0.0)
    ws = layer.weight.abs().amax(1, keepdim=True) / 127.5                          # symmetric int8 per row
    w_hat = torch.round(layer.weight / ws).clamp(-128, 127) * ws
    torch.testing.assert_close(mixed.weight(), w_hat, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(mixed(x), F.linear(x, mixed.weight(), layer.bias), rtol=0, atol=0)
    assert bool(mixed.last_outliers.all())


@torch.no_grad()
def test_llm_int8_regular_part_is_vectorwise_int8_and_outliers_help():
    x = outlier_activations()
    layer = nn.Linear(64, 32)
    ref = layer(x)
    none = Int8MixedLinear(layer, threshold=1e9)                 # above every activation: plain W8A8
    xs = x.abs().amax(1, keepdim=True) / 127.5                 # symmetric int8 per token row
    ws = layer.weight.abs().amax(1, keepdim=True) / 127.5      # per output row
    xq = torch.round(x / xs).clamp(-128, 127)
    wq = torch.round(layer.weight / ws).clamp(-128, 127)
    by_hand = (xq.double() @ wq.double().T * xs.double() * ws.double().T).float() + layer.bias
    torch.testing.assert_close(none(x), by_hand, rtol=1e-5, atol=1e-5)
    mixed = Int8MixedLinear(layer)                                 # the paper's 6.0
    err = lambda y: float(((y - ref) ** 2).mean())
    assert err(mixed(x)) < 0.2 * err(none(x))
    assert mixed.last_outliers.nonzero().flatten().tolist() == [3, 17]


@torch.no_grad()
def test_llm_int8_finds_outliers_in_each_forward_pass_not_from_calibration():
    layer = nn.Linear(64, 32)
    mixed = Int8MixedLinear(layer)
    calm = outlier_activations(gain=1.0)
    mixed(calm)
    assert not bool(mixed.last_outliers.any())                   # no |x| ≥ 6 in this batch
    loud = outlier_activations(seed=1, outliers=(9,), gain=40.0)  # a channel never seen before
    mixed(loud)
    assert mixed.last_outliers.nonzero().flatten().tolist() == [9]
    err = lambda y: float(((y - layer(loud)) ** 2).mean())
    assert err(mixed(loud)) < 0.2 * err(Int8MixedLinear(layer, threshold=1e9)(loud))
    with pytest.raises(ValueError, match="threshold"):
        Int8MixedLinear(layer, threshold=-1.0)


@torch.no_grad()
def test_llm_int8_model_threshold_zero_is_the_w8a16_model():
    model, ids = model_and_ids()
    mixed = llm_int8_model(model, 0.0)
    w8 = quantize_weights(model, "rtn", 8, None)                   # int8 per row, asymmetric: close, not equal
    torch.testing.assert_close(mixed(ids), model(ids), rtol=0.05, atol=0.05)
    assert float((mixed(ids) - model(ids)).abs().max()) < 2 * float((w8(ids) - model(ids)).abs().max()) + 1e-3


@torch.no_grad()
@pytest.mark.parametrize("kind", ["w8a8", "smoothquant", "llm.int8", "int4", "int4-awq"])
def test_every_compressed_file_reads_back_with_bit_identical_outputs(tmp_path, kind):
    from labkit.llm.int4 import to_int4_model
    from labkit.llm.storage import load_compressed, save_compressed
    model, ids = model_and_ids()
    stats = {k: channel_absmax(v) for k, v in capture_inputs(model, ids).items()}
    build = {"w8a8": lambda: w8a8_model(model, "token"),
             "smoothquant": lambda: w8a8_model(smooth_model(model, stats, 0.5)),
             "llm.int8": lambda: llm_int8_model(inject_outlier_channels(model, [5], 40.0)),
             "int4": lambda: to_int4_model(quantize_weights(model, "rtn", 4, 16)),
             "int4-awq": lambda: to_int4_model(quantize_weights(model, "awq", 4, 32, ids))}[kind]
    compressed = build()
    size = save_compressed(compressed, tmp_path / "m.pt")
    again = load_compressed(tmp_path / "m.pt")
    assert size == (tmp_path / "m.pt").stat().st_size
    assert torch.equal(again(ids), compressed(ids))
    assert [type(m) for m in linear_layers(again).values()] == [type(m) for m in linear_layers(compressed).values()]
    if kind == "w8a8":
        assert all(m.act_granularity == "token" for m in linear_layers(again).values())
    if kind.startswith("int4"):
        assert all(m.group_size == (16 if kind == "int4" else 32) for m in linear_layers(again).values())


def test_int4_pack_unpack_is_bit_exact_and_nibble_ordered():
    codes = torch.arange(16, dtype=torch.uint8).repeat(3, 2)          # [3, 32], every value
    packed = pack_int4(codes)
    assert packed.shape == (3, 16) and packed[0, 0] == 0x10 and packed[0, 7] == 0xFE
    assert torch.equal(unpack_int4(packed), codes)
    with pytest.raises(ValueError, match=r"\[0, 15\]"):
        pack_int4(torch.full((2, 4), 16, dtype=torch.uint8))
    with pytest.raises(ValueError, match="even"):
        pack_int4(torch.zeros(2, 3, dtype=torch.uint8))


def test_int4_linear_matches_the_dequantized_layer():
    g = torch.Generator().manual_seed(0)
    w, b = torch.randn(32, 128, generator=g), torch.randn(32, generator=g)
    q = rtn_quantize(w, 4, 64)
    layer = Int4Linear(q, b)
    torch.testing.assert_close(dequantize_int4(layer.packed, layer.scale, layer.zero_point, 64), q.weight(),
                               rtol=0, atol=0)
    x = torch.randn(5, 128, generator=g)
    torch.testing.assert_close(layer(x), F.linear(x, q.weight(), b), rtol=1e-5, atol=1e-5)
    assert layer.packed.numel() == 32 * 128 // 2
    with pytest.raises(ValueError, match="4-bit"):
        Int4Linear(rtn_quantize(w, 3, 64))


def test_quantize_weights_on_a_model_refuses_bad_settings_and_shrinks_the_file():
    model, ids = model_and_ids()
    with pytest.raises(ValueError, match="needs calibration ids"):
        quantize_weights(model, "gptq", 4, 32)
    with pytest.raises(ValueError, match=r"bits must be an integer in \[2, 8\]"):
        quantize_weights(model, "rtn", 1, 32)
    with pytest.raises(ValueError, match="group_size must divide the input width 64"):
        quantize_weights(model, "rtn", 4, 48)
    with pytest.raises(ValueError, match="longer than the model's context"):
        quantize_weights(model, "awq", 4, 32, torch.zeros(2, 17, dtype=torch.long))
    fp = nbytes_on_disk(model)
    sizes = {}
    for method in ("rtn", "gptq", "gptq-act", "awq", "awq-clip"):
        q = quantize_weights(model, method, 4, 32, ids)
        assert all(isinstance(m, GroupQuantLinear) for m in linear_layers(q).values())
        assert torch.isfinite(q(ids)).all()
        sizes[method] = nbytes_on_disk(q)
    linear_params = sum(m.weight.numel() for m in linear_layers(model).values())
    saved = fp - sizes["rtn"]
    assert saved > 0.85 * linear_params * (4 - 0.5 - 5 / 32)     # ~3.3 bytes saved per quantized weight
    assert sizes["awq"] > sizes["rtn"]                            # AWQ also stores its input scales
    assert sizes["gptq-act"] == sizes["gptq"] == sizes["rtn"] and sizes["awq-clip"] == sizes["awq"]


@torch.no_grad()
@pytest.mark.parametrize("method, bits", [("rtn", 3), ("gptq", 4), ("gptq-act", 3), ("awq", 4), ("awq-clip", 3)])
def test_the_file_on_disk_holds_the_whole_weight_only_model(tmp_path, method, bits):
    from labkit.llm.storage import load_compressed, save_compressed
    model, ids = model_and_ids()
    q = quantize_weights(model, method, bits, 32, ids)
    size = save_compressed(q, tmp_path / "m.pt")
    assert size == (tmp_path / "m.pt").stat().st_size
    again = load_compressed(tmp_path / "m.pt")
    assert torch.equal(again(ids), q(ids))
    for name, layer in linear_layers(again).items():
        assert torch.equal(layer.quantized.codes, linear_layers(q)[name].quantized.codes)
    blob = torch.load(tmp_path / "m.pt", weights_only=True)
    blob["layers"]["blocks.0.mlp.fc1"]["kind"] = "fp4"
    torch.save(blob, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="has kind 'fp4'"):
        load_compressed(tmp_path / "bad.pt")


def fake_kernel(x, packed, scale, zero_point, group_size, bias=None):
    """A numpy stand-in with the compiled kernel's signature (labkit.kernels.int4_linear)."""
    import numpy as np
    codes = np.stack([packed & 0x0F, packed >> 4], axis=2).reshape(packed.shape[0], -1).astype(np.float32)
    w = ((codes.reshape(packed.shape[0], -1, group_size) - zero_point[..., None]) * scale[..., None])
    out = x @ w.reshape(packed.shape[0], -1).T
    return (out if bias is None else out + bias).astype(np.float32)


class FakeWeights:
    """A numpy stand-in for labkit.kernels.Int4Weights (prepared once, called with x only)."""

    def __init__(self, packed, scale, zero_point, group_size, bias=None):
        self.args = (packed, scale, zero_point, group_size, bias)

    def forward(self, x):
        return fake_kernel(x, *self.args)


@torch.no_grad()
def test_int4_linear_uses_the_compiled_kernel_where_available_and_torch_otherwise(monkeypatch):
    from labkit import kernels
    from labkit.llm import int4
    g = torch.Generator().manual_seed(0)
    w, b = torch.randn(32, 128, generator=g), torch.randn(32, generator=g)
    q = rtn_quantize(w, 4, 64)
    x = torch.randn(2, 5, 128, generator=g)
    available, reason = int4.kernel_status()
    assert isinstance(available, bool) and reason
    torch_layer = Int4Linear(q, b, backend="torch")
    assert not torch_layer.uses_kernel()
    torch.testing.assert_close(torch_layer(x), F.linear(x, q.weight(), b), rtol=0, atol=0)
    monkeypatch.setattr(kernels, "Int4Weights", FakeWeights, raising=False)
    monkeypatch.setattr(int4, "kernel_status", lambda: (True, "fake kernel"))
    auto = Int4Linear(q, b)
    assert auto.uses_kernel()
    torch.testing.assert_close(auto(x), torch_layer(x), rtol=1e-5, atol=1e-5)
    assert auto(x).shape == (2, 5, 32)
    monkeypatch.setattr(int4, "kernel_status", lambda: (False, "no kernel in this build"))
    assert not Int4Linear(q, b).uses_kernel()
    with pytest.raises(RuntimeError, match="no kernel in this build"):
        Int4Linear(q, b, backend="kernel")(x)
    with pytest.raises(ValueError, match="backend"):
        Int4Linear(q, b, backend="gpu")
