"""Sparse storage of pruned models with labkit.measure: bitmask and CSR beat fp32 past break-even."""
import pytest
import torch
from torch import nn

from labkit import measure, prune


def pruned_linear(sparsity: float, rows=300, cols=784):
    torch.manual_seed(0)
    layer = nn.Linear(cols, rows)
    prune.prune_layer(layer, sparsity)
    return layer


@pytest.mark.parametrize("sparsity", [0.05, 0.5, 0.9])
def test_bitmask_smaller_than_fp32_above_one_in_32(sparsity):
    layer = pruned_linear(sparsity)
    assert measure.size_on_disk(layer, "bitmask") < measure.size_on_disk(layer, "fp32")


def test_bitmask_break_even_is_one_in_32():
    # bitmask: n/8 + 4·nnz bytes vs 4·n → smaller iff sparsity > 1/32 (3.125 %)
    assert measure.size_on_disk(pruned_linear(0.0), "bitmask") > measure.size_on_disk(pruned_linear(0.0), "fp32")
    below, above = pruned_linear(0.02), pruned_linear(0.045)
    assert measure.size_on_disk(below, "bitmask") > measure.size_on_disk(below, "fp32")
    assert measure.size_on_disk(above, "bitmask") < measure.size_on_disk(above, "fp32")


def test_csr_break_even_near_one_third_for_fc1():
    # csr: 2 + 4·(rows+1) + (2 + 4)·nnz bytes (uint16 columns, uint32 row pointers) vs 4·n
    below, above = pruned_linear(0.32), pruned_linear(0.35)
    assert measure.size_on_disk(below, "csr") > measure.size_on_disk(below, "fp32")
    assert measure.size_on_disk(above, "csr") < measure.size_on_disk(above, "fp32")
    at90 = pruned_linear(0.9)
    nnz = 300 * 784 - round(0.9 * 300 * 784)
    weight_payload = 2 + 2 * 301 + 6 * nnz       # nnz < 65536: uint16 row pointers
    fp32_payload = 4 * 300 * 784
    assert measure.size_on_disk(at90, "fp32") - measure.size_on_disk(at90, "csr") == pytest.approx(
        fp32_payload - weight_payload, abs=16)                         # headers differ by the encoding name


def test_pruned_model_round_trips_through_sparse_files(tmp_path):
    layer = pruned_linear(0.9, rows=20, cols=30)
    for fmt in ("bitmask", "csr"):
        measure.serialize(layer, fmt, tmp_path / f"m.{fmt}")
        loaded = measure.load_serialized(tmp_path / f"m.{fmt}")
        assert torch.equal(loaded["weight"], layer.weight.detach())
