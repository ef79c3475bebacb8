"""Notebook 09 in a real browser: Run All Cells, then the channel-pruning explorer reacts to its controls."""
import statistics

import pytest

import browser_helpers as lab

NOTEBOOK = "09_structured_pruning.ipynb"


def readout(root) -> str:
    return root.locator(".labkit-channels-readout").inner_text()


def wait_readout_change(page, root, old: str) -> None:
    page.wait_for_function("([el, old]) => el.innerText !== old",
                           arg=[root.locator(".labkit-channels-readout").element_handle(), old])


@pytest.mark.browser
def test_09_channel_explorer_reacts_to_ratio_criterion_and_layer(run_notebook):
    page = run_notebook(NOTEBOOK)  # also asserts that no output shows a Traceback or an ...Error
    root = lab.explorer(page, "channels")
    root.scroll_into_view_if_needed()   # plotly draws a figure once it is on screen
    before = lab.figure_state(root)
    assert before["title"].startswith("l1 scores of conv6") and "32 of 64" in before["title"], before["title"]
    assert before["paths"], "the explorer drew no traces"
    text = readout(root)
    assert "50% of channels removed" in text and "MACs" in text and "latency (measured)" in text, text

    latencies = []
    for fraction in (0.2, 0.85):
        paths, text = lab.figure_state(root)["paths"], readout(root)
        latencies.append(lab.drag_slider(page, root, "labkit-channels-ratio", fraction))
        assert lab.figure_state(root)["paths"] != paths, "releasing the ratio slider did not redraw the bars"
        wait_readout_change(page, root, text)
    assert "50% of channels removed" not in readout(root), readout(root)
    lab.screenshot(page, "notebook09_channels_ratio")

    text = readout(root)
    criterion_latency = lab.select_option(page, root, "labkit-channels-criterion", value="bn")
    page.wait_for_function("el => (el.querySelector('.js-plotly-plot .gtitle') || {}).textContent"
                           "?.startsWith('bn scores')", arg=root.element_handle())
    wait_readout_change(page, root, text)
    assert readout(root).startswith("bn"), readout(root)

    layer_latency = lab.select_option(page, root, "labkit-channels-layer", index=0)   # conv1
    page.wait_for_function("el => (el.querySelector('.js-plotly-plot .gtitle') || {}).textContent"
                           "?.includes('of conv1')", arg=root.element_handle())
    lab.assert_no_errors(page)
    assert not page.labkit_console_errors, page.labkit_console_errors
    lab.screenshot(page, "notebook09_channels_bn_conv1")
    lab.report("channels ratio slider release → figure redrawn (2 drags, prune + evaluate + latency): median "
               f"{statistics.median(m['last_ms'] for m in latencies):.0f} ms; criterion pick "
               f"{criterion_latency['last_ms']:.0f} ms; layer pick {layer_latency['last_ms']:.0f} ms")
