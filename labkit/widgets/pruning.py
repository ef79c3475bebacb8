"""Pruning explorer: move the global sparsity, switch magnitude/random, and see what is cut.

The whole model is pruned globally (one ranking over every Linear/Conv2d weight, ``labkit.prune``)
to the slider's sparsity with the chosen criterion. The left plot is the chosen layer's weight
histogram: kept weights in blue, pruned ones in red, the band ``|w| ≤ threshold`` shaded for the
magnitude criterion. The right plot and the readout show the bytes on disk of the pruned model in
fp32, bitmask and CSR (``labkit.measure.size_on_disk``) and its accuracy on a fixed evaluation
subset with its 95 % Wilson interval (``labkit.stats``). Each (sparsity, criterion) setting is computed once and cached, so returning to a setting
is instant. Explained in notebooks/07_unstructured_pruning.ipynb.
"""
from __future__ import annotations

import copy
import html

import ipywidgets as W
import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots
from torch import nn

from labkit import measure, train
from labkit.prune import CRITERIA, global_prune, global_threshold, prunable_layers
from labkit.prune import sparsity as weight_sparsity
from labkit.stats import accuracy_interval
from labkit.validate import require_choice, require_float, require_int, require_module
from labkit.widgets.base import FIGURE_TEMPLATE, Explorer, FigureWidget, css_class, dropdown, slider

SPARSITY_MAX, SPARSITY_STEP = 0.99, 0.01
FORMATS = ("fp32", "bitmask", "csr")
FORMAT_LABELS = ("fp32 (dense)", "bitmask", "CSR")


