"""labkit.widgets.base without a browser: the conventions every explorer follows (factories, CSS
classes, ``Explorer`` redraws and checks, figures that reach the browser drawn, the readout table)."""
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from labkit.widgets import Explorer, WeightHistogramExplorer, checkbox, css_class, dropdown, int_slider, slider


def small_cnn():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 28 * 28, 10))


# --- base.py factories and Explorer --------------------------------------------------------------

def test_factories_set_class_and_release_only_updates():
    s = slider("quant", "scale", value=0.5, min=0.0, max=1.0, step=0.1, description="scale")
    i = int_slider("quant", "bits", value=4, min=1, max=8)
    d = dropdown("quant", "mode", options=["tensor", "channel"])
    c = checkbox("quant", "symmetric", value=True)
    assert s.continuous_update is False and i.continuous_update is False
    assert slider("quant", "live", continuous_update=True).continuous_update is True
    assert [w._dom_classes for w in (s, i, d, c)] == [
        ("labkit-quant-scale",), ("labkit-quant-bits",), ("labkit-quant-mode",), ("labkit-quant-symmetric",)]
    assert css_class("prune") == "labkit-prune"
    with pytest.raises(ValueError, match="control"):
        css_class("quant", "Bad Name")


def test_last_update_ms_times_the_draw():
    class Slow(Explorer):
        name = "slow"
        delay_s = 0.05

        def build_controls(self):
            return {"x": int_slider(self.name, "x", value=1, min=0, max=10)}

        def build_figure(self):
            import plotly.graph_objects as go
            return go.FigureWidget(data=[go.Scatter(x=[], y=[])])

        def draw(self, values):
            time.sleep(self.delay_s)

    explorer = Slow()
    assert explorer.last_update_ms >= 50  # the constructor's draw slept 50 ms
    explorer.delay_s = 0.0
    explorer.set(x=2)
    assert explorer.last_update_ms < 50 and explorer.update_count == 2  # the new draw, not the old


def test_minimal_subclass():
    class Square(Explorer):
        name = "square"

        def build_controls(self):
            return {"x": int_slider(self.name, "x", value=2, min=0, max=10)}

        def build_figure(self):
            import plotly.graph_objects as go
            return go.FigureWidget(data=[go.Scatter(x=[], y=[])])

        def draw(self, values):
            self.figure.data[0].x = [values["x"]]
            self.figure.data[0].y = [values["x"] ** 2]
            self.stats = {"square": values["x"] ** 2}

    explorer = Square()
    assert explorer.stats == {"square": 4}
    explorer.set(x=3)
    assert explorer.figure.data[0].y == (9,) and explorer.values == {"x": 3}


# --- the real-browser harness (tests/browser/conftest.py), collected without a browser -----------

def collect_browser_tests(**env):
    """``pytest --collect-only`` on the browser tests in a subprocess with ``env`` added; (rc, output)."""
    repo = Path(__file__).resolve().parent.parent
    environ = {k: v for k, v in os.environ.items() if k not in ("CI", "LABKIT_SKIP_BROWSER")}
    result = subprocess.run([sys.executable, "-m", "pytest", "tests/browser/test_00_weight_histogram.py", "-rs",
                             "--collect-only", "-q", "-p", "no:cacheprovider"], cwd=repo, timeout=120,
                            capture_output=True, text=True, env={**environ, **env})
    return result.returncode, result.stdout + result.stderr


def test_browser_tests_cannot_be_skipped_in_ci():
    rc, output = collect_browser_tests(LABKIT_SKIP_BROWSER="1")
    assert rc == 0, output  # a developer without Chromium may skip them
    rc, output = collect_browser_tests(LABKIT_SKIP_BROWSER="1", CI="true")
    assert rc == pytest.ExitCode.USAGE_ERROR, output
    assert "browser tests must run in CI" in output


