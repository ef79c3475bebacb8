"""The harness on its own small notebook: the histogram explorer renders and reacts in Chromium.

Independent of the chapters: ``fixtures/histogram_demo.ipynb`` builds a 2-layer MLP and shows
``WeightHistogramExplorer``. Every check of ``widget_checks`` applies; latencies are printed.
"""
from widget_checks import Move, WidgetCase, axis_type

CASE = WidgetCase(
    "_browser_fixtures/histogram_demo.ipynb", "weight-histogram", title=r"0\.weight",
    moves=[Move("layer", 1, title=r"2\.weight", readout=r"2\.weight"),
           *(Move("bins", fraction) for fraction in (0.1, 0.9, 0.3, 0.7, 0.05)),
           Move("log", True, check=axis_type("y", "log"))])


def test_weight_histogram_explorer_renders_and_reacts(check_widget):
    check_widget(CASE)
