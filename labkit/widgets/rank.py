"""Rank explorer: pick a layer, move the energy slider, and see its spectrum, cost and accuracy.

For an ``nn.Linear`` the spectrum is the singular values of its weight ``[m, n]`` and the layer is
replaced by its truncated SVD (``labkit.lowrank.svd_linear``); for an ``nn.Conv2d`` it is the spectrum
of the mode-0 (output-channel) unfolding and the layer becomes a Tucker-2 triple
(``labkit.lowrank.tucker2_conv``, both ranks chosen by the same energy). The left plot shows the
singular values on a log scale, the kept ones in blue; the right plot the cumulative energy with the
chosen rank marked. The readout gives the parameters and MACs of the factorised layer against the
original — and says so when the factorised layer is *larger* (a rank above the break-even, where
``lowrank.decompose_model`` would keep the dense layer) — the relative reconstruction error
``‖W − Ŵ‖_F / ‖W‖_F`` and the accuracy (%) of the model with only that layer factorised on a fixed
evaluation subset. Each (layer, energy) is computed once and cached. Explained in
notebooks/13_lowrank_lightweight.ipynb.
"""
from __future__ import annotations

import copy
import html
import math

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots
from torch import nn

from labkit import train
from labkit.lowrank import (cumulative_energy, decompose_model, energy_rank, factorisable_layers, mode_singular_values,
                            model_input_shape, relative_error, singular_values, truncation_error, tucker2_ranks,
                            tucker2_weight)
from labkit.validate import require_float, require_module
from labkit.widgets.base import FIGURE_TEMPLATE, Explorer, FigureWidget, dropdown, readout_rows, slider


