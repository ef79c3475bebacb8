"""Tests for labkit.measure: counts, MACs, latency, bit packing and bytes on disk per format."""
import math
import struct
import sys
import time

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from labkit import measure
from labkit.measure import (FILE_HEADER_BYTES, STORAGE_FORMATS, count_nonzeros, count_parameters,
                            load_serialized, macs, pack_bits, serialize, size_on_disk,
                            tensor_header_bytes, total_macs, unpack_bits)


def small_cnn() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(6 * 14 * 14, 10))


def sparse_linear(n: int, density: float, bias: bool = False) -> nn.Linear:
    """An n×n Linear whose weight keeps a random ``density`` fraction of its entries."""
    torch.manual_seed(0)
    layer = nn.Linear(n, n, bias=bias)
    with torch.no_grad():
        layer.weight.mul_(torch.rand(n, n) < density)
    return layer


def expected_file_bytes(state: dict, encodings: dict, payloads: dict) -> int:
    return FILE_HEADER_BYTES + sum(tensor_header_bytes(k, encodings[k], state[k].dim()) + payloads[k]
                                   for k in state)


# ---------------------------------------------------------------- counts

def test_linear_parameter_count_and_macs():
    layer = nn.Linear(784, 300)
    assert count_parameters(layer) == 235_500 == sum(p.numel() for p in layer.parameters())
    [row] = macs(layer, (784,))
    assert (row.type, row.output_shape, row.params, row.macs) == ("Linear", (300,), 235_500, 235_200)


def test_count_parameters_matches_torch_on_cnn():
    net = small_cnn()
    assert count_parameters(net) == sum(p.numel() for p in net.parameters()) == 156 + 12 + 11_770


def test_sys_getsizeof_does_not_track_parameter_count():
    tiny, big = nn.Linear(2, 2), nn.Linear(2000, 2000)
    assert count_parameters(big) > 500_000 * count_parameters(tiny)
    assert sys.getsizeof(tiny) == sys.getsizeof(big)            # the seed's "model size"
    assert sys.getsizeof(big) < 1_000 < 4 * count_parameters(big)
    assert size_on_disk(big, "fp32") > 4 * count_parameters(big)  # the real one


def test_count_nonzeros_respects_pruning_mask():
    layer = nn.Linear(10, 10)
    with torch.no_grad():
        layer.bias.zero_()
    prune.l1_unstructured(layer, "weight", amount=0.3)
    assert count_parameters(layer) == 110                      # weight_orig still counts in full
    assert int(torch.count_nonzero(layer.weight_orig)) == 100  # the raw parameter is dense
    assert count_nonzeros(layer) == 70
    assert measure.sparsity(layer) == pytest.approx(40 / 110)


def test_effective_state_dict_merges_mask():
    layer = nn.Linear(4, 3)
    prune.random_unstructured(layer, "weight", amount=0.5)
    state = measure.effective_state_dict(layer)
    assert list(state) == ["bias", "weight"]
    assert torch.equal(state["weight"], layer.weight_orig.detach() * layer.weight_mask)


def test_sparsity_of_empty_model_is_an_error():
    with pytest.raises(ValueError, match="no parameters"):
        measure.sparsity(nn.ReLU())


# ---------------------------------------------------------------- MACs

def test_conv_macs_lenet_first_layer():
    [row] = macs(nn.Conv2d(1, 6, 5, padding=2), (1, 28, 28))
    assert row.output_shape == (6, 28, 28)
    assert row.macs == 6 * 28 * 28 * 25 == 117_600
    assert row.params == 6 * 25 + 6


