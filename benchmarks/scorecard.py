"""The lab against the papers, in one table: every row every benchmark recorded in benchmarks/results/.

    .venv/bin/python benchmarks/scorecard.py            # the table (Markdown)
    .venv/bin/python benchmarks/scorecard.py --quick    # the same; it only reads files (smoke test)

Each benchmark that reproduces a published number (baselines, distill_table, lowrank_table,
prune_table, deep_compression, ...) writes its rows after a full run (``benchmarks/results.py``).
The scorecard re-runs nothing: it prints what was measured, when, on which machine, and whether
each row met its target. Exit status 1 if any recorded row failed its target.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import RESULTS_DIR, load_all  # noqa: E402  (a script beside this one)

COLUMNS = ("benchmark", "experiment", "model", "dataset", "metric", "ours", "paper", "tolerance", "verdict",
           "seeds", "run time", "measured")
VERDICT = COLUMNS.index("verdict")


def verdict(passed) -> str:
    return {True: "PASS", False: "FAIL", None: "info"}[passed]


def cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "—" if value is None or value == "" else str(value)


def table(files: list[dict]) -> list[list[str]]:
    rows = []
    for payload in files:
        for r in payload["rows"]:
            rows.append([payload["benchmark"], r["experiment"], r["model"], cell(r.get("dataset")), r["metric"],
                         cell(r["ours"]),
                         cell(r["paper"]), r["tolerance"], verdict(r["passed"]), str(r["seeds"]),
                         f"{r['seconds']:.0f} s", payload["date"]])
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", default=str(RESULTS_DIR), help="where the results files are")
    parser.add_argument("--quick", action="store_true", help="smoke run (the scorecard only reads files)")
    args = parser.parse_args(argv)
    files = load_all(Path(args.folder))
    if not files:
        print(f"no results in {args.folder}: run a benchmark (e.g. benchmarks/baselines.py) first")
        return 0
    rows = table(files)
    print("| " + " | ".join(COLUMNS) + " |")
    print("|" + "---|" * len(COLUMNS))
    for row in rows:
        print("| " + " | ".join(row) + " |")
    machines = sorted({p["machine"] for p in files})
    print(f"\n{len(rows)} rows from {len(files)} benchmarks; measured on: {'; '.join(machines)}")
    failed = [r for r in rows if r[VERDICT] == "FAIL"]
    if failed:
        print(f"{len(failed)} rows miss their target: " + ", ".join(f"{r[0]}/{r[2]} ({r[4]})" for r in failed))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