class RankExplorer(Explorer):
    """Low-rank factorisation of one layer of ``model`` at the slider's energy.

    ``RankExplorer(model, eval_data, layer=None, energy=0.9, input_shape=None)``: ``model`` is copied,
    never modified; ``eval_data`` a labelled Dataset or ``(x, y)`` (use ``data.eval_subset``).
    Controls: ``layer`` (Dropdown), ``energy`` (FloatSlider 0.05–1, on release). ``stats``: ``layer``,
    ``energy``, ``rank`` (an int, or ``(R_in, R_out)`` for a conv), ``max_rank``, ``params_before``,
    ``params_after``, ``macs_before``, ``macs_after``, ``saves`` (False when the factorised layer has at
    least as many parameters as the dense one), ``relative_error``, ``accuracy``, ``dense_accuracy``
    (fractions). Explained in notebooks/13_lowrank_lightweight.ipynb.
    """

    name = "rank"

    def __init__(self, model: nn.Module, eval_data, layer: str | None = None, energy: float = 0.9,
                 input_shape=None):
        require_module("model", model)
        self._base = copy.deepcopy(model).eval()
        self.layers = factorisable_layers(self._base)
        if not self.layers:
            raise ValueError("model has no nn.Linear or plain nn.Conv2d layer to factorise")
        if layer is not None and layer not in self.layers:
            raise ValueError(f"layer must be one of {list(self.layers)}, got {layer!r}")
        self._layer = layer or max(self.layers, key=lambda n: self.layers[n].weight.numel())
        self._energy = require_float("energy", energy, 0.05, 1.0)
        self._shape = model_input_shape(self._base, input_shape)
        self.eval_data = eval_data
        self.dense_accuracy = train.evaluate(self._base, eval_data)
        super().__init__()

    def build_controls(self) -> dict:
        options = [(f"{name}  {list(m.weight.shape)}", name) for name, m in self.layers.items()]
        return {"layer": dropdown(self.name, "layer", options=options, value=self._layer, description="layer"),
                "energy": slider(self.name, "energy", value=self._energy, min=0.05, max=1.0, step=0.01,
                                 readout_format=".2f", description="energy kept")}

    def build_figure(self) -> go.FigureWidget:
        fig = make_subplots(rows=1, cols=2, column_widths=[0.55, 0.45], horizontal_spacing=0.14,
                            subplot_titles=("singular values (log scale)", "cumulative energy"))
        fig.add_trace(go.Scatter(x=[], y=[], mode="markers", marker=dict(color="#4C72B0", size=5),
                                 name="kept singular values"), 1, 1)
        fig.add_trace(go.Scatter(x=[], y=[], mode="markers", marker=dict(color="#bbbbbb", size=5),
                                 name="discarded"), 1, 1)
        fig.add_trace(go.Scatter(x=[], y=[], mode="lines", line=dict(color="#2ca02c"), name="energy kept at rank r"),
                      1, 2)
        fig.add_trace(go.Scatter(x=[], y=[], mode="lines+markers", marker=dict(color="#d62728", size=10),
                                 line=dict(color="#d62728", dash="dot"), name="chosen rank"), 1, 2)
        fig.update_layout(height=400, margin=dict(l=60, r=20, t=90, b=60), template=FIGURE_TEMPLATE,
                          legend=dict(orientation="h", x=0.0, y=-0.22))
        # ticks at the decades (tickvals set in draw): plotly's own log ticks label 2, 5, 1, 2, 5
        # on a short range (and a log axis with dtick=1 stopped every later update from being drawn in Chromium)
        fig.update_yaxes(type="log", exponentformat="power", title_text="singular value σᵢ", row=1, col=1)
        fig.update_xaxes(title_text="index i (largest first)", row=1, col=1)
        fig.update_xaxes(title_text="rank r", row=1, col=2)
        fig.update_yaxes(range=[0, 1.02], title_text="energy kept (fraction of Σσ²)", row=1, col=2)
        return FigureWidget(fig)

    # --- the numbers (all from labkit.lowrank / labkit.train) ----------------------------------
    def spectrum(self, layer: str):
        """Singular values of the layer (a Linear's weight, a conv's output-channel unfolding; cached)."""
        module = self.layers[layer]
        return self.remember("spectrum", layer, lambda: singular_values(module) if isinstance(module, nn.Linear)
                             else mode_singular_values(module.weight, 0))

    def setting(self, layer: str, energy: float) -> dict:
        """Rank, costs (``params_before/after``, ``macs_before/after``, ``saves``), ``relative_error`` and
        ``accuracy`` (a fraction, eval subset) of ``layer`` factorised at ``energy``; cached, no redraw."""
        if layer not in self.layers:
            raise ValueError(f"layer must be one of {list(self.layers)}, got {layer!r}")
        energy = require_float("energy", energy, 0.05, 1.0)
        key = (layer, round(float(energy), 4))

        def factorise_and_evaluate() -> dict:
            module, linear = self.layers[layer], isinstance(self.layers[layer], nn.Linear)
            rank = energy_rank(self.spectrum(layer), key[1]) if linear else tucker2_ranks(module, key[1])
            model = copy.deepcopy(self._base)
            row = decompose_model(model, {layer: rank}, input_shape=self._shape, force=True)[0]
            error = (truncation_error(self.spectrum(layer), rank) if linear         # Eckart–Young: no second SVD
                     else relative_error(module.weight, tucker2_weight(model.get_submodule(layer))))
            return {**row, "saves": row["params_after"] < row["params_before"], "relative_error": error,
                    "accuracy": train.evaluate(model, self.eval_data)}
        return self.remember("setting", key, factorise_and_evaluate)

    def draw(self, values: dict) -> None:
        layer, energy = values["layer"], float(values["energy"])
        result = self.setting(layer, energy)
        sigma = self.spectrum(layer).numpy()
        kept_n = result["rank"] if isinstance(result["rank"], int) else result["rank"][1]
        index = np.arange(1, sigma.size + 1)
        kept, dropped, curve, mark = self.figure.data
        floor = max(float(sigma.max()) * 1e-12, 1e-30)
        s = np.maximum(sigma, floor)
        # plain lists: numpy arrays do not reach plotly.js intact
        kept.x, kept.y = index[:kept_n].tolist(), s[:kept_n].tolist()
        dropped.x, dropped.y = index[kept_n:].tolist(), s[kept_n:].tolist()
        cumulative = cumulative_energy(self.spectrum(layer)).numpy()
        curve.x, curve.y = index.tolist(), cumulative.tolist()
        mark.x, mark.y = [kept_n, kept_n], [0.0, float(cumulative[kept_n - 1])]
        low, high = math.floor(math.log10(float(s.min()))), math.ceil(math.log10(float(s.max())))
        self.figure.layout.yaxis.tickvals = [10.0 ** k for k in range(low, high + 1)]     # the decades only
        self.figure.layout.title.text = (f"{layer} {list(self.layers[layer].weight.shape)}: rank {result['rank']} "
                                         f"keeps {energy:.0%} of the energy")
        self.stats = {"layer": layer, "energy": energy, "rank": result["rank"], "max_rank": int(sigma.size),
                      "params_before": result["params_before"], "params_after": result["params_after"],
                      "macs_before": result["macs_before"], "macs_after": result["macs_after"],
                      "saves": result["saves"],
                      "relative_error": result["relative_error"], "accuracy": result["accuracy"],
                      "dense_accuracy": self.dense_accuracy}
        self.readout.value = _readout_html(self.stats)


def _readout_html(stats: dict) -> str:
    rows = [("rank", str(stats["rank"])),
            ("params: factorised / dense", f"{stats['params_after']:,} / {stats['params_before']:,}"),
            ("MACs: factorised / dense", f"{stats['macs_after']:,} / {stats['macs_before']:,}"),
            ("relative error ‖W − Ŵ‖/‖W‖", f"{stats['relative_error']:.3f}"),
            ("accuracy (eval subset)", f"{stats['accuracy']:.1%}"),
            ("original accuracy", f"{stats['dense_accuracy']:.1%}")]
    body = readout_rows(rows)
    warning = "" if stats["saves"] else (
        "<div style='color:#b22222'><b>larger than the dense layer</b>: this rank is above the break-even, "
        "the factorisation saves nothing (decompose_model would keep the layer dense)</div>")
    return (f"<b>{html.escape(stats['layer'])}</b> factorised, energy {stats['energy']:.0%}"
            f"<table style='font-size:90%'>{body}</table>{warning}")