def test_depthwise_strided_dilated_conv_macs():
    depthwise = nn.Conv2d(8, 8, 3, padding=1, groups=8)
    assert total_macs(depthwise, (8, 10, 10)) == 8 * 10 * 10 * 9
    grouped = nn.Conv2d(8, 16, 3, stride=2, padding=2, dilation=2, groups=4)
    out = (10 + 2 * 2 - 2 * (3 - 1) - 1) // 2 + 1           # = 5
    assert total_macs(grouped, (8, 10, 10)) == 16 * out * out * (8 // 4) * 9


def test_macs_of_sequential_and_nonzero_macs():
    net = small_cnn()
    rows = macs(net, (1, 28, 28))
    assert [(r.name, r.type) for r in rows] == [("0", "Conv2d"), ("5", "Linear")]
    assert total_macs(net, (1, 28, 28)) == 117_600 + 1176 * 10
    with torch.no_grad():
        net[5].weight[:5].zero_()                              # half the output neurons' weights
    assert measure.nonzero_macs(net, (1, 28, 28)) == 117_600 + 1176 * 5


def test_macs_restores_training_mode():
    net = small_cnn().train()
    net[1].eval()
    macs(net, (1, 28, 28))
    assert net.training and net[0].training and not net[1].training


@pytest.mark.parametrize("shape", [(), 784, (0, 28), (1, -2), (1.0, 28), "1x28x28", (True,)])
def test_bad_input_shape(shape):
    with pytest.raises(ValueError, match="input_shape"):
        macs(nn.Linear(3, 2), shape)


def test_input_shape_that_does_not_fit_the_model():
    with pytest.raises(ValueError, match="does not fit"):
        total_macs(nn.Linear(3, 2), (4,))


@pytest.mark.parametrize("fn", [count_parameters, count_nonzeros, measure.sparsity,
                                lambda m: macs(m, (3,)), lambda m: measure.report(m, (3,))])
def test_non_module_is_a_type_error(fn):
    with pytest.raises(TypeError, match="nn.Module"):
        fn([nn.Linear(3, 2)])


# ---------------------------------------------------------------- latency

def test_latency_keys_and_order():
    net = nn.Linear(16, 4).train()
    result = measure.latency(net, torch.randn(2, 16), warmup=1, repeats=5, threads=1)
    assert set(result) == {"median_ms", "p10_ms", "p90_ms", "repeats"}
    assert result["repeats"] == 5
    assert 0 < result["p10_ms"] <= result["median_ms"] <= result["p90_ms"]
    assert net.training


@pytest.mark.parametrize("kwargs, error", [({"warmup": -1}, ValueError), ({"repeats": 0}, ValueError),
                                           ({"repeats": 2.5}, TypeError), ({"threads": 0}, ValueError)])
def test_latency_argument_errors(kwargs, error):
    with pytest.raises(error):
        measure.latency(nn.Linear(2, 2), torch.zeros(1, 2), **kwargs)


def test_latency_warmup_calls_are_not_timed():
    class SlowStart(nn.Module):
        """Sleeps 0.2 s on its first calls, like a cold cache or a lazily built kernel."""

        def __init__(self, slow_calls):
            super().__init__()
            self.slow_calls, self.calls = slow_calls, 0

        def forward(self, x):
            self.calls += 1
            if self.calls <= self.slow_calls:
                time.sleep(0.2)
            return x

    net = SlowStart(slow_calls=3)
    result = measure.latency(net, torch.zeros(1), warmup=3, repeats=5)
    assert net.calls == 3 + 5 and result["repeats"] == 5
    assert result["p90_ms"] < 100  # no timed call includes a 200 ms warm-up sleep
    cold = measure.latency(SlowStart(slow_calls=3), torch.zeros(1), warmup=0, repeats=5)
    assert cold["median_ms"] >= 200  # without warm-up, 3 of the 5 timed calls are slow


def test_latency_needs_a_tensor():
    with pytest.raises(TypeError, match="example_input"):
        measure.latency(nn.Linear(2, 2), [[0.0, 0.0]])


class Sleeper(nn.Module):
    """Sleeps ``ms[i % len(ms)]`` on its i-th call and writes its name into a shared call log."""

    def __init__(self, name, ms, log):
        super().__init__()
        self.name, self.ms, self.log = name, ms, log

    def forward(self, x):
        time.sleep(self.ms[len([n for n in self.log if n == self.name]) % len(self.ms)] / 1000)
        self.log.append(self.name)
        return x


def test_compare_latency_interleaves_rotates_and_reports_speedups():
    log = []
    models = {"slow": Sleeper("slow", [8.0], log), "fast": Sleeper("fast", [2.0], log)}
    result = measure.compare_latency(models, torch.zeros(1), rounds=4, repeats=2, warmup=1)
    assert list(result) == ["slow", "fast"]
    assert log[:2] == ["slow", "fast"]                                      # warm-up, then timed rounds
    timed = log[2:]
    assert timed == ["slow"] * 2 + ["fast"] * 2 + ["fast"] * 2 + ["slow"] * 2 + \
        ["slow"] * 2 + ["fast"] * 2 + ["fast"] * 2 + ["slow"] * 2            # who goes first alternates
    assert result["slow"]["calls"] == result["fast"]["calls"] == 8
    assert result["slow"]["speedup"] == 1.0
    assert 2.0 < result["fast"]["speedup"] < 5.0                            # 8 ms vs 2 ms of sleep
    assert result["fast"]["speedup_p10"] <= result["fast"]["speedup"] <= result["fast"]["speedup_p90"]


def test_compare_latency_flags_a_noisy_measurement():
    log = []
    jumpy = Sleeper("jumpy", [1.0, 1.0, 20.0], log)                         # every third call is 20× slower
    result = measure.compare_latency({"steady": Sleeper("steady", [2.0], log), "jumpy": jumpy}, torch.zeros(1),
                                     rounds=6, repeats=3, warmup=0)
    assert result["jumpy"]["noisy"] and result["jumpy"]["spread"] > 1.0
    assert result["jumpy"]["p90_ms"] > 10 * result["jumpy"]["p10_ms"] / 2


@pytest.mark.parametrize("kwargs, error", [({"rounds": 1}, ValueError), ({"repeats": 0}, ValueError),
                                           ({"reference": "other"}, ValueError), ({"noise_limit": 0}, ValueError),
                                           ({"warmup": -1}, ValueError)])
def test_compare_latency_argument_errors(kwargs, error):
    with pytest.raises(error):
        measure.compare_latency({"a": nn.Linear(2, 2)}, torch.zeros(1, 2), **kwargs)
    with pytest.raises(TypeError, match="models must be"):
        measure.compare_latency([nn.Linear(2, 2)], torch.zeros(1, 2))
    with pytest.raises(ValueError, match="example_input"):
        measure.compare_latency({"a": nn.Linear(2, 2)}, torch.zeros(1, 3))

# ---------------------------------------------------------------- bit packing

def test_pack_bits_layout_is_lsb_first():
    assert pack_bits([1, 2, 3], 2) == bytes([0b00_11_10_01])
    assert pack_bits([1, 0, 0, 0, 0, 0, 0, 0, 1], 1) == bytes([0b1, 0b1])
    assert pack_bits([0xA, 0x5], 4) == bytes([0x5A])
    assert pack_bits(np.array([], dtype=np.uint8), 3) == b""


@pytest.mark.parametrize("bits", [1, 2, 3, 4, 5, 6, 7, 8, 12, 16])
def test_pack_unpack_round_trip_random_sizes(bits):
    rng = np.random.default_rng(bits)
    for count in [0, 1, 7, 8, 9, *rng.integers(1, 3000, size=20)]:
        codes = rng.integers(0, 2 ** bits, size=count)
        packed = pack_bits(codes, bits)
        assert len(packed) == math.ceil(count * bits / 8)
        assert np.array_equal(unpack_bits(packed, bits, count), codes)


def test_pack_bits_matches_numpy_packbits_for_one_bit():
    bits = np.random.default_rng(0).integers(0, 2, size=1001)
    assert pack_bits(bits, 1) == np.packbits(bits.astype(np.uint8), bitorder="little").tobytes()


def test_pack_bits_errors():
    with pytest.raises(ValueError, match=r"\[0, 15\]"):
        pack_bits([16], 4)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        pack_bits([-1], 1)
    with pytest.raises(ValueError, match="bits"):
        pack_bits([0], 0)
    with pytest.raises(TypeError, match="integers"):
        pack_bits([0.5], 4)
    with pytest.raises(ValueError, match="need 2"):
        unpack_bits(b"\x00", 4, 3)
    with pytest.raises(TypeError, match="bytes-like"):
        unpack_bits([0], 4, 1)


# ---------------------------------------------------------------- bytes on disk

def test_fp32_file_is_four_bytes_per_parameter_plus_header():
    layer = nn.Linear(784, 300)
    size = size_on_disk(layer, "fp32")
    state = layer.state_dict()
    assert size == expected_file_bytes(state, {"weight": "fp32", "bias": "fp32"},
                                       {k: 4 * v.numel() for k, v in state.items()})
    assert 0 < size - 4 * 235_500 <= FILE_HEADER_BYTES + 2 * 64   # header budget: < 64 B per tensor


def test_torch_save_has_container_overhead():
    layer = nn.Linear(784, 300)
    assert measure.torch_save_bytes(layer) > size_on_disk(layer, "fp32")


def test_integer_formats_shrink_by_bits_over_32():
    layer = nn.Linear(1000, 1000, bias=False)
    fp32 = size_on_disk(layer, "fp32")
    for fmt, bits in [("int8", 8), ("int4", 4), ("int2", 2), ("int1", 1)]:
        size = size_on_disk(layer, fmt)
        assert size == FILE_HEADER_BYTES + tensor_header_bytes("weight", fmt, 2) + 8 + 1_000_000 * bits // 8
        assert size / fp32 == pytest.approx(bits / 32, rel=0.01)
    assert size_on_disk(layer, "fp16") / fp32 == pytest.approx(0.5, rel=0.01)


def test_bitmask_at_ninety_percent_sparsity():
    layer = sparse_linear(1000, density=0.1)
    nnz = count_nonzeros(layer)
    assert 95_000 < nnz < 105_000
    size = size_on_disk(layer, "bitmask")
    header = FILE_HEADER_BYTES + tensor_header_bytes("weight", "bitmask:fp32", 2)
    assert size == header + 1_000_000 // 8 + 4 * nnz
    assert size_on_disk(layer, "int1") < size < size_on_disk(layer, "fp32")
    assert size_on_disk(layer, "bitmask", values_fmt="fp16") == header + 1_000_000 // 8 + 2 * nnz


def test_csr_at_ninety_percent_sparsity():
    layer = sparse_linear(1000, density=0.1)
    nnz = count_nonzeros(layer)
    size = size_on_disk(layer, "csr")
    # row pointers reach nnz > 65535: uint32; column indices < 1000: uint16; values fp32
    payload = 2 + 1001 * 4 + nnz * 2 + nnz * 4
    assert size == FILE_HEADER_BYTES + tensor_header_bytes("weight", "csr:fp32", 2) + payload
    assert size < size_on_disk(layer, "fp32") / 6


def test_csr_uses_one_byte_indices_for_small_matrices(tmp_path):
    layer = sparse_linear(50, density=0.05)
    nnz = count_nonzeros(layer)
    assert nnz < 256
    size = serialize(layer, "csr", tmp_path / "m.bin")
    assert size == FILE_HEADER_BYTES + tensor_header_bytes("weight", "csr:fp32", 2) + 2 + 51 + nnz + 4 * nnz


@pytest.mark.parametrize("fmt", ["fp32", "bitmask", "csr"])
def test_lossless_formats_round_trip_exactly(tmp_path, fmt):
    net = small_cnn()
    with torch.no_grad():
        net[0].weight[net[0].weight.abs() < 0.1] = 0
    net[1].running_mean.uniform_()
    net[1].num_batches_tracked.fill_(7)
    serialize(net, fmt, tmp_path / "net.bin")
    loaded = load_serialized(tmp_path / "net.bin")
    state = net.state_dict()
    assert list(loaded) == list(state)
    for name, tensor in state.items():
        assert loaded[name].dtype == tensor.dtype and torch.equal(loaded[name], tensor), name


def test_non_weight_tensors_stay_fp32_in_every_format(tmp_path):
    net = small_cnn()
    for fmt in STORAGE_FORMATS:
        serialize(net, fmt, tmp_path / "net.bin")
        loaded = load_serialized(tmp_path / "net.bin")
        for name in ["0.bias", "1.weight", "1.bias", "1.running_var", "5.bias"]:
            assert torch.equal(loaded[name], net.state_dict()[name]), (fmt, name)


def test_int8_round_trip_within_half_a_step(tmp_path):
    weight = torch.randn(64, 3, 3, 3) * 0.2 + 0.05
    serialize({"conv.weight": weight}, "int8", tmp_path / "w.bin")
    back = load_serialized(tmp_path / "w.bin")["conv.weight"]
    scale = (max(weight.max().item(), 0) - min(weight.min().item(), 0)) / 255
    assert back.shape == weight.shape and back.dtype == torch.float32
    assert (back - weight).abs().max().item() <= scale / 2 * (1 + 1e-4)


@pytest.mark.parametrize("fmt", ["int4", "int2", "int1", "fp16"])
def test_lossy_formats_keep_zeros_and_shape(tmp_path, fmt):
    weight = sparse_linear(40, 0.3).weight.detach()
    serialize({"w": weight}, fmt, tmp_path / "w.bin")
    back = load_serialized(tmp_path / "w.bin")["w"]
    assert back.shape == weight.shape
    assert torch.all(back[weight == 0] == 0)   # the affine range always contains zero exactly


def test_int8_values_in_bitmask(tmp_path):
    layer = sparse_linear(100, 0.2)
    serialize(layer, "bitmask", tmp_path / "w.bin", values_fmt="int8")
    back = load_serialized(tmp_path / "w.bin")["weight"]
    weight = layer.weight.detach()
    assert torch.all(back[weight == 0] == 0)
    assert (back - weight).abs().max() < (weight.max() - weight.min()) / 255


def test_pruned_model_serialises_its_effective_weight(tmp_path):
    layer = nn.Linear(30, 20)
    prune.l1_unstructured(layer, "weight", amount=0.9)
    serialize(layer, "csr", tmp_path / "p.bin")
    loaded = load_serialized(tmp_path / "p.bin")
    assert set(loaded) == {"weight", "bias"}
    assert torch.equal(loaded["weight"], layer.weight_orig.detach() * layer.weight_mask)
    assert size_on_disk(layer, "csr") < size_on_disk(layer, "fp32")


def test_serialize_is_atomic(tmp_path):
    path = tmp_path / "m.bin"
    serialize(nn.Linear(3, 2), "fp32", path)
    before = path.read_bytes()
    with pytest.raises(TypeError):
        serialize({"w": torch.zeros(2, 2, dtype=torch.complex64)}, "fp32", path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.bin"]


def test_size_report_covers_every_format_in_order():
    sizes = measure.size_report(nn.Linear(200, 100))
    assert tuple(sizes) == STORAGE_FORMATS
    assert sizes["fp32"] > sizes["fp16"] > sizes["int8"] > sizes["int4"] > sizes["int2"] > sizes["int1"]


def test_storage_errors(tmp_path):
    with pytest.raises(ValueError, match="'fp32', 'fp16', 'int8', 'int4', 'int2', 'int1', 'bitmask', 'csr'"):
        size_on_disk(nn.Linear(2, 2), "int3")
    with pytest.raises(ValueError, match="values_fmt"):
        size_on_disk(nn.Linear(2, 2), "csr", values_fmt="int4")
    with pytest.raises(TypeError, match="model_or_state_dict"):
        size_on_disk([torch.zeros(2)], "fp32")
    with pytest.raises(TypeError, match="str -> torch.Tensor"):
        size_on_disk({"w": [1.0]}, "fp32")
    with pytest.raises(TypeError, match="path"):
        serialize(nn.Linear(2, 2), "fp32", 3)
    (tmp_path / "bad.bin").write_bytes(b"PK\x03\x04 not ours")
    with pytest.raises(ValueError, match="not a labkit storage file"):
        load_serialized(tmp_path / "bad.bin")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("fmt, values_fmt", [("int8", "fp32"), ("int4", "fp32"), ("int1", "fp32"),
                                             ("bitmask", "int8"), ("csr", "int8")])
def test_integer_formats_name_the_tensor_with_non_finite_weights(tmp_path, bad, fmt, values_fmt):
    net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    with torch.no_grad():
        net[2].weight[1, 1] = bad
    with pytest.raises(ValueError, match=r"tensor '2\.weight' holds 1 NaN or Inf value"):
        serialize(net, fmt, tmp_path / "m.bin", values_fmt=values_fmt)
    assert list(tmp_path.iterdir()) == []  # nothing half-written


@pytest.mark.parametrize("fmt, values_fmt", [("fp32", "fp32"), ("fp16", "fp32"), ("csr", "fp16")])
def test_float_formats_store_non_finite_weights_as_they_are(tmp_path, fmt, values_fmt):
    state = {"w": torch.tensor([[1.0, float("nan")], [float("inf"), 0.0]])}
    serialize(state, fmt, tmp_path / "m.bin", values_fmt=values_fmt)
    back = load_serialized(tmp_path / "m.bin")["w"]
    assert back[0, 0] == 1.0 and back[0, 1].isnan() and back[1, 0] == float("inf") and back[1, 1] == 0.0


# ---------------------------------------------------------------- report

def test_report_rows_totals_and_rendering():
    net = small_cnn()
    rep = measure.report(net, (1, 28, 28))
    assert [r["type"] for r in rep.rows] == ["Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d", "Flatten", "Linear"]
    assert isinstance(rep.rows[0], dict) and rep.rows[0]["output_shape"] == (6, 28, 28)
    assert rep.rows[5]["params"] == 11_770 and rep.rows[5]["fp32_bytes"] == 47_080
    assert rep.totals["params"] == count_parameters(net)
    assert rep.totals["macs"] == total_macs(net, (1, 28, 28))
    assert rep.totals["fp32_bytes"] == 4 * count_parameters(net)
    assert tuple(rep.sizes) == STORAGE_FORMATS
    text = str(rep)
    lines = text.splitlines()
    assert len({len(line) for line in lines[:9]}) == 1          # aligned table
    assert "117,600" in text and "6×28×28" in text
    page = rep._repr_html_()
    assert page.startswith('<table class="labkit-report">') and page.count("<tr>") == 8 + 9


def test_report_takes_the_input_shape_from_a_labkit_model():
    from labkit import models

    rgb = models.build("lenet5", in_channels=3, image_size=32)
    rep = measure.report(rgb, with_sizes=False)
    assert rep.rows[0]["output_shape"] == (6, 28, 28)           # conv1 5×5, no padding on 32×32
    assert rep.totals["macs"] == total_macs(rgb, (3, 32, 32))
    assert measure.report(models.build("lenet300"), with_sizes=False).totals["macs"] == 266_200
    with pytest.raises(TypeError, match=r"needs input_shape for a Sequential.*\(1, 28, 28\)"):
        measure.report(small_cnn())


def test_report_without_sizes_and_html_escaping():
    class Weird(nn.Module):
        def __init__(self):
            super().__init__()
            self.add_module("<b>", nn.Linear(3, 2))

        def forward(self, x):
            return getattr(self, "<b>")(x)

    rep = measure.report(Weird(), (3,), with_sizes=False)
    assert rep.sizes == {} and "&lt;b&gt;" in rep._repr_html_() and "<b>" in str(rep)


# ---------------------------------------------------------------- issue 9: honest bytes, strict files, named errors

def tied_mlp() -> nn.Sequential:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(100, 100, bias=False), nn.ReLU(), nn.Linear(100, 100, bias=False))
    net[2].weight = net[0].weight
    return net


def test_tied_weights_are_stored_once_like_torch_save(tmp_path):
    net = tied_mlp()
    assert count_parameters(net) == 10_000
    size = size_on_disk(net, "fp32")
    one_layer = size_on_disk({"0.weight": net[0].weight.detach()}, "fp32")
    alias = tensor_header_bytes("2.weight", "alias", 2) + len("0.weight")
    assert size == one_layer + alias  # before: 80,073 bytes, twice the weight
    assert 40_000 < size < measure.torch_save_bytes(net) < 2 * 40_000  # torch.save stores it once too
    serialize(net, "int8", tmp_path / "t.bin")
    back = load_serialized(tmp_path / "t.bin")
    assert back["2.weight"] is back["0.weight"]


def write_file(tmp_path, net=None):
    path = tmp_path / "m.bin"
    serialize(net or nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 3)), "fp32", path)
    return path


