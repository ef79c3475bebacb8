"""Notebook 07 in a real browser: Run All Cells, then the pruning explorer reacts to its controls."""
import statistics

import pytest

import browser_helpers as lab

NOTEBOOK = "07_unstructured_pruning.ipynb"


def readout(root) -> str:
    return root.locator(".labkit-pruning-readout").inner_text()


@pytest.mark.browser
def test_07_pruning_explorer_reacts_to_sparsity_and_criterion(run_notebook):
    page = run_notebook(NOTEBOOK)  # also asserts that no output shows a Traceback or an ...Error
    root = lab.explorer(page, "pruning")
    root.scroll_into_view_if_needed()   # plotly draws a figure once it is on screen
    before = lab.figure_state(root)
    assert "fc1" in before["title"] and "0.90" in before["title"], before["title"]
    assert before["paths"], "the explorer drew no traces"
    text = readout(root)
    assert "global sparsity" in text and "90.0%" in text and "bytes CSR" in text, text

    latencies = []
    for fraction in (0.3, 0.97, 0.6):
        paths, text = lab.figure_state(root)["paths"], readout(root)
        latencies.append(lab.drag_slider(page, root, "labkit-pruning-sparsity", fraction))
        after = lab.figure_state(root)
        assert after["paths"] != paths, "releasing the sparsity slider did not redraw the histogram"
        page.wait_for_function("([el, old]) => el.innerText !== old",
                               arg=[root.locator(".labkit-pruning-readout").element_handle(), text])
    assert "90.0%" not in readout(root).split("\n")[1], readout(root)
    lab.screenshot(page, "notebook07_pruning_sparsity")

    text = readout(root)
    root.locator(".labkit-pruning-criterion button", has_text="random").click()
    page.wait_for_function("el => (el.querySelector('.js-plotly-plot .gtitle') || {}).textContent"
                           "?.startsWith('random')", arg=root.element_handle())
    page.wait_for_function("([el, old]) => el.innerText !== old",
                           arg=[root.locator(".labkit-pruning-readout").element_handle(), text])
    assert "random" in readout(root) and "—" in readout(root), readout(root)

    layer_latency = lab.select_option(page, root, "labkit-pruning-layer", index=2)   # fc3
    page.wait_for_function("el => (el.querySelector('.js-plotly-plot .gtitle') || {}).textContent"
                           "?.includes('fc3')", arg=root.element_handle())
    assert "fc3 sparsity" in readout(root)
    lab.assert_no_errors(page)
    assert not page.labkit_console_errors, page.labkit_console_errors
    lab.screenshot(page, "notebook07_pruning_random_fc3")
    lab.report("pruning sparsity slider release → figure redrawn (3 drags, re-prunes and re-evaluates): median "
               f"{statistics.median(m['last_ms'] for m in latencies):.0f} ms, max "
               f"{max(m['last_ms'] for m in latencies):.0f} ms (target ≤ 300 ms); layer pick "
               f"{layer_latency['last_ms']:.0f} ms")
