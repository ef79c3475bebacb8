"""Notebook 12 in a real browser: Run All Cells, then the attention explorer reacts to p, student and layer."""
import pytest

import browser_helpers as lab

NOTEBOOK = "12_distillation_features.ipynb"


def readout(root) -> str:
    return root.locator(".labkit-attention-readout").inner_text()


def heatmaps(root) -> dict:
    """The figure's title and the data-URIs of its heat-map images (plotly draws a heatmap as an <image>)."""
    root.locator(".js-plotly-plot .hm image").first.wait_for(state="attached", timeout=60_000)
    return root.evaluate("""el => ({
        title: (el.querySelector('.js-plotly-plot .gtitle') || {}).textContent || '',
        images: Array.from(el.querySelectorAll('.js-plotly-plot .hm image')).map(i => i.getAttribute('href')),
    })""")


def wait_readout_change(page, root, old: str) -> None:
    page.wait_for_function("([el, old]) => el.innerText !== old",
                           arg=[root.locator(".labkit-attention-readout").element_handle(), old])


@pytest.mark.browser
def test_12_attention_explorer_reacts_to_p_student_and_layer(run_notebook):
    page = run_notebook(NOTEBOOK)  # also asserts that no output shows a Traceback or an ...Error
    root = lab.explorer(page, "attention")
    root.scroll_into_view_if_needed()   # plotly draws a figure once it is on screen
    before = heatmaps(root)
    assert "p = 2" in before["title"] and "image 0" in before["title"], before["title"]
    assert len(before["images"]) == 3, "the explorer should draw three heat-maps"
    text = readout(root)
    assert "AT loss, this image" in text and "KD + AT" in text, text

    p_latency = lab.drag_slider(page, root, "labkit-attention-p", 0.9)
    wait_readout_change(page, root, text)
    assert "p = 2\n" not in readout(root) and "p = 2," not in readout(root), readout(root)
    after = heatmaps(root)
    assert "p = 2:" not in after["title"] and after["images"] != before["images"], after["title"]
    lab.screenshot(page, "notebook12_attention_p")

    text = readout(root)
    student_latency = lab.select_option(page, root, "labkit-attention-student", label="CE only")
    wait_readout_change(page, root, text)
    assert "CE only" in readout(root)

    text = readout(root)
    layer_latency = lab.select_option(page, root, "labkit-attention-layer", index=1)
    wait_readout_change(page, root, text)
    assert "relu1" in heatmaps(root)["title"]

    text = readout(root)
    image_latency = lab.drag_slider(page, root, "labkit-attention-image", 0.6)
    wait_readout_change(page, root, text)
    assert "image 0" not in readout(root)
    lab.assert_no_errors(page)
    assert not page.labkit_console_errors, page.labkit_console_errors
    lab.screenshot(page, "notebook12_attention_layer")
    lab.report(f"attention explorer (cached features, normalised maps): p release → figure "
               f"{p_latency['last_ms']:.0f} ms, student pick {student_latency['last_ms']:.0f} ms, layer pick "
               f"{layer_latency['last_ms']:.0f} ms, image pick {image_latency['last_ms']:.0f} ms (target ≤ 100 ms)")
