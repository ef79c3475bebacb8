"""Notebook 08 in a real browser: Run All Cells, then the criteria explorer reacts to its controls."""
import statistics

import pytest

import browser_helpers as lab

NOTEBOOK = "08_importance_criteria.ipynb"


def readout(root) -> str:
    return root.locator(".labkit-criteria-readout").inner_text()


def wait_for_title(page, root, start: str) -> None:
    page.wait_for_function("([el, text]) => (el.querySelector('.js-plotly-plot .gtitle') || {}).textContent"
                           "?.startsWith(text)", arg=[root.element_handle(), start])


@pytest.mark.browser
def test_08_criteria_explorer_reacts_to_sparsity_and_criterion(run_notebook):
    page = run_notebook(NOTEBOOK)  # also asserts that no output shows a Traceback or an ...Error
    root = lab.explorer(page, "criteria")
    root.scroll_into_view_if_needed()   # plotly draws a figure once it is on screen
    before = lab.figure_state(root)
    assert before["title"].startswith("taylor") and "0.90" in before["title"] and "fc1" in before["title"], \
        before["title"]
    assert before["paths"], "the explorer drew no traces"
    text = readout(root)
    assert "Jaccard" in text and "0.90" in text, text

    latencies = []
    for fraction in (0.3, 0.97, 0.6):
        paths, text = lab.figure_state(root)["paths"], readout(root)
        latencies.append(lab.drag_slider(page, root, "labkit-criteria-sparsity", fraction))
        assert lab.figure_state(root)["paths"] != paths, "releasing the sparsity slider did not redraw"
        page.wait_for_function("([el, old]) => el.innerText !== old",
                               arg=[root.locator(".labkit-criteria-readout").element_handle(), text])
    lab.screenshot(page, "notebook08_criteria_sparsity")

    select_latency = lab.select_option(page, root, "labkit-criteria-criterion", index=0)   # magnitude
    wait_for_title(page, root, "magnitude")
    page.wait_for_function("el => el.innerText.includes('magnitude')",
                           arg=root.locator(".labkit-criteria-readout").element_handle())
    assert "1.00" in readout(root), readout(root)        # magnitude overlaps itself completely

    layer_latency = lab.select_option(page, root, "labkit-criteria-layer", index=1)   # fc2
    wait_for_title(page, root, "magnitude")
    page.wait_for_function("el => (el.querySelector('.js-plotly-plot .gtitle') || {}).textContent?.includes('fc2')",
                           arg=root.element_handle())
    assert "fc2 sparsity" in readout(root)
    lab.assert_no_errors(page)
    assert not page.labkit_console_errors, page.labkit_console_errors
    lab.screenshot(page, "notebook08_criteria_magnitude_fc2")
    lab.report("criteria sparsity slider release → figure redrawn (3 drags, re-prunes and re-evaluates): median "
               f"{statistics.median(m['last_ms'] for m in latencies):.0f} ms, max "
               f"{max(m['last_ms'] for m in latencies):.0f} ms (target ≤ 300 ms); criterion change "
               f"{select_latency['last_ms']:.0f} ms; layer pick {layer_latency['last_ms']:.0f} ms")