def test_set_refuses_values_the_slider_would_clamp_or_truncate():
    class Knobs(Explorer):
        name = "knobs"

        def build_controls(self):
            return {"sparsity": slider(self.name, "sparsity", value=0.5, min=0.0, max=0.99, step=0.01),
                    "bits": int_slider(self.name, "bits", value=4, min=1, max=8)}

        def build_figure(self):
            import plotly.graph_objects as go
            return go.FigureWidget(data=[go.Scatter(x=[], y=[])])

        def draw(self, values):
            self.stats = dict(values)

    explorer = Knobs()
    for bad in (1.5, -3, float("nan")):  # before: 1.5 → 0.99 and -3 → 0.0, silently
        with pytest.raises(ValueError, match=r"^sparsity must be in \[0.0, 0.99\] \(the slider's range\)"):
            explorer.set(sparsity=bad)
    with pytest.raises(ValueError, match=r"^bits must be in \[1, 8\]"):
        explorer.set(bits=9)
    with pytest.raises(TypeError, match=r"^bits must be an integer in \[1, 8\], got 2.5"):
        explorer.set(bits=2.5)  # before: truncated to 2
    with pytest.raises(ValueError, match="^sparsity='half' is not accepted by this control"):
        explorer.set(sparsity="half")
    assert explorer.update_count == 1 and explorer.values == {"sparsity": 0.5, "bits": 4}  # nothing changed
    explorer.set(sparsity=0.99, bits=8.0)
    assert explorer.stats == {"sparsity": 0.99, "bits": 8}


# --- figure helpers shared by the explorers --------------------------------------------------------

def test_step_histogram_counts_every_value_with_one_empty_bin_each_side():
    from labkit.widgets.base import step_histogram
    values = np.array([0.1, 0.2, 0.2, 0.9, 1.0])
    counts, edges = np.histogram(values, bins=3)
    x, y = step_histogram(counts, edges)
    assert isinstance(x, list) and isinstance(y, list) and len(x) == len(y) == 3 + 3
    assert sum(y) == 5 and y[0] == 0 and y[-2:] == [0, 0]
    width = edges[1] - edges[0]
    assert x[0] == pytest.approx(edges[0] - width) and x[-1] == pytest.approx(edges[-1] + width)
    assert x[1:-1] == pytest.approx(list(edges)) and y[1:-2] == counts.tolist()


def test_vertical_lines_zigzag_outside_the_unit_range():
    from labkit.widgets.base import vertical_lines
    x, y = vertical_lines(np.array([-0.5, 0.0, 2.0]))
    assert x == [-0.5] * 3 + [0.0] * 3 + [2.0] * 3
    assert y == [-1.0, 0.5, 2.0, 2.0, 0.5, -1.0, -1.0, 0.5, 2.0]
    joins = [(y[i], y[i + 1]) for i in range(2, len(y) - 1, 3)]        # the segments between two lines
    assert all(a == b and not 0.0 <= a <= 1.0 for a, b in joins)       # horizontal, outside [0, 1]
    assert vertical_lines([]) == ([], [])


def test_an_explorer_figure_reaches_the_browser_already_drawn(monkeypatch):
    """The comm of a labkit FigureWidget opens with the drawn data, layout and CSS class in its first
    message (plotly.py's own FigureWidget opens it with empty data and layout, which a loaded browser
    could draw as an empty plot that never recovers)."""
    import ipywidgets.widgets.widget as widget_module
    import plotly.graph_objects as go

    from labkit.widgets.base import FigureWidget

    opened, create = [], widget_module.comm.create_comm
    monkeypatch.setattr(widget_module.comm, "create_comm", lambda **kw: opened.append(kw) or create(**kw))
    explorer = WeightHistogramExplorer(small_cnn(), bins=20)
    figures = [kw["data"]["state"] for kw in opened if "_widget_data" in kw["data"]["state"]]
    assert len(figures) == 1
    assert len(figures[0]["_widget_data"][0]["x"]) == 20 and sum(figures[0]["_widget_data"][0]["y"]) == 150
    assert "0.weight" in figures[0]["_widget_layout"]["title"]["text"]
    assert "labkit-weight-histogram-figure" in figures[0]["_dom_classes"]
    assert explorer.figure.comm is not None
    opened.clear()
    plain = FigureWidget(data=[go.Scatter(x=[1, 2], y=[3, 4])])            # outside an explorer: opens at once
    assert plain.comm is not None and opened[0]["data"]["state"]["_widget_data"][0]["x"] == [1, 2]


