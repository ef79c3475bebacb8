"""benchmarks/deep_compression.py: the smoke run, the cache rules, and the shipped LeNet-300-100 result."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from labkit import data, train
from labkit.pipeline import fileformat
from labkit.quant import codebook

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "deep_compression.py"
SHIPPED = SCRIPT.parent / "results" / "deep_compression"


@pytest.fixture(scope="module")
def dc():
    sys.path.insert(0, str(SCRIPT.parent))
    spec = importlib.util.spec_from_file_location("deep_compression", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_smoke_run_every_stage_shrinks_the_file_and_the_tables_print_it(dc, tmp_path):
    cfg = dc.config(True)
    result = dc.compress("lenet300", cfg, False, tmp_path, tmp_path)      # digits, 1 + 1 epochs
    sizes = [s["bytes"] for s in result["stages"]]
    assert sizes == sorted(sizes, reverse=True) and len(set(sizes)) == len(sizes), result["stages"]
    assert sizes[-1] == result["file_bytes"] == (tmp_path / "lenet300.lkcm").stat().st_size
    assert result["stages"][3]["bytes"] == result["file_bytes_5bit_gaps"]
    assert result["file_bytes_paper_bits"] > result["file_bytes"]        # 6-bit codebooks cost more bytes
    loaded = fileformat.load(tmp_path / "lenet300.lkcm")
    assert train.correct(loaded, data.load("digits", "test")).tolist() == result["compressed_correct"]
    assert result["config"] == dc.budget("lenet300", cfg)
    stages = dc.stage_table([result])
    assert "+ Huffman coding of codebook indices and gaps" in stages and f"{result['file_bytes']:,}" in stages
    assert "paper bit widths" in stages and " 40×" in stages and " 32×" in stages
    row = dc.rows_for([result])[0]
    assert "reduced budget: 1 of 20 pruning epochs, 1 of 3 centroid fine-tuning epochs" in row.ours
    assert len(dc.table([result]).splitlines()) == 1 + 3                 # header + fc1, fc2, fc3


def test_half_floats_rounds_centroids_and_biases_and_keeps_zeros(dc):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    with torch.no_grad():
        model[0].weight[:, ::2] = 0.0                                    # pruned weights
    shared = codebook.apply_weight_sharing(model, 4, keep_zeros=True)
    half = dc.half_floats(shared)
    for m in (half[0], half[2]):
        for p in (m.codebook, m.bias):
            assert p.dtype == torch.float32 and torch.equal(p, p.half().float())
    assert torch.count_nonzero(half[0].weight[:, ::2]) == 0
    assert not torch.equal(half[0].codebook, shared[0].codebook)          # a copy was rounded, not the original
    torch.testing.assert_close(half[0].codebook, shared[0].codebook, rtol=1e-3, atol=1e-4)


def test_stale_keeps_a_reduced_result_unless_a_budget_is_asked_for(dc):
    full = dc.budget("lenet5-caffe", dc.config(False))
    cut = {**full, "prune_epochs": 4, "share_epochs": 1}
    assert dc.stale(None, full, False)
    assert not dc.stale(cut, full, explicit=False)       # a plain run assembles what was computed
    assert dc.stale(cut, full, explicit=True)            # an explicit budget recomputes
    assert dc.stale({**cut, "weight_bits": {"fc1": 6}}, full, explicit=False)   # other settings: recompute
    assert "4 of 12 pruning epochs, 1 of 3 centroid" in dc.reduced({"model": "lenet5-caffe", "config": cut})
    assert dc.reduced({"model": "lenet5-caffe", "config": full}) == ""


@pytest.mark.parametrize("flag", ["--prune-epochs", "--share-epochs", "--threads"])
def test_cli_rejects_budgets_below_one(dc, flag):
    with pytest.raises(SystemExit):
        dc.main([flag, "0", "--quick"])


@pytest.mark.parametrize("name", ["lenet300", "lenet5-caffe"])
def test_shipped_file_meets_the_goal_and_loads_to_its_recorded_answers(dc, name):
    if not (SHIPPED / f"{name}.json").exists():
        pytest.skip(f"no shipped {name} result")
    result = json.loads((SHIPPED / f"{name}.json").read_text())
    path = SHIPPED / f"{name}.lkcm"
    assert path.stat().st_size == result["file_bytes"]
    loaded = fileformat.load(path)
    correct = train.correct(loaded, data.load("mnist", "test"))
    assert correct.tolist() == result["compressed_correct"]          # the error is the file's
    ratio = result["dense_bytes"] / result["file_bytes"]
    base, err = dc.error_pct(result["dense_correct"]), dc.error_pct(result["compressed_correct"])
    assert ratio >= dc.PAPER[name]["ratio"] and err <= base + 0.1, (ratio, err, base)
    row = dc.rows_for([result])[0]
    assert row.passed and f"{ratio:.1f}×" in row.ours and "paired" in row.note
    assert np.isclose(row.extra["ratio"], ratio)
