"""Notebook 12 in a real browser: Run All Cells, then the attention explorer reacts to p, student, layer, image."""
from widget_checks import Move, WidgetCase, all_of


def three_maps(state):
    assert sum(mark.startswith("data:") for mark in state.marks) == 3, "the explorer should draw three heat-maps"


CASE = WidgetCase(
    "12_distillation_features.ipynb", "attention", title=all_of("p = 2", "image 0"),
    readout=all_of("AT loss, this image", "KD + AT"), check=three_maps,
    moves=[Move("p", 0.9, title=r"^(?!.*p = 2:)"),
           Move("student", "CE only", readout="CE only"),
           Move("layer", 1, title="relu1"),
           Move("image", 0.6, check=lambda b, a: "image 0" not in a.readout)])


def test_12_attention_explorer_reacts_to_p_student_layer_and_image(check_widget):
    check_widget(CASE)
