"""Smoke test of benchmarks/quant_table.py: the ``--quick`` run on the embedded digits dataset."""
from __future__ import annotations

import csv
import importlib.util
import sys
import time
from pathlib import Path

import pytest
import torch

from labkit import measure, zoo
from labkit.quant import binary, codebook, ptq

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "quant_table.py"


@pytest.fixture(scope="module")
def quant_table():
    spec = importlib.util.spec_from_file_location("quant_table", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["quant_table"] = module          # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("quant_table", None)


@pytest.mark.slow
def test_quick_run_prints_every_method_with_real_bytes(quant_table, tmp_path, capsys):
    out_csv = tmp_path / "quant.csv"
    start = time.perf_counter()
    assert quant_table.main(["--quick", "--quiet", "--csv", str(out_csv)]) == 0
    seconds = time.perf_counter() - start
    printed = capsys.readouterr().out
    with capsys.disabled():
        print(f"\nquant_table --quick: {seconds:.1f} s (budget: < 60 s on 2 cores)")
    assert "model" in printed and "Δ vs fp32 [95 %]" in printed and "first and last layer in fp32" in printed
    assert "recorded for the scorecard" not in printed           # --quick never overwrites the results
    rows = list(csv.DictReader(out_csv.open(encoding="utf-8")))
    methods = {(r["model"], r["method"]) for r in rows}
    for model in ("lenet5", "lenet300"):
        for method in ("fp32", "dynamic int8", "PTQ int8 per-tensor minmax", "PTQ int8 per-channel histogram",
                       "PTQ int8 per-channel MSE", "PTQ 4-bit per-channel", "PTQ 4-bit weight-only",
                       "mixed precision (= 4-bit size)", "QAT STE W8A8", "QAT STE W4A4", "QAT LSQ W4A4",
                       "QAT LSQ W2A2", "k-means 4-bit", "k-means 2-bit + Huffman"):
            assert (model, method) in methods, (model, method)
    for method in ("BinaryConnect", "XNOR (α per channel)", "TWN ternary"):
        assert ("lenet5", method) in methods
    by = {(r["model"], r["method"]): r for r in rows}
    for r in rows:
        assert 0.0 <= float(r["accuracy"]) <= 1.0
        assert r["status"] in ("", "n/a")          # targets are judged on MNIST only
        assert int(r["bytes"]) > 0
        assert r["seeds"] == "1"                   # --quick: one seed
        if r["method"] != "fp32":                  # every change carries its paired 95 % interval
            assert float(r["delta_low"]) - 0.01 <= float(r["delta_points"]) <= float(r["delta_high"]) + 0.01, r
    for model in ("lenet5", "lenet300"):
        fp32 = int(by[(model, "fp32")]["bytes"])
        assert fp32 == measure.size_on_disk(zoo.pretrained(model, "digits", progress=False), "fp32")
        assert float(by[(model, "fp32")]["delta_points"]) == 0.0
        assert 3.4 < float(by[(model, "PTQ int8 per-channel minmax")]["ratio"]) < 4.0
        assert 6.5 < float(by[(model, "PTQ 4-bit weight-only")]["ratio"]) < 8.0
        # mixed precision spends at most the bytes of uniform 4-bit (same per-channel scales)
        assert int(by[(model, "mixed precision (= 4-bit size)")]["bytes"]) <= \
            int(by[(model, "PTQ 4-bit weight-only")]["bytes"])
        assert int(by[(model, "k-means 4-bit + Huffman")]["bytes"]) < int(by[(model, "k-means 4-bit")]["bytes"])
        assert int(by[(model, "k-means 2-bit")]["bytes"]) < int(by[(model, "k-means 4-bit")]["bytes"])
    assert int(by[("lenet5", "XNOR (α per channel)")]["bytes"]) < int(by[("lenet5", "TWN ternary")]["bytes"])


def test_shipped_bytes_match_the_packed_formats(quant_table):
    model = zoo.pretrained("lenet5", "digits", progress=False)
    weights = sum(m.weight.numel() for m in model.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)))
    fp32 = quant_table.model_bytes(model)
    assert fp32 == measure.size_on_disk(model, "fp32")
    x = torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    int8 = quant_table.model_bytes(ptq.quantize_static(model, x, per_channel=True))
    assert weights < int8 < weights + 4_000          # one byte per weight + scales, biases, headers
    shared = codebook.apply_weight_sharing(model, 4)
    assert quant_table.model_bytes(shared, use_huffman=True) < quant_table.model_bytes(shared) < weights // 2 + 3_000
    ternary = binary.binarize_model(model, "ternary", per_channel=True).eval()
    state = quant_table.shipped_state(ternary)
    assert state["conv2.weight_codes"].dtype == torch.uint8
    assert state["conv2.weight_codes"].numel() == -(-model.conv2.weight.numel() * 2 // 8)
    assert state["conv1.weight"].dtype == torch.float32      # first and last layers stay fp32


def test_cli_rejects_bad_arguments(quant_table):
    with pytest.raises(SystemExit):
        quant_table.parse_args(["--epochs", "0"])
    with pytest.raises(SystemExit):
        quant_table.parse_args(["--methods", "nonsense"])
    args = quant_table.parse_args(["--quick", "--models", "lenet5", "--methods", "ptq", "kmeans"])
    assert args.quick and args.models == ["lenet5"] and args.methods == ["ptq", "kmeans"]


def test_trained_methods_merge_seeds_and_scorecard_rows(quant_table, tmp_path):
    """Several seeds of one method become one row: mean accuracy and a Student-t interval of the change;
    one run gets the paired interval; rows with a target become scorecard rows with the verdict."""
    import numpy as np
    from labkit import stats

    fp32 = np.array([True] * 95 + [False] * 5)                      # 95 % on 100 images
    runs = []
    for seed, wrong in enumerate((7, 8, 9)):
        correct = np.array([True] * (100 - wrong) + [False] * wrong)
        runs.append(quant_table.Row("lenet5", "QAT STE W4A4", "W4A4", correct.mean(), 10_000, correct=correct,
                                    note="n"))
    merged = quant_table.merge_seeds(runs, fp32)
    assert merged.accuracies == [0.93, 0.92, 0.91] and abs(merged.accuracy - 0.92) < 1e-12
    expected = stats.seed_interval([-0.02, -0.03, -0.04])
    assert np.allclose([merged.change.low, merged.change.high], [expected.low, expected.high], rtol=0, atol=1e-12)
    assert merged.seeds == 3
    assert "mean of 3 seeds" in merged.note
    one = quant_table.merge_seeds([quant_table.Row("lenet5", "PTQ int8 per-channel MSE", "W8A8", 0.95, 5_000,
                                              correct=fp32.copy())], fp32)
    assert one.change.value == 0 and one.change.method.startswith("paired") and one.seeds == 1
    for row in (merged, one):
        row.fp32_accuracy, row.fp32_bytes = 0.95, 40_000
    merged.target, one.target = 1.0, 0.3
    card = quant_table.scorecard_rows([merged, one], quant_table.FULL)
    assert [c.passed for c in card] == [False, True]                 # a 3-point mean drop misses a 1-point target
    assert card[0].seeds == 3 and card[0].extra["accuracies"] == [0.93, 0.92, 0.91]
    assert "drop ≤ 1.0 pt" in card[0].tolerance and "-3.00 pt" in card[0].ours
    path = quant_table.results.record("quant_table", card, folder=tmp_path)
    assert path.exists() and "QAT STE W4A4" in path.read_text()
