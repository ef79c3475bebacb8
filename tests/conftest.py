"""Suite-wide settings and reporting: one torch thread for the whole session; what the notebook runs
measured (wall time, kernel peak RSS), at the end of pytest."""
import sys
from pathlib import Path

import pytest
import torch

# Benchmark scripts import their neighbour ``results.py`` (run as scripts, their folder is on the
# path); tests that load a benchmark as a module need the same.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """The test machine is shared (2 cores): one intra-op thread is faster than two fighting for cores.
    Tests that time or thread something set their own count (measure.latency(threads=...), kernels)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def pytest_terminal_summary(terminalreporter):
    notebooks = sys.modules.get("test_notebooks") or sys.modules.get("tests.test_notebooks")
    measured = getattr(notebooks, "MEASURED", None)
    if not measured:
        return
    baseline = getattr(notebooks, "BASELINE", {}).get("torch")
    terminalreporter.section("labkit notebook measurements (budget: 90 s, 1200 MB above a bare `import torch`)")
    terminalreporter.write_line(f"{'notebook':48s} {'wall':>8s}  {'kernel CPU':>10s}  {'peak RSS':>9s}  "
                                f"{'above torch':>11s}")
    for name, (wall, cpu, rss, above) in sorted(measured.items()):
        terminalreporter.write_line(f"{name:48s} {wall:6.1f} s  {cpu:8.1f} s  {rss:6.0f} MB  {above:8.0f} MB")
    terminalreporter.write_line(f"{'all notebooks':48s} {sum(m[0] for m in measured.values()):6.1f} s  "
                                f"{sum(m[1] for m in measured.values()):8.1f} s")
    if baseline is not None:
        terminalreporter.write_line(f"{'a kernel that only ran `import torch`':48s} {'':8s}  {'':10s}  "
                                    f"{baseline:6.0f} MB")
