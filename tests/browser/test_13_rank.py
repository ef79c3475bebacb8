"""Notebook 13 in a real browser: Run All Cells, then the rank explorer reacts to its controls."""
from widget_checks import Move, WidgetCase, all_of

CASE = WidgetCase(     # the notebook's next cell calls explorer.set(energy=0.5): fc1 at rank 6
    "13_lowrank_lightweight.ipynb", "rank", title=all_of("fc1", "rank 6 ", "0.50"),
    readout=all_of("relative error", "6,804 / 235,500", "MACs"),
    moves=[Move("energy", 0.3), Move("energy", 0.97),
           Move("energy", 0.7, check=lambda b, a: "6,804 / 235,500" not in a.readout),
           Move("layer", 1, title=r"^fc2", readout="fc2 factorised")])


def test_13_rank_explorer_reacts_to_energy_and_layer(check_widget):
    check_widget(CASE)
