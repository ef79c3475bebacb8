"""labkit.widgets without a browser: the conventions in base.py and the weight-histogram explorer.

The statistics are checked against torch / scipy as oracles; the explorer through its plain-Python
API (``set``, ``figure.data``, ``stats``) and by changing control values as the browser would.
"""
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import scipy.stats
import torch
import torch.nn.utils.prune as prune
from torch import nn

from labkit.widgets import (Explorer, WeightHistogramExplorer, checkbox, css_class, dropdown, int_slider,
                            slider, weight_statistics, weight_tensors)


def lenet5():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))


class LeNet300(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.fc1, self.fc2, self.fc3 = nn.Linear(784, 300), nn.Linear(300, 100), nn.Linear(100, 10)
        self.bn = nn.BatchNorm1d(300)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.fc3(self.relu(self.fc2(self.relu(self.bn(self.fc1(x.flatten(1)))))))


# --- weight_statistics ---------------------------------------------------------------------------

def test_weight_statistics_match_torch_and_scipy():
    torch.manual_seed(2)
    w = torch.randn(64, 32) * 0.05
    w[0, :10] = 0.0
    s = weight_statistics(w)
    assert s["shape"] == (64, 32) and s["numel"] == 2048
    assert s["min"] == pytest.approx(w.min().item()) and s["max"] == pytest.approx(w.max().item())
    assert s["mean"] == pytest.approx(w.double().mean().item(), abs=1e-12)
    assert s["std"] == pytest.approx(w.double().std(correction=0).item(), rel=1e-12)
    assert s["zeros"] == pytest.approx(10 / 2048)
    assert s["near_zero"] == pytest.approx((w.abs() <= 0.01).double().mean().item())
    assert s["kurtosis"] == pytest.approx(scipy.stats.kurtosis(w.double().numpy().ravel(), fisher=True), rel=1e-9)


def test_weight_statistics_on_numpy_and_constant_tensor():
    s = weight_statistics(np.zeros((3, 3), dtype=np.float32))
    assert s["zeros"] == 1.0 and s["near_zero"] == 1.0 and s["std"] == 0.0
    assert math.isnan(s["kurtosis"])
    assert weight_statistics(torch.tensor([0.005, -0.02]), near_zero=0.05)["near_zero"] == 1.0


def test_weight_statistics_errors():
    with pytest.raises(TypeError, match="tensor"):
        weight_statistics([1.0, 2.0])
    with pytest.raises(ValueError, match="tensor holds 2 NaN or Inf value"):
        weight_statistics(torch.tensor([1.0, float("nan"), float("inf")]))
    with pytest.raises(ValueError, match="at least one element"):
        weight_statistics(torch.empty(0, 3))
    with pytest.raises(ValueError, match="near_zero"):
        weight_statistics(torch.ones(2), near_zero=-1.0)


# --- weight_tensors ------------------------------------------------------------------------------

def test_weight_tensors_lists_conv_and_linear_weights_only():
    assert list(weight_tensors(lenet5())) == ["0.weight", "3.weight", "7.weight", "9.weight", "11.weight"]
    # BatchNorm's 1-D scale is not a conv/linear weight
    assert list(weight_tensors(LeNet300())) == ["fc1.weight", "fc2.weight", "fc3.weight"]


def test_weight_tensors_falls_back_to_1d_weights_and_sees_pruning():
    assert list(weight_tensors(nn.LayerNorm(4))) == ["weight"]
    model = lenet5()
    prune.l1_unstructured(model[9], "weight", amount=0.5)  # weight_orig + mask
    weights = weight_tensors(model)
    assert "9.weight" in weights
    assert (weights["9.weight"]() == 0).float().mean().item() == pytest.approx(0.5, abs=1e-3)


def test_weight_tensors_errors():
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        weight_tensors({"w": torch.ones(2, 2)})
    with pytest.raises(ValueError, match="no weight tensors"):
        weight_tensors(nn.Sequential(nn.ReLU(), nn.Flatten()))


# --- the explorer --------------------------------------------------------------------------------

def test_explorer_builds_on_lenet5():
    model = lenet5()
    explorer = WeightHistogramExplorer(model)
    assert [value for _, value in explorer.controls["layer"].options] == list(weight_tensors(model))
    bar = explorer.figure.data[0]
    assert bar.type == "bar" and len(bar.x) == len(bar.y) == 80
    assert sum(bar.y) == 6 * 1 * 5 * 5  # every weight of the first conv counted once
    assert "0.weight" in explorer.figure.layout.title.text
    assert explorer.stats["layer"] == "0.weight" and explorer.stats["numel"] == 150
    assert explorer.stats["std"] == pytest.approx(weight_statistics(model[0].weight)["std"])
    assert "0.weight" in explorer.readout.value and "150" in explorer.readout.value
    assert explorer.update_count == 1


def test_changing_layer_changes_figure_and_stats():
    model = LeNet300()
    explorer = WeightHistogramExplorer(model, bins=40)
    x0, y0, stats0 = explorer.figure.data[0].x, explorer.figure.data[0].y, dict(explorer.stats)
    explorer.set(layer="fc3.weight")
    assert not np.array_equal(explorer.figure.data[0].x, x0) and not np.array_equal(explorer.figure.data[0].y, y0)
    assert explorer.stats["numel"] == 1000 != stats0["numel"]
    assert explorer.stats["max"] == pytest.approx(model.fc3.weight.max().item())
    assert sum(explorer.figure.data[0].y) == 1000
    assert explorer.figure.layout.title.text.startswith("fc3.weight")


def test_log_toggle_and_bins():
    explorer = WeightHistogramExplorer(lenet5())
    assert explorer.figure.layout.yaxis.type == "linear"
    explorer.set(log=True, bins=20)
    assert explorer.figure.layout.yaxis.type == "log"
    assert explorer.figure.layout.yaxis.dtick == "D2"       # log ticks 1, 2, 5, 10, …, not every digit
    assert len(explorer.figure.data[0].y) == 20 and explorer.stats["bins"] == 20
    explorer.set(log=False)
    assert explorer.figure.layout.yaxis.type == "linear" and explorer.figure.layout.yaxis.dtick is None


def test_set_redraws_once_and_browser_style_changes_redraw():
    explorer = WeightHistogramExplorer(lenet5())
    explorer.set(layer="7.weight", bins=30, log=True)
    assert explorer.update_count == 2  # one for the constructor, one for the whole set()
    explorer.controls["layer"].value = "9.weight"  # what a change in the browser does
    assert explorer.update_count == 3 and explorer.stats["layer"] == "9.weight"


def test_update_rereads_the_model_after_pruning():
    model = lenet5()
    explorer = WeightHistogramExplorer(model, layer="9.weight")
    assert explorer.stats["zeros"] == 0.0
    prune.l1_unstructured(model[9], "weight", amount=0.8)
    explorer.update()
    assert explorer.stats["zeros"] == pytest.approx(0.8, abs=1e-3)


def test_controls_follow_the_conventions():
    explorer = WeightHistogramExplorer(lenet5())
    for name, control in explorer.controls.items():
        assert f"labkit-histogram-{name}" in control._dom_classes
    assert explorer.controls["bins"].continuous_update is False
    assert "labkit-histogram" in explorer.widget._dom_classes
    assert "labkit-histogram-figure" in explorer.figure._dom_classes
    assert "labkit-histogram-readout" in explorer.readout._dom_classes
    bundle = explorer._repr_mimebundle_()
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == explorer.widget.model_id


def test_explorer_names_the_layer_with_non_finite_weights():
    model = lenet5()
    with torch.no_grad():
        model[9].weight[0, 0] = float("nan")  # a diverged layer
    explorer = WeightHistogramExplorer(model)  # the first layer is fine
    with pytest.raises(ValueError, match="layer '9.weight' holds 1 NaN or Inf value"):
        explorer.set(layer="9.weight")
    with torch.no_grad():
        model[0].weight[0, 0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match="layer '0.weight' holds 1 NaN or Inf value"):
        WeightHistogramExplorer(model)


def test_explorer_errors():
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        WeightHistogramExplorer("lenet5")
    with pytest.raises(ValueError, match="no weight tensors"):
        WeightHistogramExplorer(nn.ReLU())
    with pytest.raises(ValueError, match="bins"):
        WeightHistogramExplorer(lenet5(), bins=1)
    with pytest.raises(TypeError, match="bins"):
        WeightHistogramExplorer(lenet5(), bins=20.5)
    with pytest.raises(ValueError, match="layer must be one of"):
        WeightHistogramExplorer(lenet5(), layer="nope")
    with pytest.raises(TypeError, match="log"):
        WeightHistogramExplorer(lenet5(), log="yes")
    explorer = WeightHistogramExplorer(lenet5())
    with pytest.raises(ValueError, match="unknown control"):
        explorer.set(colour="red")
    with pytest.raises(ValueError, match="layer='nope'"):
        explorer.set(layer="nope")


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
    result = subprocess.run([sys.executable, "-m", "pytest", "tests/browser/test_00_histogram.py", "-rs",
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
    explorer = WeightHistogramExplorer(lenet5(), bins=20)
    figures = [kw["data"]["state"] for kw in opened if "_widget_data" in kw["data"]["state"]]
    assert len(figures) == 1
    assert len(figures[0]["_widget_data"][0]["x"]) == 20 and sum(figures[0]["_widget_data"][0]["y"]) == 150
    assert "0.weight" in figures[0]["_widget_layout"]["title"]["text"]
    assert "labkit-histogram-figure" in figures[0]["_dom_classes"]
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
    explorer = WeightHistogramExplorer(lenet5(), bins=20)
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
