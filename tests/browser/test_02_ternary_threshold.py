"""Notebook 02 in a real browser: Run All Cells, then the TWN threshold explorer reacts to its controls."""
from widget_checks import Move, WidgetCase, all_of

CASE = WidgetCase(
    "02_binary_ternary.ipynb", "ternary-threshold", title=all_of("fc1", "0.70"), readout=all_of("fc1", "sparsity"),
    moves=[Move("factor", 0.95), Move("factor", 0.1), Move("factor", 0.6),
           Move("per-channel", True, title="per channel", readout="per channel"),
           Move("layer", 1, title="conv2", readout="conv2")])


def test_02_ternary_threshold_explorer_reacts_to_factor_and_per_channel(check_widget):
    check_widget(CASE)
