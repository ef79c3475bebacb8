"""Notebook 11 in a real browser: Run All Cells, then the temperature explorer reacts to its controls."""
from widget_checks import Move, WidgetCase, all_of

CASE = WidgetCase(
    "11_distillation_soft_labels.ipynb", "temperature", title=all_of("T = 4", "image 0"),
    readout=all_of("dark knowledge", "entropy at T = 4"),
    moves=[Move("temperature", 0.9), Move("temperature", 0.02), Move("temperature", 0.5),
           Move("image", 0.6, title=r"^(?!image 0)", readout="predicted class")])


def test_11_temperature_explorer_reacts_to_temperature_and_image(check_widget):
    check_widget(CASE)
