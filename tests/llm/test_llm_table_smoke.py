"""Smoke test of benchmarks/llm_table.py: its --quick run prints every row and claim and records nothing."""
import importlib.util
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.mark.slow
def test_llm_table_quick_prints_every_method_and_claim(capsys, monkeypatch):
    spec = importlib.util.spec_from_file_location("llm_table", BENCHMARKS / "llm_table.py")
    table = importlib.util.module_from_spec(spec)
    sys.modules["llm_table"] = table
    try:
        spec.loader.exec_module(table)

        def refuse(*args, **kwargs):
            raise AssertionError("a --quick run must not record results")
        monkeypatch.setattr(table, "record", refuse)
        assert table.main(["--quick"]) == 0
    finally:
        sys.modules.pop("llm_table", None)
    out = capsys.readouterr().out
    for label in ("| fp32 |", "| RTN-8 g64 |", "| GPTQ-3 g64 |", "| AWQ-4 g64 |", "| smoothquant (W8A8) |",
                  "| llm.int8 (W8A8) |", "Controlled experiment", "GPTQ-3 beats RTN-3", "LLM.int8() has no degradation",
                  "| GPTQ-ACT-3 g64 |", "| AWQ-CLIP-4 g64 |", "clip search (AWQ-CLIP / AWQ)", "AWQ-CLIP-3 beats RTN-3",
                  "int4 RTN g64", "int8 W8A8 per-token (compiled int8 kernels)", "tokens/s", "int4 kernel:",
                  "block-linear weight bytes",
                  "UNVERIFIED"):
        assert label in out, label
