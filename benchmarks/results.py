"""One results file per benchmark, so that ``scorecard.py`` can print every paper row in one table.

Each benchmark that reproduces a published number calls ``record(benchmark, rows)`` at the end of a
full run (never in ``--quick`` runs, which would overwrite real results with smoke numbers). The
rows go, atomically, to ``benchmarks/results/<benchmark>.json``; those files are committed, so the
scorecard of the last full run on the lab's default dataset is in the repository.

A row says what was compared and how it came out::

    Row(experiment="Han 2015 Table 1", model="lenet300", metric="test error %",
        ours=1.59, paper=1.59, tolerance="<= baseline + 0.1 pt", passed=True, seeds=3, seconds=412.0,
        source="Han et al. 2015, Table 1", note="12x fewer weights")

``passed`` is True, False or None (no target: an informational row).
"""
from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from labkit.files import atomic_write

RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass
class Row:
    """One comparison: our measured value beside the paper's, with the tolerance and the verdict."""

    experiment: str
    model: str
    metric: str
    ours: float | str
    paper: float | str | None
    tolerance: str
    passed: bool | None
    seeds: int
    seconds: float
    source: str = ""
    note: str = ""
    dataset: str = "mnist"
    extra: dict = field(default_factory=dict)


def machine() -> str:
    """The CPU model and core count of this machine, for the record."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores"


def record(benchmark: str, rows: list[Row], folder: Path = RESULTS_DIR) -> Path:
    """Write ``rows`` to ``folder/<benchmark>.json`` atomically (temporary file, then ``os.replace``)."""
    if not rows:
        raise ValueError("rows must hold at least one Row")
    folder.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": benchmark, "date": time.strftime("%Y-%m-%d"), "machine": machine(),
               "rows": [asdict(r) for r in rows]}
    path = folder / f"{benchmark}.json"
    with atomic_write(path, "w") as f:
        json.dump(payload, f, indent=1)
        f.write("\n")
    return path


def load_all(folder: Path = RESULTS_DIR) -> list[dict]:
    """Every results file in ``folder``, sorted by benchmark name."""
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
