"""Notebook 14 in a real browser: Run All Cells, then the trade-off explorer reacts to every control
(model, technique, x axis, "only the Pareto front"), with the learner's run added by the notebook."""
from widget_checks import Move, WidgetCase, all_of, axis_type


def log_x(state):
    types = [a["type"] for a in state.figures[0]["axes"] if a["key"].startswith("x")]
    assert "log" in types, f"the x axis must be logarithmic: {types}"


def star_shown(state):
    mine = [t for t in state.figures[0]["traces"] if t["name"] == "your runs"]
    assert mine and mine[0]["visible"] and mine[0]["n"] == 1, f"the learner's run is not drawn: {mine}"


def fewer_points(before, after):
    count = (lambda s: sum(t["n"] for t in s.figures[0]["traces"] if t["name"] != "Pareto front" and t["visible"]))
    assert count(after) < count(before), "'only the Pareto front' must hide the dominated points"


# shown after Run All with the notebook's own run added: LeNet-300-100, 34 sweep results + 1 of the learner's
CASE = WidgetCase(
    "14_pipeline_tradeoffs_export.ipynb", "tradeoff",
    title=all_of("Accuracy vs file size", "lenet300", "all techniques", "35 results", "7 on the Pareto front"),
    readout=all_of("35 of 74 results shown", "Pareto front (7)", "prune 90% + FT → k-means 4 + FT", "%"),
    check=lambda s: (log_x(s), star_shown(s)),
    moves=[Move("model", "lenet5", title=all_of("lenet5", "34 results", "10 on the Pareto front")),
           Move("family", "post-training quantization", title=all_of("post-training quantization", "4 results"),
                readout="PTQ W"),
           Move("x", "x: latency", title=all_of("Accuracy vs latency", "3 on the Pareto front"),
                readout=" ms", check=axis_type("x", "log")),
           Move("front", True, check=fewer_points),
           Move("x", "x: MACs", title=all_of("Accuracy vs MACs", "1 on the Pareto front"), readout=" M"),
           Move("model", "all models", title=all_of("all models", "8 results", "2 on the Pareto front")),
           Move("family", "all techniques", title=all_of("all models", "all techniques", "74 results")),
           Move("front", False, title="74 results")])


def test_14_tradeoff_explorer_reacts_to_every_control(check_widget):
    check_widget(CASE)