class PruningExplorer(Explorer):
    """Global unstructured pruning of ``model`` at the slider's sparsity, viewed one layer at a time.

    ``PruningExplorer(model, eval_data, layer=None, sparsity=0.5, criterion="magnitude")``: ``model``
    has ``nn.Linear``/``nn.Conv2d`` layers (it is copied, never modified); ``eval_data`` is a labelled
    Dataset or ``(x, y)`` pair (use ``data.eval_subset`` to keep it fast). Controls: ``sparsity``
    (FloatSlider 0–0.99, on release), ``criterion`` (ToggleButtons magnitude/random), ``layer``
    (Dropdown; the histogram shown). ``stats``: ``layer``, ``sparsity``, ``criterion``,
    ``global_sparsity``, ``layer_sparsity``, ``threshold`` (None for random), ``accuracy`` (with
    ``accuracy_low``/``accuracy_high``, its 95 % interval on ``eval_images`` images), ``dense_accuracy``, ``bytes_fp32``, ``bytes_bitmask``, ``bytes_csr``, ``kept``, ``pruned``
    (counts in the layer). Explained in notebooks/07_unstructured_pruning.ipynb.
    """

    name = "pruning"

    def __init__(self, model: nn.Module, eval_data, layer: str | None = None, sparsity: float = 0.5,
                 criterion: str = "magnitude", bins: int = 80, seed: int = 0):
        require_module("model", model)
        self._base = copy.deepcopy(model).eval()
        self.layers = prunable_layers(self._base)
        if not self.layers:
            raise ValueError("model has no nn.Linear or nn.Conv2d layer")
        if layer is not None and layer not in self.layers:
            raise ValueError(f"layer must be one of {list(self.layers)}, got {layer!r}")
        self._layer = layer or max(self.layers, key=lambda n: self.layers[n].weight.numel())
        self._sparsity = require_float("sparsity", sparsity, 0.0, SPARSITY_MAX)
        self._criterion = require_choice("criterion", criterion, tuple(CRITERIA))
        self._bins = require_int("bins", bins, 2, 1000)
        self._seed = require_int("seed", seed, 0, 2**32 - 1)
        self.eval_data = eval_data
        self.dense_accuracy = train.evaluate(self._base, eval_data)
        super().__init__()

    # --- controls and figure ----------------------------------------------------------------
    def build_controls(self) -> dict:
        options = [(f"{name}  {list(m.weight.shape)}", name) for name, m in self.layers.items()]
        criterion = W.ToggleButtons(options=list(CRITERIA), value=self._criterion, description="criterion",
                                    style={"description_width": "initial", "button_width": "110px"})
        criterion.add_class(css_class(self.name, "criterion"))
        return {
            "sparsity": slider(self.name, "sparsity", value=self._sparsity, min=0.0, max=SPARSITY_MAX,
                               step=SPARSITY_STEP, readout_format=".2f", description="global sparsity"),
            "criterion": criterion,
            "layer": dropdown(self.name, "layer", options=options, value=self._layer, description="layer"),
        }

    def build_figure(self) -> go.FigureWidget:
        fig = make_subplots(rows=1, cols=2, column_widths=[0.65, 0.35], horizontal_spacing=0.12,
                            subplot_titles=("weights of the layer: kept / pruned", "model bytes on disk"))
        fig.add_trace(go.Scatter(x=[], y=[], fill="toself", mode="none", fillcolor="rgba(214,39,40,0.12)",
                                 name="|w| ≤ threshold", hoverinfo="skip"), 1, 1)
        fig.add_trace(go.Bar(x=[], y=[], marker_color="#4C72B0", marker_line_width=0, name="kept",
                             hovertemplate="w ≈ %{x:.4f}<br>kept %{y}<extra></extra>"), 1, 1)
        fig.add_trace(go.Bar(x=[], y=[], marker_color="#d62728", marker_line_width=0, name="pruned",
                             hovertemplate="w ≈ %{x:.4f}<br>pruned %{y}<extra></extra>"), 1, 1)
        fig.add_trace(go.Bar(x=list(FORMAT_LABELS), y=[0.0, 0.0, 0.0], name="bytes on disk",
                             marker_color=["#7f7f7f", "#2ca02c", "#ff7f0e"], showlegend=False,
                             text=["", "", ""], textposition="outside", cliponaxis=False,
                             hovertemplate="%{x}: %{y:.1f} kB<extra></extra>"), 1, 2)
        fig.update_layout(height=400, margin=dict(l=50, r=20, t=95, b=50), bargap=0, barmode="stack",
                          template=FIGURE_TEMPLATE, legend=dict(orientation="h", x=0.0, y=-0.18))
        fig.update_xaxes(title_text="weight value", row=1, col=1)
        fig.update_yaxes(title_text="number of weights", row=1, col=1)
        fig.update_xaxes(title_text="storage format", type="category", categoryorder="array",
                         categoryarray=list(FORMAT_LABELS), row=1, col=2)
        fig.update_yaxes(title_text="file size (kB)", rangemode="tozero", row=1, col=2)
        return FigureWidget(fig)

    # --- the numbers (all from labkit.prune / labkit.measure / labkit.train) --------------------
    def setting(self, sparsity: float, criterion: str) -> dict:
        """Masks, accuracy and bytes of the model pruned to ``sparsity`` with ``criterion`` (cached)."""
        key = (round(float(sparsity), 4), criterion)

        def prune_and_measure() -> dict:
            model = copy.deepcopy(self._base)
            masks = global_prune(model, key[0], criterion, seed=self._seed)
            return {
                "masks": {name: m.bool().numpy() for name, m in masks.items()},
                "sparsity": weight_sparsity(model),
                "accuracy": accuracy_interval(train.correct(model, self.eval_data)),
                "bytes": {fmt: measure.size_on_disk(model, fmt) for fmt in FORMATS},
                "threshold": global_threshold(self._base, key[0]) if criterion == "magnitude" else None,
            }
        return self.remember("setting", key, prune_and_measure)

    def _layer_edges(self, layer: str, values: np.ndarray) -> np.ndarray:
        return self.remember("edges", layer, lambda: np.histogram_bin_edges(values, bins=self._bins))

    def draw(self, values: dict) -> None:
        layer, s, criterion = values["layer"], float(values["sparsity"]), values["criterion"]
        result = self.setting(s, criterion)
        w = self.layers[layer].weight.detach().double().reshape(-1).numpy()
        keep = result["masks"][layer].reshape(-1)
        edges = self._layer_edges(layer, w)
        kept_counts, _ = np.histogram(w[keep], bins=edges)
        pruned_counts, _ = np.histogram(w[~keep], bins=edges)
        centres, width = ((edges[:-1] + edges[1:]) / 2).tolist(), float(edges[1] - edges[0])
        band, kept, pruned, sizes = self.figure.data
        kept.x, kept.y, kept.width = centres, kept_counts.tolist(), width      # plain lists, never numpy
        pruned.x, pruned.y, pruned.width = centres, pruned_counts.tolist(), width
        top = float((kept_counts + pruned_counts).max())
        t = result["threshold"]
        band.x, band.y = ([-t, t, t, -t, -t], [0.0, 0.0, top, top, 0.0]) if t else ([], [])
        kb = [result["bytes"][fmt] / 1000 for fmt in FORMATS]
        sizes.y, sizes.text = kb, [f"{v:,.1f} kB" for v in kb]     # x never changes (base.complete_batch)
        self.figure.layout.title.text = (f"{criterion} pruning at global sparsity {s:.2f}: {layer} "
                                         f"{list(self.layers[layer].weight.shape)}")
        self.stats = {"layer": layer, "sparsity": s, "criterion": criterion,
                      "global_sparsity": result["sparsity"]["global"],
                      "layer_sparsity": result["sparsity"]["layers"][layer], "threshold": t,
                      "accuracy": result["accuracy"].value, "accuracy_low": result["accuracy"].low,
                      "accuracy_high": result["accuracy"].high, "eval_images": result["accuracy"].n,
                      "dense_accuracy": self.dense_accuracy,
                      **{f"bytes_{fmt}": result["bytes"][fmt] for fmt in FORMATS},
                      "kept": int(keep.sum()), "pruned": int((~keep).sum())}
        self.readout.value = _readout_html(self.stats)


def _readout_html(stats: dict) -> str:
    threshold = "—" if stats["threshold"] is None else f"{stats['threshold']:.4g}"
    interval = f"[{100 * stats['accuracy_low']:.1f}, {100 * stats['accuracy_high']:.1f}]"
    rows = [("global sparsity", f"{stats['global_sparsity']:.1%}"),
            (f"{stats['layer']} sparsity", f"{stats['layer_sparsity']:.1%}"),
            ("threshold |w|", threshold),
            (f"accuracy ({stats['eval_images']:,} test images)", f"{stats['accuracy']:.1%} {interval}"),
            ("dense accuracy", f"{stats['dense_accuracy']:.1%}"),
            ("bytes fp32", f"{stats['bytes_fp32']:,}"),
            ("bytes bitmask", f"{stats['bytes_bitmask']:,}"),
            ("bytes CSR", f"{stats['bytes_csr']:,}")]
    body = "".join(f"<tr><td>{html.escape(k)}</td><td style='text-align:right;white-space:nowrap'>"
                   f"<b>{html.escape(v)}</b></td></tr>" for k, v in rows)
    return (f"<b>{html.escape(stats['criterion'])}</b> pruning, target {stats['sparsity']:.2f}"
            f"<table style='font-size:90%'>{body}</table>")
