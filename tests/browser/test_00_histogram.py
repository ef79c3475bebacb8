"""Notebook 00 in a real browser: Run All Cells, then the weight-histogram explorer reacts to the layer picker."""
import pytest

import browser_helpers as lab

NOTEBOOK = "00_why_compress.ipynb"


@pytest.mark.browser
def test_00_histogram_explorer_changes_with_layer(run_notebook):
    page = run_notebook(NOTEBOOK)  # also asserts that no output shows a Traceback or an ...Error
    root = lab.explorer(page, "histogram")
    before = lab.figure_state(root)
    assert before["paths"], "the histogram drew no bars"
    select = root.locator(".labkit-histogram-layer select")
    options = select.locator("option").evaluate_all("els => els.map(e => e.value)")
    current = select.evaluate("el => el.value")
    others = [value for value in options if value != current]
    assert others, f"the layer picker offers a single layer: {options}"
    latency = lab.select_option(page, root, "labkit-histogram-layer", value=others[-1])
    after = lab.figure_state(root)
    assert after["title"] != before["title"] or after["paths"] != before["paths"], \
        "picking another layer did not change the figure"
    lab.assert_no_errors(page)
    lab.screenshot(page, "notebook00_histogram")
    lab.report(f"{NOTEBOOK}: layer change → histogram redrawn in {latency['last_ms']:.0f} ms")
