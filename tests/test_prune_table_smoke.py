"""Smoke test of benchmarks/prune_table.py: ``--quick`` on digits prints every paper's rows and writes nothing."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "benchmarks" / "prune_table.py"
RESULTS = REPO / "benchmarks" / "results"


def snapshot(folder: Path) -> dict:
    """The recorded results files (``record`` writes ``<benchmark>.json`` at the top of the folder)."""
    return {p: p.stat().st_mtime_ns for p in folder.glob("*.json")}


def test_quick_run_prints_the_three_papers_and_records_nothing(tmp_path):
    before = snapshot(RESULTS)
    env = dict(os.environ, LABKIT_CACHE=str(tmp_path / "cache"))
    start = time.perf_counter()
    result = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--quiet"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - start
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "smoke run" in out and "| experiment | model | metric | ours | paper |" in out
    rows = [line for line in out.splitlines() if line.startswith("| ") and not line.startswith("| experiment")]
    experiments = {row.split("|")[1].strip() for row in rows}
    assert experiments == {"Han 2015 Table 1", "Frankle & Carbin 2019 Fig. 3", "Liu 2017 network slimming"}
    han = next(r for r in rows if "Han 2015" in r)
    assert "1.64 → 1.59 at 8 % (12×)" in han and "(12.0×)" in han        # 1 − 1/12 sparsity = 12× fewer weights
    assert "(paper 8 %)" in out and "(paper 26 %)" in out                  # Table 2's per-layer ratios beside ours
    assert "1.43 → 1.49" in out and "784-100-60-10" in out
    slim = next(r for r in rows if "test error % (dense → slimmed) |" in r)   # the row's own method
    assert "−84.4 % parameters (784-100-60-10)" in slim.split("|")[4]          # our widths, not the paper's column
    assert "recorded to" not in out and snapshot(RESULTS) == before         # --quick never writes results
    print(f"prune_table --quick: {seconds:.1f} s")


def test_bad_threads_are_refused():
    result = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--threads", "0"], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "--threads must be an integer >= 1, got 0" in result.stderr


def test_slimming_never_empties_a_layer_whose_gammas_are_uniformly_small():
    # The bug of the first slimming run: fc1's γ were all below fc2's (BN2 makes fc1's scale free), and one
    # global threshold left fc1 with 5 of 500 neurons (52.58 % error). The row's method keeps the paper's widths.
    import torch

    from prune_table import build_mlp, slim_keeps

    mlp = build_mlp(seed=0)
    with torch.no_grad():
        mlp.bn1.weight.copy_(torch.linspace(0.01, 0.14, 500))            # as after L1 training: fc1 ≤ 0.14 …
        mlp.bn2.weight.copy_(torch.linspace(0.10, 0.70, 300))            # … below nearly all of fc2
    widths = {name: tuple(len(k) for k in keep.values()) for name, keep in slim_keeps(mlp).items()}
    assert widths["per layer"] == (100, 60)                               # 784-100-60-10, −84.4 % parameters
    assert widths["global"][0] < 10                                       # what the global threshold alone does
    assert widths["global, 10 % floor"][0] >= 50 and sum(widths["global, 10 % floor"]) == 160
