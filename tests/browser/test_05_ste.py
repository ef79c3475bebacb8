"""Notebook 05 in a real browser: Run All Cells, then the quantizer gradient explorer reacts to its controls."""
import statistics

import pytest

import browser_helpers as lab

NOTEBOOK = "05_quantization_aware_training.ipynb"


def title(root) -> str:
    return lab.figure_state(root)["title"]


def wait_for_title(page, root, text: str) -> None:
    page.wait_for_function("([el, text]) => (el.querySelector('.js-plotly-plot .gtitle') || {}).textContent"
                           "?.includes(text)", arg=[root.element_handle(), text])


@pytest.mark.browser
def test_05_quantizer_gradient_explorer_reacts(run_notebook):
    page = run_notebook(NOTEBOOK)  # also asserts that no output shows a Traceback or an ...Error
    root = lab.explorer(page, "ste")
    root.scroll_into_view_if_needed()   # plotly draws a figure once it is on screen
    before = lab.figure_state(root)
    assert "LSQ" in before["title"] and "2 bits" in before["title"], before["title"]
    assert before["paths"], "the explorer drew no traces"
    assert "∂x̂/∂s" in root.locator(".labkit-ste-readout").inner_text()

    select_latency = lab.select_option(page, root, "labkit-ste-quantizer", index=3)   # PACT
    wait_for_title(page, root, "PACT")
    assert "∂x̂/∂α" in root.locator(".labkit-ste-readout").inner_text()
    assert lab.figure_state(root)["paths"] != before["paths"], "switching to PACT did not redraw the curves"
    lab.screenshot(page, "notebook05_ste_pact")

    latencies = []
    for control, fraction in (("labkit-ste-bits", 0.9), ("labkit-ste-clip", 0.2), ("labkit-ste-bits", 0.05)):
        paths = lab.figure_state(root)["paths"]
        latencies.append(lab.drag_slider(page, root, control, fraction))
        assert lab.figure_state(root)["paths"] != paths, f"releasing {control} did not redraw the curves"
    wait_for_title(page, root, "1 bits")
    lab.assert_no_errors(page)
    assert not page.labkit_console_errors, page.labkit_console_errors
    lab.screenshot(page, "notebook05_ste_sliders")
    lab.report(f"STE explorer quantizer change → figure redrawn: {select_latency['last_ms']:.0f} ms")
    lab.report("STE explorer slider release → figure redrawn (3 drags): median "
               f"{statistics.median(m['last_ms'] for m in latencies):.0f} ms, max "
               f"{max(m['last_ms'] for m in latencies):.0f} ms (target ≤ 100 ms)")
