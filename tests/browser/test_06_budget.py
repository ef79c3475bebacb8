"""Notebook 06 in a real browser: Run All Cells, then the size-budget explorer reacts to its controls.

Drags the budget slider (the title names the budget and the accuracy), revisits a budget (its
allocation is cached), then switches the allocation method. Latency target ≤ 300 ms (one
quantize-and-evaluate of LeNet-5 on the fixed evaluation subset).
"""
import re

from widget_checks import Move, WidgetCase

TITLE = re.compile(r"budget ([\d.]+) KiB → ([\d.]+) KiB used, accuracy ([\d.]+)% \((dp|greedy)\)")


def parse(state) -> dict:
    match = TITLE.search(state.title)
    assert match, f"the figure title does not give budget, size and accuracy: {state.title!r}"
    budget, used, accuracy, method = match.groups()
    return {"budget": float(budget), "used": float(used), "accuracy": float(accuracy), "method": method}


def within_budget(state):
    now = parse(state)
    assert now["used"] <= now["budget"] + 0.01, state.title


def first(state):
    within_budget(state)
    assert parse(state)["method"] == "dp", state.title
    assert "accuracy" in state.readout and "smaller than fp32" in state.readout, state.readout


def raised(before, after):
    within_budget(after)
    assert parse(after)["budget"] > parse(before)["budget"], "dragging right did not raise the budget"


def greedy(before, after):
    within_budget(after)
    assert parse(after)["method"] == "greedy", after.title


def cached(before, after):
    within_budget(after)
    assert "cached" in after.readout, "revisiting a budget should reuse the cached accuracy"


CASE = WidgetCase(
    "06_mixed_precision_vector_quantization.ipynb", "budget", check=first,
    moves=[Move("budget", 0.02, check=lambda b, a: within_budget(a)), Move("budget", 0.9, check=raised),
           Move("budget", 0.15, check=lambda b, a: within_budget(a)),
           Move("budget", 0.35, check=lambda b, a: within_budget(a)),
           Move("budget", 0.02, check=cached),
           Move("method", "greedy", check=greedy)])


def test_06_budget_explorer_reacts_to_budget_and_method(check_widget):
    check_widget(CASE)
