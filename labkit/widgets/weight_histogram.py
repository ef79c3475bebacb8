"""Weight-histogram explorer: pick a layer, see how its weights are distributed.

Most trained weights sit in a narrow bell around zero with a few large outliers; that shape is what
makes quantization (few levels suffice for the bell, the outliers set the range) and pruning (many
weights are nearly zero) work. The numbers the readout shows come from
``labkit.measure.weight_statistics``; the layers it offers from ``labkit.measure.weight_tensors``.

Explained in notebooks/00_why_compress.ipynb.
"""
from __future__ import annotations

import html

import numpy as np
import plotly.graph_objects as go
import torch
from torch import nn

from labkit.measure import weight_statistics, weight_tensors
from labkit.validate import require_bool, require_finite, require_int
from labkit.widgets.base import FIGURE_TEMPLATE, Explorer, FigureWidget, checkbox, dropdown, int_slider, readout_rows


class WeightHistogramExplorer(Explorer):
    """Histogram of one layer's weights with a layer picker, bins slider, log-y toggle and statistics.

    ``WeightHistogramExplorer(model, bins=80)`` works on any ``nn.Module`` with at least one weight
    tensor (see ``weight_tensors``). Controls: ``layer`` (Dropdown of weight names), ``bins``
    (IntSlider, 5–250) and ``log`` (Checkbox: logarithmic count axis). ``stats`` holds
    ``weight_statistics`` of the shown layer plus ``layer`` and ``bins``. Call ``update()`` after
    changing the model (pruning, quantization) to redraw from its current weights.

    Explained in notebooks/00_why_compress.ipynb.
    """

    name = "weight-histogram"

    def __init__(self, model: nn.Module, bins: int = 80, layer: str | None = None, log: bool = False):
        self.weights = weight_tensors(model)  # TypeError / ValueError at the boundary
        self.model = model
        self._bins = require_int("bins", bins, 5, 250)
        if layer is not None and layer not in self.weights:
            raise ValueError(f"layer must be one of {list(self.weights)}, got {layer!r}")
        self._layer = layer or next(iter(self.weights))
        require_bool("log", log)
        self._log = log
        super().__init__()

    def build_controls(self) -> dict:
        options = [(f"{name}  {_shape_text(fn().shape)}", name) for name, fn in self.weights.items()]
        return {
            "layer": dropdown(self.name, "layer", options=options, value=self._layer, description="layer"),
            "bins": int_slider(self.name, "bins", value=self._bins, min=5, max=250, step=5, description="bins"),
            "log": checkbox(self.name, "log", value=self._log, description="log-scale counts"),
        }

    def build_figure(self) -> go.FigureWidget:
        # Bars, not a step line: on the log-scale count axis an empty bin simply has no bar.
        figure = FigureWidget(data=[go.Bar(x=[], y=[], name="weights", marker_color="#4C72B0", marker_line_width=0,
                                              hovertemplate="w ≈ %{x:.4f}<br>count %{y}<extra></extra>")])
        figure.update_layout(height=360, margin=dict(l=70, r=20, t=50, b=50), bargap=0, template=FIGURE_TEMPLATE,
                             xaxis_title="weight value", yaxis_title="count (weights per bin)")
        return figure

    def draw(self, values: dict) -> None:
        weight = self.weights[values["layer"]]()
        flat = weight.to(torch.float64).reshape(-1).cpu().numpy()
        require_finite(f"layer {values['layer']!r}", flat)  # numpy's own error names no layer
        counts, edges = np.histogram(flat, bins=values["bins"])
        stats = weight_statistics(weight)
        bar = self.figure.data[0]
        bar.x, bar.y = ((edges[:-1] + edges[1:]) / 2).tolist(), counts.tolist()     # plain lists, never numpy
        bar.width = float(edges[1] - edges[0])
        scale = "log" if values["log"] else "linear"
        if self.figure.layout.yaxis.type != scale:      # an axis change only when `log` changes
            # the type alone: with dtick="D2" for the log ticks, going back to linear kept Chromium busy ~10 s
            self.figure.layout.yaxis.type = scale
        self.figure.layout.title.text = (f"{values['layer']} — {_shape_text(stats['shape'])}, "
                                         f"{stats['numel']:,} weights")
        self.stats = {"layer": values["layer"], "bins": values["bins"], **stats}
        self.readout.value = _readout_html(self.stats)


def _shape_text(shape) -> str:
    return "[" + "×".join(str(int(s)) for s in shape) + "]"


def _readout_html(stats: dict) -> str:
    rows = [
        ("shape", _shape_text(stats["shape"])),
        ("parameters", f"{stats['numel']:,}"),
        ("min / max", f"{stats['min']:.4g} / {stats['max']:.4g}"),
        ("mean", f"{stats['mean']:.3g}"),
        ("std", f"{stats['std']:.3g}"),
        ("exactly zero", f"{stats['zeros']:.1%}"),
        ("|w| ≤ 0.01", f"{stats['near_zero']:.1%}"),
        ("excess kurtosis", "—" if np.isnan(stats["kurtosis"]) else f"{stats['kurtosis']:.2f}"),
    ]
    body = readout_rows(rows)
    return f"<b>{html.escape(stats['layer'])}</b><table style='font-size:90%'>{body}</table>"
