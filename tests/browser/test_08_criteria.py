"""Notebook 08 in a real browser: Run All Cells, then the criteria explorer reacts to its controls."""
from widget_checks import Move, WidgetCase, all_of

CASE = WidgetCase(
    "08_importance_criteria.ipynb", "criteria", title=r"^taylor(?=.*0\.90)(?=.*fc1)",
    readout=all_of("Jaccard", "0.90"),
    moves=[Move("sparsity", 0.3), Move("sparsity", 0.97), Move("sparsity", 0.6),
           Move("criterion", 0, title=r"^magnitude", readout=all_of("magnitude", "1.00")),   # overlaps itself
           Move("layer", 1, title=r"^magnitude.*fc2", readout="fc2 sparsity")])


def test_08_criteria_explorer_reacts_to_sparsity_criterion_and_layer(check_widget):
    check_widget(CASE)
