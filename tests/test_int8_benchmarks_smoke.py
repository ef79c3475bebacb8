"""Smoke tests of benchmarks/int8_gemm.py and benchmarks/int8_models.py: their ``--quick`` runs (a few
seconds each, one thread) print the tables with every expected row and column. Timings are not
asserted: performance is measured by the benchmarks, never by tests."""
from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from labkit import kernels
from labkit.kernels import api

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def run_benchmark(name: str, *args: str) -> str:
    result = subprocess.run([sys.executable, str(BENCHMARKS / name), *args], capture_output=True, text=True,
                            timeout=120, cwd=BENCHMARKS.parent)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def table_rows(text: str, first_column: str) -> dict[str, list[str]]:
    """label -> the rest of each table line starting with first_column (columns split on 2+ spaces)."""
    rows = {}
    for line in text.splitlines():
        if line.startswith(first_column):
            cells = re.split(r"\s{2,}", line.strip())
            rows[cells[1] if len(cells) > 1 else cells[0]] = cells[2:]
    return rows


@pytest.fixture(scope="module")
def int8_gemm():
    """The script as a module (for its constants and helpers; its main() runs in a subprocess)."""
    spec = importlib.util.spec_from_file_location("int8_gemm", BENCHMARKS / "int8_gemm.py")
    module = importlib.util.module_from_spec(spec)
    with pytest.MonkeyPatch.context() as patch:  # the script sets OMP_WAIT_POLICY if unset
        patch.setenv("OMP_WAIT_POLICY", "PASSIVE")
        spec.loader.exec_module(module)
    return module


def test_int8_gemm_quick_table():
    out = run_benchmark("int8_gemm.py", "--quick", "--threads", "1")
    for column in ("shape (M x K x N)", "implementation", "median ms", "min ms", "one-call ms", "one/packed",
                   "GOPS", "% peak", "x fp32", "x int8", "pack GB/s"):
        assert column in out
    assert out.startswith("CPU: ") and "load average" in out
    assert "peak AMX tdpbusd" in out and ("no amx on this CPU" in out or "2048 int8 ops/cycle/core" in out)
    assert "peak VNNI vpdpbusd" in out
    gemm, conv = table_rows(out, "quick 8x64x16"), table_rows(out, "quick conv (qconv2d)")
    expected = [f"labkit {isa} {op}" for isa in kernels.available_isas() for op in ("gemm", "linear")]
    assert set(expected) <= set(gemm) and "torch fp32" in gemm and "memcpy of w (numpy)" in gemm
    assert {f"labkit {isa} qconv2d" for isa in kernels.available_isas()} <= set(conv)  # ref included
    assert "torch fp32" in conv
    for label, cells in {**gemm, **conv}.items():
        if label.startswith("memcpy"):
            assert float(cells[-1]) > 0, (label, cells)  # pack GB/s only
            continue
        median_ms, min_ms, gops = float(cells[0]), float(cells[1]), float(cells[4])
        assert 0 < min_ms <= median_ms and gops > 0, (label, cells)
        if label.startswith("labkit"):  # the one-call op, its ratio to the packed one, % of the path's peak
            one_call, ratio = float(cells[2]), float(cells[3])
            assert one_call > 0 and ratio > 0, (label, cells)
            assert (cells[5] == "-") == (label.split()[1] == "ref"), (label, cells)
        if label.startswith("labkit") and label.endswith(("gemm", "linear")) and api._ext is not None:
            assert (cells[8] == "-") == (label == "labkit ref gemm"), (label, cells)  # pack GB/s
            assert cells[8] == "-" or float(cells[8]) > 0, (label, cells)
    assert "one-call / packed" in out


def test_int8_gemm_shapes_and_skipped_ref(int8_gemm, capsys, monkeypatch):
    assert (1024, 1024, 1024) in int8_gemm.SHAPES.values()      # the ">= 70 % of VNNI peak" shape
    assert (256, 1024, 1024) in int8_gemm.SHAPES.values()
    if "ref" not in kernels.available_isas():
        pytest.skip("no compiled ref path")
    monkeypatch.setattr(int8_gemm, "REF_MAX_MACS", 0)             # every shape is "too big" for ref
    rng = int8_gemm.np.random.default_rng(0)
    cases = int8_gemm.conv_cases(1, 1, 6, 2, 3, 0, rng, None)
    assert cases["labkit ref qconv2d"] is None
    runs = {label: {column: [1e-3] for column, _ in case.timed()} for label, case in cases.items() if case is not None}
    int8_gemm.print_rows("conv", (16, 9, 2), cases, runs, min, {})
    assert re.search(r"labkit ref qconv2d\s+skipped", capsys.readouterr().out)


def test_int8_models_quick_table():
    out = run_benchmark("int8_models.py", "--quick", "--threads", "1")
    for column in ("model", "fp32 acc", "fq acc", "int acc", "Δ int-fp32", "batch", "fp32", "labkit int",
                   "int × fp32", "int × torch int8"):
        assert column in out
    assert "CPU: " in out and "load average" in out
    for model in ("lenet300", "lenet5"):
        lines = [line for line in out.splitlines() if line.startswith(model + " ")]
        accuracy = next(line for line in lines if "%" in line)
        accuracies = [float(a) for a in re.findall(r"(\d+\.\d+)%", accuracy)]
        assert len(accuracies) >= 3 and min(accuracies) > 80, accuracy  # fp32, fake-quant, integer (+ torch int8)
        latency = [line for line in lines if "ms" in line]
        assert [line.split()[1] for line in latency] == ["1", "256"], latency
        for line in latency:  # fp32 and labkit int at least (torch's int8 engines where torch.ao exists)
            assert len(re.findall(r"\d+\.\d+ms", line)) >= 2, line


def test_int4_gemv_quick_table():
    """benchmarks/int4_gemv.py --quick: one row per transformer layer and batch, every column filled."""
    out = run_benchmark("int4_gemv.py", "--quick")
    for column in ("torch fp32 us", "one-call us", "prepared us", "speed-up (p10-p90)", "best x", "torch int4 ref us",
                   "fp32 bytes", "int4 bytes", "fewer bytes"):
        assert column in out
    for layer, (k, n) in {"attn.qkv": (128, 384), "attn.proj": (128, 128), "mlp.fc1": (128, 512),
                          "mlp.fc2": (512, 128)}.items():
        for m in (1, 4):
            cells = next(line.split() for line in out.splitlines() if line.startswith(layer) and f"{m}x{k}x{n}" in line)
            fp32_us, one_call_us, prepared_us = float(cells[2]), float(cells[3]), float(cells[5])
            fp32_bytes, int4_bytes = int(cells[-3]), int(cells[-2])
            assert fp32_us > 0 and one_call_us > 0 and prepared_us > 0
            assert fp32_bytes == 4 * n * k and int4_bytes == n * k // 2 + 5 * n * k // 64  # group 64
    assert "goal (issue 16)" in out
