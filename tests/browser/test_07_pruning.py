"""Notebook 07 in a real browser: Run All Cells, then the pruning explorer reacts to its controls."""
from widget_checks import Move, WidgetCase, all_of


def sparsity_moved(before, after):
    assert "90.0%" not in after.readout.split("\n")[1], after.readout


CASE = WidgetCase(
    "07_unstructured_pruning.ipynb", "pruning",
    title=all_of("fc1", "0.90"), readout=all_of("global sparsity", "90.0%", "bytes CSR"),
    moves=[Move("sparsity", 0.3), Move("sparsity", 0.97), Move("sparsity", 0.6, check=sparsity_moved),
           Move("criterion", "random", title=r"^random", readout=all_of("random", "—")),
           Move("layer", 2, title="fc3", readout="fc3 sparsity")])


def test_07_pruning_explorer_reacts_to_sparsity_criterion_and_layer(check_widget):
    check_widget(CASE)
