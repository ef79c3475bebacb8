"""Notebook 10 in a real browser: Run All Cells, then the AGP explorer reacts to its six controls,
shows labkit's message for a schedule it refuses, and recovers."""
from widget_checks import Move, WidgetCase, all_of

CASE = WidgetCase(     # the notebook's next cell leaves the explorer at step 50 of T = 200
    "10_pruning_schedules_automation.ipynb", "agp", title=all_of("AGP: 0% → 97%", "to 150", "every 10 steps"),
    readout=all_of("step t = 50", "sparsity at step t", "accuracy, pruned to s(t)", "dense accuracy"),
    moves=[Move("step", 0.9, readout=all_of("97.0%", "0.00 % per 1,000 steps")),
           Move("final", 0.3, title=r"→ 3\d%"),
           Move("frequency", 0.9, title=r"every 4\d steps"),
           Move("initial", 0.9, readout=all_of("schedule refused", "initial must be"), redraw=True),
           Move("initial", 0.0, check=lambda b, a: "refused" not in a.readout),
           Move("start", 0.25, title=r"from step [45]\d"),   # start + duration (150) ≤ 200: valid
           Move("duration", 1.0, readout=all_of("schedule refused", "after the end of training (200 steps)"))])


def test_10_agp_explorer_reacts_to_schedule_step_and_refusals(check_widget):
    check_widget(CASE)
