"""Notebook 09 in a real browser: Run All Cells, then the channel-pruning explorer reacts to its controls,
including "time it", which measures the dense and the pruned model together."""
from widget_checks import Move, WidgetCase, all_of

CASE = WidgetCase(
    "09_structured_pruning.ipynb", "channel-pruning", title=r"^l1 scores of conv6.*32 of 64",
    readout=all_of("50% of the channels", "MACs / image", "press time it"),
    moves=[Move("ratio", 0.2), Move("ratio", 0.85, check=lambda b, a: "50% of the channels" not in a.readout),
           Move("criterion", "bn", title=r"^bn scores", readout=r"^bn"),
           Move("layer", 0, title="of conv1"),
           Move("time", True, readout="latency measured together")])


def test_09_channel_pruning_explorer_reacts_to_ratio_criterion_layer_and_timing(check_widget):
    check_widget(CASE)
