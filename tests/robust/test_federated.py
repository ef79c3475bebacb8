"""Update codecs: the bytes are what is sent and decoding inverts encoding; FedAvg learns; bad input."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from labkit import federated, train
from labkit.distill import MLPStudent


def update():
    g = torch.Generator().manual_seed(0)
    return {"w": torch.randn(30, 20, generator=g), "b": torch.randn(30, generator=g)}


def roundtrip(codec, upd=None, seed=0):
    upd = update() if upd is None else upd
    payload = codec.encode(upd, torch.Generator().manual_seed(seed))
    return payload, codec.decode(payload, upd)


def test_float32_is_exact_and_four_bytes_a_weight():
    payload, out = roundtrip(federated.UpdateCodec())
    assert len(payload) == 4 * (600 + 30)
    assert all(torch.equal(out[k], v) for k, v in update().items())


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_quantized_updates_are_close_unbiased_and_packed(bits):
    codec = federated.UpdateCodec("quantize", bits=bits)
    payload, out = roundtrip(codec)
    assert len(payload) == (4 + math.ceil(600 * bits / 8)) + (4 + math.ceil(30 * bits / 8))
    for k, v in update().items():
        step = v.abs().max() / (2 ** (bits - 1) - 1)
        assert float((out[k] - v).abs().max()) <= step + 1e-6
    n, w = 400, update()["w"]
    mean = sum(roundtrip(codec, seed=s)[1]["w"] for s in range(n)) / n
    # stochastic rounding: each decoded entry has std ≤ step/2, so the mean of n is within 4.5·step/(2√n)
    step = float(w.abs().max()) / (2 ** (bits - 1) - 1)
    torch.testing.assert_close(mean, w, atol=4.5 * step / (2 * math.sqrt(n)), rtol=0)


def test_one_bit_is_the_sign_times_the_mean_magnitude():
    payload, out = roundtrip(federated.UpdateCodec("quantize", bits=1))
    assert len(payload) == (4 + 75) + (4 + 4)
    w = update()["w"]
    torch.testing.assert_close(out["w"], torch.where(w >= 0, 1.0, -1.0) * w.abs().mean())


def test_topk_keeps_the_largest_entries_and_sends_eight_bytes_each():
    payload, out = roundtrip(federated.UpdateCodec("topk", keep_fraction=0.1))
    assert len(payload) == 8 * (60 + 3)
    w = update()["w"].reshape(-1)
    kept = out["w"].reshape(-1) != 0
    assert int(kept.sum()) == 60 and torch.equal(out["w"].reshape(-1)[kept], w[kept])
    assert float(w[~kept].abs().max()) <= float(w[kept].abs().min())


def test_split_clients_is_a_seeded_partition(digits):
    shards = federated.split_clients(digits[0], 7, seed=1)
    assert len(shards) == 7 and sum(len(s) for s in shards) == len(digits[0])
    assert max(len(s) for s in shards) - min(len(s) for s in shards) <= 1
    again = federated.split_clients(digits[0], 7, seed=1)
    assert all(torch.equal(a.tensors[1], b.tensors[1]) for a, b in zip(shards, again))


def test_one_client_with_float32_is_plain_sgd(digits):
    torch.manual_seed(0)
    a = MLPStudent((16,))
    b = MLPStudent((16,))
    b.load_state_dict(a.state_dict())
    out = federated.federated_averaging(a, [digits[0]], digits[1], rounds=1, local_steps=5, seed=3)
    # the same 5 SGD steps by hand, drawing the same mini-batches
    g = torch.Generator().manual_seed(3)
    opt = torch.optim.SGD(b.parameters(), lr=0.1)
    x, y = digits[0].tensors
    for _ in range(5):
        idx = torch.randint(len(x), (32,), generator=g)
        opt.zero_grad()
        nn.functional.cross_entropy(b(x[idx]), y[idx]).backward()
        opt.step()
    for pa, pb in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(pa, pb)
    assert out["uplink_bytes"] == 4 * sum(p.numel() for p in a.parameters())


def test_fedavg_learns_and_counts_the_bytes_it_sends(digits):
    shards = federated.split_clients(digits[0], 4, seed=0)
    results = {}
    for codec in (federated.UpdateCodec(), federated.UpdateCodec("quantize", bits=2)):
        torch.manual_seed(0)
        results[codec.label] = federated.federated_averaging(MLPStudent((32,)), shards, digits[1], rounds=5,
                                                             local_steps=10, codec=codec, seed=0)
    assert results["float32"]["rounds"][-1]["accuracy"] > 0.6
    assert results["2-bit"]["rounds"][-1]["accuracy"] > 0.5
    ratio = results["float32"]["uplink_bytes"] / results["2-bit"]["uplink_bytes"]
    assert 15 < ratio < 16                            # 32 bits → 2 bits, plus a 4-byte scale per tensor
    assert results["float32"]["rounds"][0]["uplink_bytes"] * 5 == results["float32"]["uplink_bytes"]


def test_error_feedback_carries_what_was_dropped(digits):
    shards = federated.split_clients(digits[0], 2, seed=0)
    accs = {}
    for ef in (False, True):
        torch.manual_seed(0)
        out = federated.federated_averaging(MLPStudent((32,)), shards, digits[1], rounds=8, local_steps=5,
                                            codec=federated.UpdateCodec("topk", keep_fraction=0.01, error_feedback=ef))
        accs[ef] = out["rounds"][-1]["accuracy"]
    assert accs[True] > accs[False]


def test_bad_arguments_are_named(digits):
    for kwargs, match in (({"method": "zip"}, "method"), ({"method": "quantize", "bits": 0}, "bits"),
                          ({"bits": 9}, "bits"), ({"keep_fraction": 0.0}, "keep_fraction"),
                          ({"keep_fraction": 1.5}, "keep_fraction")):
        with pytest.raises(ValueError, match=match):
            federated.UpdateCodec(**kwargs)
    with pytest.raises(ValueError, match="clients"):
        federated.split_clients(digits[0], 0)
    with pytest.raises(ValueError, match="clients >= 1"):
        federated.federated_averaging(MLPStudent((8,)), [], digits[1])
    with pytest.raises(ValueError, match="rounds"):
        federated.federated_averaging(MLPStudent((8,)), [digits[0]], digits[1], rounds=0)
    with pytest.raises(TypeError, match="codec"):
        federated.federated_averaging(MLPStudent((8,)), [digits[0]], digits[1], codec="2-bit")
    with pytest.raises(ValueError, match="payload"):
        federated.UpdateCodec().decode(b"\x00" * 12, {"w": torch.zeros(2)})
    assert train is not None
