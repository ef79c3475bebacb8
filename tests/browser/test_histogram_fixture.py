"""The harness on its own small notebook: the histogram explorer renders and reacts in Chromium.

Independent of the chapters: ``fixtures/histogram_demo.ipynb`` builds a 2-layer MLP and shows
``WeightHistogramExplorer``. Also measures slider release → figure redraw (printed, never asserted).
"""
import statistics

import pytest

import browser_helpers as lab

NOTEBOOK = "_browser_fixtures/histogram_demo.ipynb"


@pytest.mark.browser
def test_histogram_explorer_renders_and_reacts(run_notebook):
    page = run_notebook(NOTEBOOK)
    root = lab.explorer(page, "histogram")
    before = lab.figure_state(root)
    assert "0.weight" in before["title"], before["title"]
    assert len(before["paths"]) > 0, "the plotly bar trace drew no bars"
    lab.screenshot(page, "histogram_fixture_before")

    layer_latency = lab.select_option(page, root, "labkit-histogram-layer", index=1)  # 2.weight
    after = lab.figure_state(root)
    assert "2.weight" in after["title"] and after["title"] != before["title"], after["title"]
    assert after["paths"] != before["paths"], "changing the layer did not redraw the bars"
    assert "2.weight" in root.locator(".labkit-histogram-readout").inner_text()
    lab.screenshot(page, "histogram_fixture_layer2")

    slider_latency = []
    for fraction in (0.1, 0.9, 0.3, 0.7, 0.05):
        paths = lab.figure_state(root)["paths"]
        slider_latency.append(lab.drag_slider(page, root, "labkit-histogram-bins", fraction))
        assert lab.figure_state(root)["paths"] != paths, "releasing the bins slider did not redraw the bars"
    lab.screenshot(page, "histogram_fixture_bins")

    page.locator(".labkit-histogram-log input[type=checkbox]").check()
    page.wait_for_function("() => document.querySelector('.labkit-histogram .js-plotly-plot .ytick')"
                           " && document.querySelector('.labkit-histogram .js-plotly-plot')"
                           ".layout.yaxis.type === 'log'")
    lab.assert_no_errors(page)
    assert not page.labkit_console_errors, page.labkit_console_errors

    lab.report(f"histogram layer change → figure redrawn: {layer_latency['last_ms']:.0f} ms")
    lab.report("histogram bins slider release → figure redrawn (5 drags): median "
               f"{statistics.median(m['last_ms'] for m in slider_latency):.0f} ms, max "
               f"{max(m['last_ms'] for m in slider_latency):.0f} ms (target ≤ 100 ms)")
