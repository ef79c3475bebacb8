"""Smoke tests of benchmarks/distill_table.py (Hinton et al. 2015 on MNIST) and benchmarks/lowrank_table.py:
their ``--quick`` runs print every row, judge the verdict they print, and record nothing."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module                  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def no_recording(monkeypatch):
    """Fail if a quick run tries to write a results file (it would overwrite a real run's rows)."""
    def refuse(*args, **kwargs):
        raise AssertionError("a --quick run must not record results")
    return refuse


@pytest.mark.slow
def test_distill_table_quick_prints_every_method_and_the_ordering_verdict(capsys, monkeypatch, no_recording):
    table = load("distill_table")
    monkeypatch.setattr(table, "record", no_recording)
    try:
        assert table.main(["--quick", "--quiet"]) == 0
    finally:
        sys.modules.pop("distill_table", None)
    out = capsys.readouterr().out
    for method in ("teacher (jitter ±2 px)", "| alone |", "| KD |", "| KD + hint |", "| KD + RKD |"):
        assert method in out, method
    assert "ordering: teacher" in out and ("-> PASS" in out or "-> FAIL" in out)
    assert "| 146 |" in out and "| 74 |" in out             # the paper's errors beside ours


def test_distill_table_ordering_verdict_needs_a_resolved_gain():
    table = load("distill_table")
    from labkit import stats
    try:
        rows = [{"method": "alone", "errors": [150, 152, 148]},
                {"method": "KD", "errors": [120, 118, 122], "gain": stats.seed_interval([0.003, 0.0035, 0.0025])}]
        assert table.ordering({"errors": [90]}, rows)[0] is True
        assert table.ordering({"errors": [125]}, rows)[0] is False                      # teacher worse than KD
        rows[1]["gain"] = stats.seed_interval([0.003, -0.002, 0.004])                  # not resolved
        assert table.ordering({"errors": [90]}, rows)[0] is False
    finally:
        sys.modules.pop("distill_table", None)


@pytest.mark.slow
def test_lowrank_table_quick_prints_svd_tucker_and_cp_rows(capsys, monkeypatch, no_recording):
    table = load("lowrank_table")
    monkeypatch.setattr(table, "record", no_recording)
    try:
        assert table.main(["--quick"]) == 0
    finally:
        sys.modules.pop("lowrank_table", None)
    out = capsys.readouterr().out
    assert "SVD fc1, rank 108 (half the parameters)" in out and "Tucker-2, energy 0.5" in out and "CP, rank C_out/2" in out
    assert "266,610 → 148,482" in out                         # LeNet-300-100 with fc1 at rank 108
    assert "target ≥ −0.5 pt" in out and ("-> PASS" in out or "-> FAIL" in out)


def test_lowrank_table_svd_rank_halves_fc1():
    table = load("lowrank_table")
    try:
        from labkit import lowrank
        assert lowrank.svd_params(300, 784, table.SVD_RANK) <= 235_500 / 2 < lowrank.svd_params(300, 784, table.SVD_RANK + 1)
    finally:
        sys.modules.pop("lowrank_table", None)