def test_figure_front_end_initializes_at_once_and_keeps_its_state_current():
    """The freeze of issue 11: anywidget drops every message to a figure whose front end took > 2 s to
    initialize (plotly's 5 MB module parsed per figure on a loaded machine). labkit's FigureWidget sends a
    small module that initializes at once and imports plotly's module once per page (the bundle rides in a
    trait, keyed by version and size), and sends the whole figure as its state after every redraw, so a
    view drawn after updates it never saw starts from the figure as it is."""
    import plotly
    import plotly.graph_objects as go

    from labkit.widgets.base import FigureWidget

    figure = FigureWidget(data=[go.Scatter(x=[1, 2], y=[3, 4], name="a")])
    state = figure.get_state()
    assert len(state["_esm"]) < 2_000 and "import(url)" in state["_esm"] and "initialize" in state["_esm"]
    assert state["_plotly_bundle"] == (Path(plotly.__file__).parent / "package_data" / "widgetbundle.js").read_text()
    assert state["_plotly_bundle_id"] == f"plotly {plotly.__version__} {len(state['_plotly_bundle'])}"
    explorer = WeightHistogramExplorer(small_cnn(), bins=20)
    explorer.set(bins=7)
    assert len(explorer.figure._widget_data[0]["x"]) == 7          # the model's copy follows every redraw
    assert explorer.figure._widget_data[0]["x"] == list(explorer.figure.data[0].x)
    assert explorer.figure._widget_layout["title"]["text"] == explorer.figure.layout.title.text
    explorer.figure._js2py_traceDeltas = {"trace_deltas": [], "trace_edit_id": -1}   # a view drew it
    explorer.set(bins=9)                 # plotly's front end now applies updates to its copy itself
    assert len(explorer.figure.data[0].x) == 9 and len(explorer.figure._widget_data[0]["x"]) == 7


def test_readout_rows_escape_labels_and_values_and_right_align_the_value():
    from labkit.widgets.base import readout_rows
    out = readout_rows([("a < b", "1 & 2"), ("bytes", "1,024")])
    assert out.count("<tr>") == 2 and "a &lt; b" in out and "<b>1 &amp; 2</b>" in out
    assert "<td style='text-align:right'><b>1,024</b></td>" in out
    assert readout_rows([]) == ""


def test_every_explorer_has_one_name_for_module_class_css_and_tests():
    """Issue 10: file = class = CSS slug = test names, and notebooks import explorers one way."""
    import re
    import importlib
    import labkit.widgets as widgets
    repo = Path(__file__).resolve().parent.parent
    explorers = [name for name in widgets.__all__ if name.endswith("Explorer") and name != "Explorer"]
    assert len(explorers) == 16
    for cls_name in explorers:
        words = re.findall(r"[A-Z]+(?![a-z])|[A-Z][a-z]+", cls_name[: -len("Explorer")])
        snake, kebab = "_".join(w.lower() for w in words), "-".join(w.lower() for w in words)
        module = importlib.import_module(f"labkit.widgets.{snake}")
        assert getattr(module, cls_name) is getattr(widgets, cls_name)
        assert getattr(module, cls_name).name == kebab, cls_name
        assert (repo / "tests" / f"test_widgets_{snake}.py").exists(), cls_name
        assert len(list((repo / "tests" / "browser").glob(f"test_[0-9][0-9]_{snake}.py"))) >= 1, cls_name
    for notebook in sorted((repo / "notebooks").glob("*.ipynb")):
        assert not re.search(r"from labkit\.widgets\.[a-z_]+ import", notebook.read_text()), notebook.name
