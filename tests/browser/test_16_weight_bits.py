"""Notebook 16 in a real browser: Run All Cells, then the bits × group-size explorer reacts to both sliders
(perplexity, bytes and the generated text change; the current setting is ringed on the plot)."""
import re

from widget_checks import Move, WidgetCase, all_of


def ring_on_a_line(state):
    traces = {t["name"]: t for t in state.figures[0]["traces"]}
    assert traces["current setting"]["n"] == 1, f"one current setting must be ringed: {traces['current setting']}"
    assert traces["float32"]["n"] == 1, "the float32 model must be shown"
    for g in (16, 32, 64, 128):
        assert traces[f"RTN, group {g}"]["n"] == 7, f"the precomputed grid must show 7 bit widths for group {g}"
    assert re.search(r"perplexity \[95 % window interval\]\s+\d+\.\d{3}", state.readout), "perplexity missing"


def text_changed(before, after):
    sample = (lambda s: s.readout.split("quantized model writes:")[1].split("float32 model writes:")[0])
    assert sample(before) != sample(after), "the generated text must change between 3 and 2 bits"


CASE = WidgetCase(   # shown after Run All at 3 bits, group 64, the 28-setting grid precomputed
    "16_transformer_compression.ipynb", "weight-bits", title=all_of("Perplexity vs bytes", "RTN 3-bit, group 64", "kB"),
    readout=all_of("RTN 3-bit, group 64", "28 settings cached", "bytes on disk", "PPL / float32 (paired)",
                   "quantized model writes", "float32 model writes"),
    check=ring_on_a_line,
    moves=[Move("bits", 0.0, title="RTN 2-bit, group 64", readout="RTN 2-bit", check=text_changed),
           Move("bits", 1.0, title="RTN 8-bit, group 64", readout="RTN 8-bit"),
           Move("group-size", 0.0, title="RTN 8-bit, group 16", readout="group 16"),
           Move("group-size", 1.0, title="RTN 8-bit, group 128", readout="28 settings cached")])


def test_16_weight_bits_explorer_reacts_to_bits_and_group_size(check_widget):
    check_widget(CASE)
