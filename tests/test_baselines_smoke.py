"""Smoke test of benchmarks/baselines.py: ``--quick`` on the embedded digits, and a missing dataset."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "benchmarks" / "baselines.py"
COLUMNS = ["model", "dataset", "epochs", "test acc", "95 % interval", "target", "status", "params", "MACs", "fp32 bytes",
           "ms (b=1)", "ms (b=256)"]


def run_baselines(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """The script in a fresh interpreter, as a user runs it, with an empty cache and no LABKIT_DATA."""
    env = {k: v for k, v in os.environ.items() if k != "LABKIT_DATA"}
    env["LABKIT_CACHE"] = str(tmp_path / "cache")
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)


def table_rows(stdout: str) -> list[list[str]]:
    """The cells of the final Markdown table (header first), without the alignment line."""
    table = stdout[stdout.rindex("| model |"):].strip().splitlines()
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in table if not line.startswith("|---")]


def test_quick_run_prints_targets_and_status_on_digits(tmp_path):
    start = time.perf_counter()
    result = run_baselines(tmp_path, "--quick", "--quiet", "--threads", "1")
    seconds = time.perf_counter() - start
    assert result.returncode == 0, result.stderr
    header, *rows = table_rows(result.stdout)
    assert header == COLUMNS
    by_model = {row[0]: dict(zip(header, row)) for row in rows}
    assert sorted(by_model) == ["lenet300", "lenet5"]
    for row in by_model.values():
        assert row["dataset"] == "digits" and row["target"] == "≥ 95.0%"
        assert float(row["test acc"].rstrip("%")) >= 95.0 and row["status"] == "PASS"  # shipped checkpoints
        low, high = (float(t) for t in row["95 % interval"].strip("[]").split(","))
        assert low < float(row["test acc"].rstrip("%")) < high and high - low < 6  # 359 images: about +-2 pt
        assert float(row["ms (b=1)"]) > 0 and int(row["MACs"].replace(",", "")) > 0
    assert by_model["lenet300"]["params"] == "266,610" and by_model["lenet5"]["params"] == "61,706"
    assert "targets met: 2/2" in result.stdout
    assert seconds < 60, f"--quick took {seconds:.0f} s"  # ~6 s on 2 idle cores


def test_a_missing_dataset_stops_the_run_with_a_clear_error(tmp_path):
    result = run_baselines(tmp_path, "--quick", "--datasets", "digits", "fashion-mnist")
    assert result.returncode == 2
    assert "LABKIT_DATA" in result.stderr and "make data" in result.stderr and "fashion-mnist" in result.stderr
    assert "| lenet" not in result.stdout  # nothing measured, not even digits


def test_status_and_targets_of_rows():
    spec = importlib.util.spec_from_file_location("baselines", SCRIPT)
    baselines = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(baselines)
    row = {"model": "lenet5", "dataset": "mnist", "accuracy": 0.990, "target": baselines.TARGETS[("lenet5", "mnist")]}
    assert baselines.status(row) == "MISS" and baselines.target_text(row) == "≥ 99.1%"
    assert baselines.status({**row, "accuracy": 0.9915}) == "PASS"
    assert baselines.status({**row, "target": None}) == "—" and baselines.target_text({"target": None}) == "—"
    assert ("lenet300", "fashion-mnist") not in baselines.TARGETS
    assert baselines.parse_args([]).datasets == ["mnist", "digits", "fashion-mnist"]
