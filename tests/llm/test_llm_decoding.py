"""Decoding with a KV cache, the int4 layer's prepared kernel weights, W8A8 on the int8 kernels, and the
decoding-speed table's plumbing (no timing asserts: speed is measured in benchmarks/llm_table.py)."""
import copy
import io

import numpy as np
import pytest
import torch
from torch import nn

from labkit import kernels
from labkit.llm import int4
from labkit.llm.decoding import (FreeLinear, GreedyDecoder, decoding_speed, large_layer_speed, linear_weight_bytes,
                                 without_linears)
from labkit.llm.int8_kernel import Int8KernelLinear, to_int8_kernel_model
from labkit.llm.model import GPTConfig, KVCache, TinyGPT, generate, linear_layers
from labkit.llm.rtn import rtn_quantize
from labkit.llm.weight_only import quantize_weights

SMALL = GPTConfig(vocab_size=11, context=16, d_model=32, n_head=2, n_layer=2)
KERNEL = pytest.mark.skipif(not int4.kernel_status()[0], reason="the compiled int4 kernel is not built")


def small_model(seed=0):
    torch.manual_seed(seed)
    model = TinyGPT(SMALL).eval()
    for p in model.parameters():          # away from GPT-2's tiny init, so that the logits differ
        p.data.normal_(0, 0.3)
    return model


def ids(length, seed=1):
    return torch.randint(0, 11, (1, length), generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def test_the_kv_cache_gives_the_logits_of_the_whole_window():
    model, x = small_model(), ids(16)
    full = model(x)
    cache = KVCache(2)
    pieces = [model(x[:, :5], cache=cache), model(x[:, 5:8], cache=cache)]   # a prompt, then 3 at once
    pieces += [model(x[:, t:t + 1], cache=cache) for t in range(8, 16)]       # then one at a time
    assert cache.length == 16 and cache.keys[0].shape == (1, 2, 16, 16)
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="holds 16 positions: 1 more exceed the model's context=16"):
        model(x[:, :1], cache=cache)
    with pytest.raises(TypeError, match=r"KVCache\(2\)"):
        model(x, cache=KVCache(3))
    with pytest.raises(ValueError, match="n_layer"):
        KVCache(0)


@torch.no_grad()
def test_generate_with_the_cache_continues_as_without_it_also_past_the_context():
    model, prompt = small_model(), ids(3)[0]
    plain = generate(model, prompt, 30)                      # 33 > context 16: the window slides
    assert torch.equal(generate(model, prompt, 30, use_cache=True), plain)
    sampled = generate(model, prompt, 10, temperature=1.0, seed=4)
    assert torch.equal(generate(model, prompt, 10, temperature=1.0, seed=4, use_cache=True), sampled)
    with pytest.raises(TypeError, match="use_cache"):
        generate(model, prompt, 2, use_cache="yes")


def int4_layer(seed=0, k=128, n=48, bias=True):
    g = torch.Generator().manual_seed(seed)
    w, b = torch.randn(n, k, generator=g), torch.randn(n, generator=g)
    return int4.Int4Linear(rtn_quantize(w, 4, 32), b if bias else None)


@KERNEL
@torch.no_grad()
def test_int4_linear_prepares_the_kernel_once_and_again_when_a_buffer_changes():
    layer, x = int4_layer(), torch.randn(2, 3, 128)
    reference = int4_layer()
    reference.backend = "torch"
    torch.testing.assert_close(layer(x), reference(x), rtol=1e-5, atol=1e-5)
    prepared = layer.kernel_weights()
    assert layer.kernel_weights() is prepared and isinstance(prepared, kernels.Int4Weights)
    layer.scale.mul_(2)                                       # in place: the version counter moves
    assert layer.kernel_weights() is not prepared
    reference.scale.mul_(2)
    torch.testing.assert_close(layer(x), reference(x), rtol=1e-5, atol=1e-5)
    layer.load_state_dict(int4_layer(seed=1).state_dict())  # copied in: new weights
    torch.testing.assert_close(layer(x), int4_layer(seed=1)(x), rtol=1e-5, atol=1e-5)
    layer.bias = torch.zeros(48)                              # a buffer replaced
    torch.testing.assert_close(layer(x), int4_layer(seed=1, bias=False)(x), rtol=1e-5, atol=1e-5)
    twin = copy.deepcopy(layer)
    assert twin._kernel_cache is None and torch.equal(twin(x), layer(x))
    buffer = io.BytesIO()
    torch.save(layer, buffer)
    buffer.seek(0)
    assert torch.equal(torch.load(buffer, weights_only=False)(x), layer(x))
    with pytest.raises(ValueError, match="the layer has K = 128"):
        layer(torch.randn(2, 64))
    grad_x = torch.randn(1, 128, requires_grad=True)          # no autograd through the kernel: detached
    with torch.enable_grad():
        torch.testing.assert_close(layer(grad_x), layer(grad_x.detach()), rtol=0, atol=0)


