"""Notebook 04 in a real browser: Run All Cells, then its quantization grid (symmetric, per channel,
8 bits: what the int8 kernels use) reacts to the bits slider and the channel picker."""
from widget_checks import Move, WidgetCase, all_of

CASE = WidgetCase(
    "04_integer_inference.ipynb", "quant-grid", title=all_of("8-bit", "symmetric"),
    moves=[Move("bits", 0.3), Move("channel", 2), Move("bits", 0.98, title="8-bit")])


def test_04_quant_grid_explorer_reacts_to_bits_and_channel(check_widget):
    check_widget(CASE)
