"""Notebook 02 in a real browser: Run All Cells, then the TWN threshold explorer reacts to its controls."""
import statistics

import pytest

import browser_helpers as lab

NOTEBOOK = "02_binary_ternary.ipynb"


def readout(root) -> str:
    return root.locator(".labkit-twn-readout").inner_text()


@pytest.mark.browser
def test_02_twn_explorer_reacts_to_factor_and_per_channel(run_notebook):
    page = run_notebook(NOTEBOOK)  # also asserts that no output shows a Traceback or an ...Error
    root = lab.explorer(page, "twn")
    root.scroll_into_view_if_needed()   # plotly draws a figure once it is on screen
    before = lab.figure_state(root)
    assert "fc1" in before["title"] and "0.70" in before["title"], before["title"]
    assert before["paths"], "the explorer drew no traces"
    text = readout(root)
    assert "fc1" in text and "sparsity" in text, text

    latencies = []
    for fraction in (0.95, 0.1, 0.6):
        paths, text = lab.figure_state(root)["paths"], readout(root)
        latencies.append(lab.drag_slider(page, root, "labkit-twn-factor", fraction))
        after = lab.figure_state(root)
        assert after["paths"] != paths, "releasing the factor slider did not move the thresholds"
        page.wait_for_function("([el, old]) => el.innerText !== old",
                               arg=[root.locator(".labkit-twn-readout").element_handle(), text])
    lab.screenshot(page, "notebook02_twn_factor")

    root.locator(".labkit-twn-per-channel input[type=checkbox]").check()
    page.wait_for_function("el => (el.querySelector('.js-plotly-plot .gtitle') || {}).textContent"
                           "?.includes('per channel')", arg=root.element_handle())
    assert "per channel" in readout(root)
    lab.assert_no_errors(page)
    assert not page.labkit_console_errors, page.labkit_console_errors
    lab.screenshot(page, "notebook02_twn_per_channel")
    lab.report("TWN factor slider release → figure redrawn (3 drags): median "
               f"{statistics.median(m['last_ms'] for m in latencies):.0f} ms, max "
               f"{max(m['last_ms'] for m in latencies):.0f} ms (target ≤ 100 ms)")