def dequantized_w8a8(layer: Int8KernelLinear, x: torch.Tensor) -> torch.Tensor:
    """The float64 product of the dequantized operands (the module docstring's formula)."""
    rows = x.reshape(-1, layer.in_features).double()
    lo, hi = rows.min(1).values.clamp(max=0), rows.max(1).values.clamp(min=0)
    scale = (hi - lo) / 255
    zero = torch.round(-lo / scale)
    codes = (torch.round(rows / scale[:, None]) + zero[:, None]).clamp(0, 255)
    weight = layer.weight_codes.double() * layer.weight_scale.double()[:, None]
    return ((codes - zero[:, None]) * scale[:, None]) @ weight.T + layer.bias.double()


@torch.no_grad()
def test_int8_kernel_linear_is_the_w8a8_formula_on_the_int8_kernels():
    torch.manual_seed(0)
    fp = nn.Linear(128, 384)
    layer = Int8KernelLinear(fp)
    x = torch.randn(5, 7, 128) * torch.linspace(0.1, 3, 128)
    y = layer(x)
    assert y.shape == (5, 7, 384) and y.dtype == torch.float32
    assert layer.weight_codes.dtype == torch.int8 and int(layer.weight_codes.abs().max()) == 127
    np.testing.assert_allclose(y.reshape(-1, 384).double().numpy(), dequantized_w8a8(layer, x).numpy(),
                               rtol=1e-5, atol=1e-5)
    error = (y - fp(x)).abs().max() / fp(x).abs().max()
    assert 1e-4 < error < 0.02                                 # quantized (not exact), and close
    assert torch.equal(copy.deepcopy(layer)(x), y)
    x_const = torch.zeros(1, 128)                              # a zero row: scale clamped, no NaN
    torch.testing.assert_close(layer(x_const), fp.bias.detach()[None], rtol=0, atol=0)
    with pytest.raises(TypeError, match="nn.Linear"):
        Int8KernelLinear(nn.Conv2d(1, 1, 1))
    with pytest.raises(ValueError, match="input features"):
        layer(torch.randn(2, 64))


@torch.no_grad()
def test_decoding_speed_reports_every_model_with_its_weight_bytes():
    model = small_model()
    models = {"fp32": model, "int8": to_int8_kernel_model(model)}
    if int4.kernel_status()[0]:
        models["int4"] = int4.to_int4_model(quantize_weights(model, "rtn", 4, 16), "kernel")
    out = decoding_speed(models, ids(1), new_tokens=15, rounds=2, repeats=1)
    assert list(out) == list(models)
    assert out["fp32"]["speedup"] == 1.0
    linear = 2 * (32 * 96 + 32 * 32 + 32 * 128 + 128 * 32)
    biases = 2 * (96 + 32 + 128 + 32)
    assert out["fp32"]["weight_bytes"] == 4 * (linear + biases)
    assert out["int8"]["weight_bytes"] == linear + 4 * biases + 4 * biases    # codes, scales, biases
    if "int4" in out:
        groups = 2 * (96 * 2 + 32 * 2 + 128 * 2 + 32 * 8)   # group 16
        assert out["int4"]["weight_bytes"] == linear // 2 + 5 * groups + 4 * biases
    for row in out.values():
        assert 0 < row["p10"] <= row["tokens_per_s"] <= row["p90"]
    assert linear_weight_bytes(model) == out["fp32"]["weight_bytes"]
    with pytest.raises(ValueError, match="T0 \\+ new_tokens <= 16"):
        GreedyDecoder(model, 15)(ids(2))
    with pytest.raises(ValueError, match="new_tokens"):
        GreedyDecoder(model, 16)
    with pytest.raises(TypeError, match="TinyGPT"):
        GreedyDecoder(nn.Linear(2, 2), 3)
    assert torch.equal(GreedyDecoder(model, 5)(ids(2)), generate(model, ids(2)[0], 5))


@torch.no_grad()
def test_the_amdahl_bound_model_and_the_large_layer_timing():
    model = small_model()
    bound = without_linears(model)
    assert all(isinstance(m, FreeLinear) for m in linear_layers(bound).values())
    assert not any(isinstance(m, FreeLinear) for m in linear_layers(model).values())       # the original untouched
    assert bound(ids(4)).shape == (1, 4, 11) and linear_weight_bytes(bound) == 0
    big = large_layer_speed(256, 64, rounds=2, repeats=1)
    assert big["fp32_bytes"] == 4 * (256 * 256 + 256)
    assert big["int4_bytes"] == 256 * 128 + 5 * 256 * 4 + 4 * 256
    assert big["fp32_us"] > 0 and big["int4_us"] > 0 and big["speedup"] > 0
    with pytest.raises(ValueError, match="size"):
        large_layer_speed(32)
