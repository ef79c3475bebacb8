"""Notebook 05 in a real browser: Run All Cells, then the quantizer gradient explorer reacts to its controls."""
from widget_checks import Move, WidgetCase, all_of

CASE = WidgetCase(
    "05_quantization_aware_training.ipynb", "quantizer-gradient", title=all_of("LSQ", "2 bits"), readout="∂x̂/∂s",
    moves=[Move("quantizer", 3, title="PACT", readout="∂x̂/∂α"),    # PACT
           Move("bits", 0.9), Move("clip", 0.2), Move("bits", 0.05, title="1 bits")])


def test_05_quantizer_gradient_explorer_reacts(check_widget):
    check_widget(CASE)
