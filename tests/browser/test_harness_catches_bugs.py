"""The harness proves itself: on a widget with every bug of issue 11, each check reports its bug.

``fixtures/broken_explorer.ipynb`` gives a bar trace labels that reach the kernel's figure and never
plotly.js (as chapter 07's bytes bars did; the fixture writes them into plotly's trace dict, which sends
no message: labkit's FigureWidget and ``complete_batch`` fixed the transport bug it used to rely on),
leaves two traces unnamed (the legend reads
"trace 0", "trace 1"), gives no axis a title, squeezes its readout into a column too narrow for its
text, warns under the cell and raises in a widget callback once the slider passes 3.
"""
import pytest

import browser_helpers as lab
import widget_checks
from widget_checks import Move, WidgetCase

CASE = WidgetCase("_browser_fixtures/broken_explorer.ipynb", "broken", readout="n = 3",
                  moves=[Move("n", 0.99, readout="n = 5")])
EXPECTED = [
    "trace 2 (bytes): x differs",
    "the legend shows an unnamed trace as 'trace 0'",
    "the legend shows an unnamed trace as 'trace 1'",
    "xaxis has no title", "yaxis2 has no title",
    'text "n = 3: a line too long for its column" overflows its box',
    "under a cell: cell 1: ",                            # the UserWarning
    "log console: error: ValueError: a widget callback failed",
]


def test_every_check_reports_its_bug(page, lab_server, artifacts):
    lab.open_notebook(page, lab_server, CASE.notebook)
    lab.run_all_cells(page)
    lab.wait_kernel_idle(page)
    with pytest.raises(AssertionError) as failure:
        widget_checks.check_widget(page, lab_server, CASE, artifacts)
    message = str(failure.value)
    missing = [text for text in EXPECTED if text not in message]
    assert not missing, f"the harness missed {missing}; it reported:\n{message}"
    assert "UserWarning" in message and "log console" in message
