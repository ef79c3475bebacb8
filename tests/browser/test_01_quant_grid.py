"""Notebook 01 in a real browser: Run All Cells, then the quantization-grid explorer reacts to its controls.

The bits slider changes the bit width in the title ("n-bit", "2ⁿ levels") and the readout; the
granularity picker switches to per-channel (one (s, z) pair per output channel: 120 for fc1), then
per-group; then the group size, the channel shown, the layer and the x̂ overlay — every control.
"""
import re

from widget_checks import Move, WidgetCase, all_of


def bits(state) -> int:
    match = re.search(r"(\d)-bit", state.title)
    assert match, f"the figure title does not name the bit width: {state.title!r}"
    return int(match.group(1))


def bits_moved(before, after):
    assert bits(after) != bits(before), "releasing the bits slider did not change the bit width"
    n = bits(after)
    assert f"{2 ** n} levels" in after.title, after.title
    assert f"{n} / {2 ** n}" in after.readout, after.readout


CASE = WidgetCase(
    "01_quantization_basics.ipynb", "quant-grid", title=all_of("4-bit", "16 levels"),
    readout=all_of("SQNR", "compression"),
    moves=[*(Move("bits", fraction, check=bits_moved) for fraction in (0.98, 0.05, 0.55, 0.3, 0.8)),
           Move("granularity", "per-channel", title="per-channel", readout=all_of("(s, z) pairs", "120")),
           Move("scheme", "symmetric", title="symmetric"),
           Move("granularity", "per-group", title="per-group", readout="size 16"),
           Move("group-size", "25", readout="size 25"),
           Move("channel", "channel 3", title="channel 3"),
           Move("layer", 1, title="conv2.weight", readout="conv2.weight"),
           Move("show-quantized", False)])


def test_01_quant_grid_explorer_reacts_to_bits_granularity_and_scheme(check_widget):
    check_widget(CASE)
