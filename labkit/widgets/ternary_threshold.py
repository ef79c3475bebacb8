"""TWN threshold explorer: move the ternary threshold factor and see sparsity and error of a layer.

Ternary Weight Networks set ``Δ = factor · E|W|`` with ``factor = 0.7``; weights with ``|W| ≤ Δ``
become 0, the others ``±α`` with ``α`` the mean ``|W|`` of the kept ones. A small factor keeps
almost every weight (close to scaled binary); a large one zeroes most of them. The explorer shows
the layer's weight histogram with the thresholds ``±Δ`` and the levels ``±α``, and, over the whole
range of factors, the relative reconstruction error ``‖W − Ŵ‖² / ‖W‖²`` and the sparsity — every
number from ``labkit.quant.binary.ternarize`` / ``ternary_threshold``.

Explained in notebooks/02_binary_ternary.ipynb.
"""
from __future__ import annotations

import html

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots
from torch import nn

from labkit.quant.binary import count_levels, ternarize, ternary_error
from labkit.validate import require_bool, require_float, require_module
from labkit.widgets.base import (FIGURE_TEMPLATE, Explorer, FigureWidget, checkbox, dropdown, readout_rows, slider,
                                 step_histogram, vertical_lines)

FACTOR_MIN, FACTOR_MAX, FACTOR_STEP = 0.3, 1.2, 0.05