@pytest.mark.parametrize("cut", [3, 7, 20, 60, -1])
def test_a_truncated_file_names_the_file(tmp_path, cut):
    path = write_file(tmp_path)
    path.write_bytes(path.read_bytes()[:cut])
    with pytest.raises(ValueError, match=rf"^{path}.* truncated"):
        load_serialized(path)  # before: struct.error / numpy "buffer is smaller than requested size"


def test_a_damaged_tensor_count_and_trailing_bytes_are_refused(tmp_path):
    path = write_file(tmp_path)
    good = path.read_bytes()
    path.write_bytes(good[:5] + struct.pack("<I", 9) + good[9:])
    with pytest.raises(ValueError, match=r"announces 9 tensors but the file ends after 4"):
        load_serialized(path)
    path.write_bytes(good[:5] + struct.pack("<I", 2) + good[9:])
    with pytest.raises(ValueError, match=r"bytes after the 2 tensors its header announces"):
        load_serialized(path)  # before: two tensors returned, the others silently dropped
    path.write_bytes(good + b"\x00junk")
    with pytest.raises(ValueError, match=r"5 bytes after the 4 tensors"):
        load_serialized(path)  # before: accepted
    path.write_bytes(b"")
    with pytest.raises(ValueError, match="is empty"):
        load_serialized(path)


