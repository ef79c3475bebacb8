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


def test_a_cached_unit_run_with_other_settings_is_recomputed(tmp_path):
    # The lottery units of the 3,000-iteration run must not stand in for the 12,000-iteration ones.
    from prune_table import cached

    calls = []

    def compute():
        calls.append(1)
        return {"iterations": 12_000, "value": len(calls)}

    (tmp_path / "unit.json").write_text('{"iterations": 3000, "value": 0}')
    assert cached(tmp_path, "unit", compute, expect={"iterations": 12_000}) == {"iterations": 12_000, "value": 1}
    assert cached(tmp_path, "unit", compute, expect={"iterations": 12_000})["value"] == 1 and len(calls) == 1
    assert cached(tmp_path, "unit", compute, only_cached=True, expect={"iterations": 6_000}) is None
    assert len(calls) == 1


def test_censored_runs_are_those_whose_validation_loss_was_lowest_at_the_end():
    from prune_table import censored, lottery_budget

    def run(es):
        return {"early_stop_iteration": es, "remaining": 1.0}

    unit = {"iterations": 1000, "seconds": 20.0,
            "rounds": [{"ticket": run(400), "reinit": None}, {"ticket": run(1000), "reinit": run(900)}]}
    assert [t["early_stop_iteration"] for t in censored([unit])] == [1000]
    text = lottery_budget([unit], {"es": {0: 400}})
    assert "1 of 3 runs are censored" in text and "took 6.7 ms of wall time" in text    # 20 s / (3 runs × 1,000)
    assert "lower bound: 100.0 % at 1,000)" in text
    assert "takes 4.2 ms on a quiet core" in text                                      # 83.5 s / 20,000 iterations
    unit["rounds"][1]["ticket"] = run(951)                 # in the last 5 %: censored too
    assert len(censored([unit])) == 1
    unit["rounds"][1]["ticket"] = run(700)
    text = lottery_budget([unit], {"es": {0: 400}})
    assert "none of the 3 runs is censored (the latest stops at iteration 900)" in text


def test_slim_sweep_prints_one_row_per_setting_on_the_validation_split(tmp_path):
    from prune_table import SLIM_CHOSEN, SLIM_SWEEP

    env = dict(os.environ, LABKIT_CACHE=str(tmp_path / "cache"))
    result = subprocess.run([sys.executable, str(SCRIPT), "--slim-sweep", "--quick", "--quiet"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ") and not line.startswith("| setting")]
    assert [r.split("|")[1].strip().removesuffix(" (chosen)") for r in rows] == list(SLIM_SWEEP)
    assert sum("(chosen)" in r for r in rows) == 1 and f"| {SLIM_CHOSEN} (chosen) |" in result.stdout
    assert "validation split" in result.stdout


def test_lottery_rows_pair_by_seed_when_only_some_seeds_ran_the_controls():
    # Seed 0 runs all 6 rounds with the re-init controls, seeds 1 and 2 rounds 0-4 only: the early-stopping and
    # accuracy claims at 51.3 % and 21.1 % pair 3 seeds, the controls and the 3.6 % claim have 1 seed, no verdict.
    from prune_table import lottery_rows

    def run(acc, es, left=1.0):
        return {"test_accuracy": acc, "early_stop_iteration": es, "remaining": left}

    def unit(seed, rounds, controls):
        return {"seed": seed, "rewind_iteration": 0, "iterations": 12_000, "eval_every": 100, "seconds": 100.0,
                "rounds": [{"round": r, "ticket": run(0.98 - 0.001 * seed, 5000 - 500 * r - 100 * seed, 0.8 ** r),
                            "reinit": run(0.97, 6000, 0.8 ** r) if controls and r in (2, 4, 6) else None}
                           for r in range(rounds + 1)]}

    rows = lottery_rows([unit(0, 6, True), unit(1, 4, False), unit(2, 4, False)])
    by_metric = {r.metric.rsplit(" at ", 1)[0] + " @" + r.metric.rsplit(" at ", 1)[1].split()[0]: r for r in rows}
    earlier = by_metric["ticket stops earlier @21.1"]
    assert earlier.seeds == 3 and earlier.passed is True and "-2,000 iterations [-2,000, -2,000]" in earlier.ours
    control = by_metric["random re-init worse than the ticket @21.1"]
    assert control.seeds == 1 and control.passed is None
    assert "1 seed: no interval (ticket 98.00, reinit 97.00)" in control.ours
    assert by_metric["ticket falls back to about dense @3.6"].seeds == 1
    assert "seed(s) 0 ran every round with the re-init controls, the others rounds 0-4 only" in earlier.note
    assert "none of the 20 runs is censored (the latest stops at iteration 6,000)" in earlier.note


def test_a_slimming_setting_with_weight_decay_trains_with_it_and_says_so():
    # The third sweep stage's settings carry "wd": it must reach SGD (a silently ignored key would make two
    # settings one), and the row's recipe must name it.
    import torch

    from prune_table import SLIM_FIRST, build_mlp, slim_recipe, slim_train

    g = torch.Generator().manual_seed(0)
    xy = (torch.rand(64, 1, 28, 28, generator=g), torch.randint(0, 10, (64,), generator=g))
    short = {**SLIM_FIRST, "epochs": 1, "finetune": 1}
    plain, decayed = (slim_train(xy, {**short, **extra}, 0, False) for extra in ({}, {"wd": 0.5}))
    assert plain.fc1.weight.norm() > 1.01 * decayed.fc1.weight.norm()        # decay shrank the weights
    assert not torch.equal(build_mlp(seed=0).fc1.weight, plain.fc1.weight)    # and both trained
    assert "weight decay 0.0005 throughout" in slim_recipe({**SLIM_FIRST, "wd": 5e-4})
    assert "weight decay" not in slim_recipe(SLIM_FIRST)