class TernaryThresholdExplorer(Explorer):
    """TWN threshold factor explorer for one layer of a model.

    ``TernaryThresholdExplorer(model, layer="fc1", factor=0.7)`` works on any model with ``nn.Linear``
    / ``nn.Conv2d`` layers (their float — or latent — ``weight``). Controls: ``layer`` (Dropdown),
    ``factor`` (FloatSlider 0.3–1.2: ``Δ = factor · E|W|``) and ``per_channel`` (Checkbox: one Δ and
    α per output channel). ``stats``: ``layer``, ``factor``, ``per_channel``, ``delta``, ``alpha``,
    ``sparsity``, ``rel_error``, ``levels`` (distinct values of Ŵ), ``best_factor`` (the factor of the
    slider grid with the smallest error). Explained in notebooks/02_binary_ternary.ipynb.
    """

    name = "ternary-threshold"

    def __init__(self, model: nn.Module, layer: str | None = None, factor: float = 0.7,
                 per_channel: bool = False, bins: int = 120):
        require_module("model", model)
        self.layers = {name: m for name, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))}
        if not self.layers:
            raise ValueError("model has no nn.Linear or nn.Conv2d layer")
        if layer is not None and layer not in self.layers:
            raise ValueError(f"layer must be one of {list(self.layers)}, got {layer!r}")
        self._layer = layer or max(self.layers, key=lambda n: self.layers[n].weight.numel())
        self._factor = require_float("factor", factor, FACTOR_MIN, FACTOR_MAX)
        require_bool("per_channel", per_channel)
        self._per_channel = per_channel
        self._bins = bins
        self.factors = np.round(np.arange(FACTOR_MIN, FACTOR_MAX + FACTOR_STEP / 2, FACTOR_STEP), 4)
        super().__init__()

    def build_controls(self) -> dict:
        options = [(f"{name}  {list(m.weight.shape)}", name) for name, m in self.layers.items()]
        return {
            "layer": dropdown(self.name, "layer", options=options, value=self._layer, description="layer"),
            "factor": slider(self.name, "factor", value=self._factor, min=FACTOR_MIN, max=FACTOR_MAX,
                             step=FACTOR_STEP, readout_format=".2f", description="factor (Δ = factor·E|W|)",
                             layout={"width": "420px"}),   # a track of ~250 px next to the long label
            "per_channel": checkbox(self.name, "per-channel", value=self._per_channel,
                                    description="one Δ, α per output channel"),
        }

    def build_figure(self) -> go.FigureWidget:
        fig = make_subplots(rows=1, cols=2, column_widths=[0.55, 0.45], horizontal_spacing=0.1,
                            subplot_titles=("weights and the ternary thresholds", "error and sparsity vs factor"))
        fig.add_trace(go.Scatter(x=[], y=[], mode="lines", name="weights", fill="tozeroy",
                                 line=dict(color="#4C72B0", width=1, shape="hv"), fillcolor="rgba(76, 114, 176, 0.6)",
                                 hovertemplate="w from %{x:.4f}<br>count %{y}<extra></extra>"), 1, 1)
        # ±Δ and ±α: vertical lines on an invisible [0, 1] axis over the histogram (see vertical_lines);
        # added without row/col, which would move them onto the histogram's own y axis
        fig.add_trace(go.Scatter(x=[], y=[], mode="lines", line=dict(color="#d62728", dash="dash"),
                                 name="±Δ (threshold)", xaxis="x", yaxis="y3", hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=[], y=[], mode="lines", line=dict(color="#2ca02c", width=3),
                                 name="±α (levels)", xaxis="x", yaxis="y3", hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=[], y=[], mode="lines", name="relative error ‖W−Ŵ‖²/‖W‖²",
                                 line=dict(color="#9467bd")), 1, 2)
        fig.add_trace(go.Scatter(x=[], y=[], mode="lines", name="sparsity (fraction zero)",
                                 line=dict(color="#ff7f0e")), 1, 2)
        fig.add_trace(go.Scatter(x=[], y=[], mode="markers", marker=dict(size=11, color="black"),
                                 name="current factor", showlegend=False), 1, 2)
        fig.update_layout(height=420, margin=dict(l=60, r=20, t=95, b=90), template=FIGURE_TEMPLATE,
                          yaxis3=dict(overlaying="y", range=[0, 1], visible=False, fixedrange=True),
                          legend=dict(orientation="h", x=0.0, y=-0.2, yanchor="top", font=dict(size=10)))
        fig.update_xaxes(title_text="weight value", row=1, col=1)
        fig.update_yaxes(title_text="count (weights per bin)", row=1, col=1)
        fig.update_xaxes(title_text="factor (Δ = factor · E|W|)", range=[FACTOR_MIN - 0.03, FACTOR_MAX + 0.03],
                         row=1, col=2)
        fig.update_yaxes(title_text="fraction (0–1)", range=[0, 1], row=1, col=2)
        return FigureWidget(fig)

    def _curve(self, layer: str, per_channel: bool) -> dict:
        def curve() -> dict:
            rows = [ternary_error(self.layers[layer].weight, float(f), per_channel) for f in self.factors]
            return {k: np.array([r[k] for r in rows]) for k in ("rel_error", "sparsity")}
        return self.remember("curve", (layer, per_channel), curve)

    def draw(self, values: dict) -> None:
        layer, factor, per_channel = values["layer"], float(values["factor"]), values["per_channel"]
        w = self.layers[layer].weight.detach()
        now = ternary_error(w, factor, per_channel)
        curve = self._curve(layer, per_channel)
        counts, edges = np.histogram(w.double().reshape(-1).numpy(), bins=self._bins)
        weights, thresholds, levels, err, sparse, marker = self.figure.data
        weights.x, weights.y = step_histogram(counts, edges)           # unchanged values are not re-sent
        d, a = now["delta"], now["alpha"]
        thresholds.x, thresholds.y = vertical_lines([-d, d])
        levels.x, levels.y = vertical_lines([-a, a])
        err.x, err.y = self.factors.tolist(), curve["rel_error"].tolist()
        sparse.x, sparse.y = self.factors.tolist(), curve["sparsity"].tolist()
        marker.x, marker.y = [factor, factor], [now["rel_error"], now["sparsity"]]
        mode = "per channel (mean Δ, α shown)" if per_channel else "per tensor"
        self.figure.layout.title.text = f"TWN on {layer} {list(w.shape)}, factor {factor:.2f}, {mode}"
        w_hat = ternarize(w, per_channel=per_channel, factor=factor)
        levels_count = count_levels(w_hat, per_channel=True).max() if per_channel else count_levels(w_hat)
        best = float(self.factors[int(np.argmin(curve["rel_error"]))])
        self.stats = {"layer": layer, "factor": factor, "per_channel": per_channel, **now,
                      "levels": int(levels_count), "best_factor": best}
        self.readout.value = _readout_html(self.stats)


def _readout_html(stats: dict) -> str:
    per = " per channel" if stats["per_channel"] else ""
    rows = [("Δ" + (" (mean)" if per else ""), f"{stats['delta']:.4g}"),
            ("α" + (" (mean)" if per else ""), f"{stats['alpha']:.4g}"),
            ("zeros (sparsity)", f"{stats['sparsity']:.1%}"),
            ("‖W−Ŵ‖² / ‖W‖²", f"{stats['rel_error']:.3f}"),
            ("levels" + per, f"{stats['levels']}"),
            ("best factor on the grid", f"{stats['best_factor']:.2f}")]
    body = readout_rows(rows)
    return f"<b>{html.escape(stats['layer'])}</b> factor {stats['factor']:.2f}<table style='font-size:90%'>{body}</table>"