def test_a_payload_that_does_not_fit_its_shape_is_refused(tmp_path):
    path = tmp_path / "w.bin"
    serialize({"w": torch.ones(4, 4)}, "fp32", path)
    raw = bytearray(path.read_bytes())
    shape_at = FILE_HEADER_BYTES + 2 + 1 + 1 + 4 + 1  # name "w", encoding "fp32", ndim
    raw[shape_at:shape_at + 4] = struct.pack("<I", 3)  # claims [3, 4] for a 64-byte payload
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"tensor 'w'.*takes 48 bytes, but its payload has 64"):
        load_serialized(path)


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")
def test_width_zero_layers_have_zero_macs():
    net = nn.Sequential(nn.Linear(4, 0), nn.ReLU(), nn.Linear(0, 3))
    assert [layer.macs for layer in macs(net, (4,))] == [0, 0]  # before: ZeroDivisionError
    assert measure.nonzero_macs(net, (4,)) == 0


def test_latency_names_an_example_input_the_model_cannot_take():
    with pytest.raises(ValueError, match=r"^example_input \(shape \[3, 5\], torch.float32\) does not fit"):
        measure.latency(nn.Linear(4, 2), torch.zeros(3, 5), warmup=0, repeats=1)


def test_meta_models_are_counted_but_not_measured():
    meta = small_cnn().to("meta")
    assert count_parameters(meta) == count_parameters(small_cnn())
    for call in (lambda: size_on_disk(meta, "fp32"), lambda: count_nonzeros(meta), lambda: total_macs(meta, (1, 28, 28))):
        with pytest.raises(ValueError, match="meta device"):
            call()  # before: NotImplementedError "Cannot copy out of meta tensor"


def test_float64_and_float16_models_are_measured():
    for dtype in (torch.float64, torch.float16):
        net = small_cnn().to(dtype)
        assert total_macs(net, (1, 28, 28)) == total_macs(small_cnn(), (1, 28, 28))
        assert size_on_disk(net, "fp32") == size_on_disk(small_cnn(), "fp32")
