"""Notebook 13 in a real browser: Run All Cells, then the rank explorer reacts to both of its controls
(energy, layer), and says so when the factorised layer is larger than the dense one."""
import re

from widget_checks import Move, WidgetCase, all_of

LARGER = "larger than the dense layer"


def no_warning(state):
    assert LARGER not in state.readout, "this rank saves parameters: the readout must not say it is larger"
    assert re.search(r"accuracy \(eval subset\)\s+\d+\.\d%", state.readout), "accuracy must be shown in %"


def left_rank_89(before, after):
    assert "96,776 / 235,500" not in after.readout, "the readout still shows rank 89's parameters"


CASE = WidgetCase(     # shown untouched after Run All: fc1 at energy 0.9 is rank 89 (MNIST LeNet-300-100)
    "13_lowrank_lightweight.ipynb", "rank", title=all_of("fc1", "rank 89 ", "90% of the energy"),
    readout=all_of("relative error", "96,776 / 235,500", "MACs", "accuracy (eval subset)"),
    check=no_warning,
    moves=[Move("energy", 0.3, check=left_rank_89),
           Move("energy", 1.0, title="rank 300 ", readout=LARGER),     # above the break-even rank 216.97
           Move("energy", 0.7, title="rank 32 ", readout="34,988 / 235,500", check=lambda b, a: no_warning(a)),
           Move("layer", 1, title=r"^fc2", readout="fc2 factorised")])


def test_13_rank_explorer_reacts_to_energy_and_layer(check_widget):
    check_widget(CASE)
