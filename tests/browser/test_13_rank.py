"""Notebook 13 in a real browser: Run All Cells, then the rank explorer reacts to its controls."""
import statistics

import pytest

import browser_helpers as lab

NOTEBOOK = "13_lowrank_lightweight.ipynb"


def readout(root) -> str:
    return root.locator(".labkit-rank-readout").inner_text()


@pytest.mark.browser
def test_13_rank_explorer_reacts_to_energy_and_layer(run_notebook):
    page = run_notebook(NOTEBOOK)  # also asserts that no output shows a Traceback or an ...Error
    root = lab.explorer(page, "rank")
    root.scroll_into_view_if_needed()   # plotly draws a figure once it is on screen
    before = lab.figure_state(root)
    # the notebook's next cell calls explorer.set(energy=0.5): fc1 at rank 6
    assert "fc1" in before["title"] and "rank 6 " in before["title"] and "0.50" in before["title"], before["title"]
    assert before["paths"], "the explorer drew no traces"
    text = readout(root)
    assert "relative error" in text and "6,804 / 235,500" in text and "MACs" in text, text

    latencies = []
    for fraction in (0.3, 0.97, 0.7):
        paths, text = lab.figure_state(root)["paths"], readout(root)
        latencies.append(lab.drag_slider(page, root, "labkit-rank-energy", fraction))
        after = lab.figure_state(root)
        assert after["paths"] != paths, "releasing the energy slider did not redraw the spectrum"
        page.wait_for_function("([el, old]) => el.innerText !== old",
                               arg=[root.locator(".labkit-rank-readout").element_handle(), text])
    assert "6,804 / 235,500" not in readout(root), readout(root)
    lab.screenshot(page, "notebook13_rank_energy")

    layer_latency = lab.select_option(page, root, "labkit-rank-layer", index=1)   # fc2
    page.wait_for_function("el => (el.querySelector('.js-plotly-plot .gtitle') || {}).textContent"
                           "?.startsWith('fc2')", arg=root.element_handle())
    assert "fc2 factorised" in readout(root), readout(root)
    lab.assert_no_errors(page)
    assert not page.labkit_console_errors, page.labkit_console_errors
    lab.screenshot(page, "notebook13_rank_fc2")
    lab.report("rank energy slider release → figure redrawn (3 drags, re-factorises and re-evaluates): median "
               f"{statistics.median(m['last_ms'] for m in latencies):.0f} ms, max "
               f"{max(m['last_ms'] for m in latencies):.0f} ms (target ≤ 300 ms); layer pick "
               f"{layer_latency['last_ms']:.0f} ms")
