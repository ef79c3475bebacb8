"""``benchmarks/widget_latency.py --quick`` runs end to end: its own lab and Chromium, the histogram
fixture, every control moved 3 times, one row per control with browser and Python times and a target."""
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ROW = re.compile(r"^fx weight-histogram\.(\w+)\s+(\w+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+([\d.]+)\s+≤ 100\s+(ok|OVER)")


def test_widget_latency_quick_run_prints_a_row_per_control():
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "widget_latency.py"), "--quick"],
                         capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    table = run.stdout.split("verdict", 1)[1]
    rows = {m.group(1): m for m in map(ROW.match, table.splitlines()) if m}
    assert set(rows) == {"layer", "bins", "log"}, table
    assert [rows[c].group(2) for c in ("layer", "bins", "log")] == ["dropdown", "slider", "checkbox"]
    for match in rows.values():
        moves, browser_ms, python_ms = int(match.group(3)), int(match.group(4)), int(match.group(6))
        assert moves == 3 and browser_ms > 0 and python_ms <= browser_ms, match.group(0)
    assert "3 controls," in run.stdout
