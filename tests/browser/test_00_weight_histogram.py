"""Notebook 00 in a real browser: Run All Cells, then the weight-histogram explorer reacts to every control."""
from widget_checks import Move, WidgetCase, axis_type

CASE = WidgetCase(
    "00_why_compress.ipynb", "weight-histogram", title=r"fc1\.weight",
    moves=[Move("layer", 0, title=r"conv1\.weight", readout=r"conv1\.weight"),
           Move("bins", 0.9), Move("bins", 0.1),
           Move("log", True, check=axis_type("y", "log")),
           Move("layer", 4, title=r"fc3\.weight", readout=r"fc3\.weight")])


def test_00_weight_histogram_explorer_reacts_to_layer_bins_and_log(check_widget):
    check_widget(CASE)
