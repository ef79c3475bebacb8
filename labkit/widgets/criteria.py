"""Criteria explorer: which weights does each importance criterion remove, and what does it cost?

The model is pruned globally (one ranking over every Linear/Conv2d weight, ``labkit.prune.global_prune``
with precomputed ``scores=``) to the slider's sparsity under the chosen criterion — magnitude, random,
or data-driven scores computed beforehand with ``labkit.prune`` (``taylor_scores``, ``obd_scores``).
The left plot is accuracy against sparsity for every criterion (all curves computed once, when the
explorer is built), with the current setting marked by a circle on a dotted vertical line. The right
plot is one layer's weights, ``|w|`` against the chosen score (log-log, at most ``max_points`` of
them): kept weights in blue, pruned in red — a vertical cut for magnitude, a tilted one for Taylor.
The readout gives the accuracy and the Jaccard overlap of the pruned set with magnitude pruning's
(``prune.mask_jaccard``).
Explained in notebooks/08_importance_criteria.ipynb.
"""
from __future__ import annotations

import copy
import html
from collections.abc import Mapping

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots
from torch import nn

from labkit import train
from labkit.prune import CRITERIA, global_prune, mask_jaccard, prunable_layers, saliency
from labkit.prune import sparsity as weight_sparsity
from labkit.stats import accuracy_interval
from labkit.validate import require_choice, require_float, require_int, require_module
from labkit.widgets.base import FIGURE_TEMPLATE, Explorer, FigureWidget, dropdown, slider

SPARSITY_MAX, SPARSITY_STEP = 0.99, 0.01
LEVELS = (0.0, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98)
COLOURS = {"magnitude": "#4C72B0", "random": "#7f7f7f", "taylor": "#2ca02c", "obd": "#ff7f0e",
           "gradient": "#9467bd"}


class CriteriaExplorer(Explorer):
    """Compare pruning criteria on ``model``: accuracy vs sparsity, and |w| vs score for one layer.

    ``CriteriaExplorer(model, eval_data, scores, sparsity=0.5, criterion="magnitude", layer=None)``:
    ``model`` has Linear/Conv2d layers (copied, never modified); ``eval_data`` is a labelled Dataset
    or ``(x, y)`` pair (``data.eval_subset`` keeps it fast); ``scores`` maps extra criterion names
    to ``{layer name: score tensor}`` dicts, e.g. ``{"taylor": prune.taylor_scores(model, data),
    "obd": prune.obd_scores(model, data)}`` (the data-free ``prune.CRITERIA`` — magnitude, random and any
    you register — are always offered). Controls:
    ``criterion`` (Dropdown), ``sparsity`` (FloatSlider 0–0.99, on release), ``layer`` (Dropdown;
    the scatter shown). ``stats``: ``criterion``, ``sparsity``, ``layer``, ``accuracy``,
    ``dense_accuracy``, ``jaccard_magnitude``, ``global_sparsity``, ``layer_sparsity``, ``kept``,
    ``pruned`` (counts in the layer), ``curve`` (accuracy at each of ``LEVELS``).
    Explained in notebooks/08_importance_criteria.ipynb.
    """

    name = "criteria"

    def __init__(self, model: nn.Module, eval_data, scores: Mapping, sparsity: float = 0.5,
                 criterion: str = "magnitude", layer: str | None = None, max_points: int = 3000, seed: int = 0):
        require_module("model", model)
        self._base = copy.deepcopy(model).eval()
        self.layers = prunable_layers(self._base)
        if not self.layers:
            raise ValueError("model has no nn.Linear or nn.Conv2d layer")
        self._seed = require_int("seed", seed, 0, 2**32 - 1)
        self.scores = {**{name: saliency(self._base, name, seed=self._seed) for name in CRITERIA},   # data-free
                       **_check_scores(scores, self.layers)}
        if layer is not None and layer not in self.layers:
            raise ValueError(f"layer must be one of {list(self.layers)}, got {layer!r}")
        self._layer = layer or max(self.layers, key=lambda n: self.layers[n].weight.numel())
        self._sparsity = require_float("sparsity", sparsity, 0.0, SPARSITY_MAX)
        self._criterion = require_choice("criterion", criterion, tuple(self.scores))
        self._max_points = require_int("max_points", max_points, 10, 1_000_000)
        self.eval_data = eval_data
        self.dense_accuracy = train.evaluate(self._base, eval_data)
        for name in self.scores:   # every curve now, so that switching criteria later only redraws
            self.curve(name)
        super().__init__()

    # --- controls and figure ----------------------------------------------------------------
    def build_controls(self) -> dict:
        options = [(f"{name}  {list(m.weight.shape)}", name) for name, m in self.layers.items()]
        return {
            "criterion": dropdown(self.name, "criterion", options=list(self.scores), value=self._criterion,
                                  description="criterion"),
            "sparsity": slider(self.name, "sparsity", value=self._sparsity, min=0.0, max=SPARSITY_MAX,
                               step=SPARSITY_STEP, readout_format=".2f", description="global sparsity"),
            "layer": dropdown(self.name, "layer", options=options, value=self._layer, description="layer"),
        }

    def build_figure(self) -> go.FigureWidget:
        fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.12,
                            subplot_titles=("accuracy vs global sparsity (no fine-tuning)",
                                            "one layer: |w| vs score, kept / pruned"))
        for criterion in self.scores:
            fig.add_trace(go.Scatter(x=[], y=[], mode="lines+markers", name=criterion,
                                     line=dict(color=COLOURS.get(criterion)),
                                     hovertemplate=f"{criterion}: s=%{{x:.2f}}, acc %{{y:.1f}} %<extra></extra>"), 1, 1)
        fig.add_trace(go.Scatter(x=[], y=[], mode="lines", name="sparsity", showlegend=False, hoverinfo="skip",
                                 line=dict(color="black", width=1, dash="dot")), 1, 1)
        fig.add_trace(go.Scatter(x=[], y=[], mode="markers", name="current", showlegend=False,
                                 marker=dict(size=14, symbol="circle-open", color="black", line=dict(width=2))), 1, 1)
        fig.add_trace(go.Scattergl(x=[], y=[], mode="markers", name="kept", marker=dict(size=3, color="#4C72B0")), 1, 2)
        fig.add_trace(go.Scattergl(x=[], y=[], mode="markers", name="pruned", marker=dict(size=3, color="#d62728")),
                      1, 2)
        fig.update_layout(height=420, margin=dict(l=55, r=20, t=95, b=50), template=FIGURE_TEMPLATE,
                          legend=dict(orientation="h", x=0.0, y=-0.2))
        fig.update_xaxes(title_text="global sparsity", range=[-0.02, 1.0], row=1, col=1)
        fig.update_yaxes(title_text="accuracy (%)", range=[0, 102], row=1, col=1)
        fig.update_xaxes(title_text="|w| (log scale)", type="log", exponentformat="power", row=1, col=2)
        fig.update_yaxes(title_text="criterion score (log scale)", type="log", exponentformat="power", row=1, col=2)
        return FigureWidget(fig)

    # --- the numbers (all from labkit.prune / labkit.train) ---------------------------------------
    def setting(self, sparsity: float, criterion: str) -> dict:
        """Masks and accuracy of the model pruned to ``sparsity`` with ``criterion``'s scores (cached)."""
        key = (round(float(sparsity), 4), criterion)

        def prune_and_evaluate() -> dict:
            model = copy.deepcopy(self._base)
            masks = global_prune(model, key[0], scores=self.scores[criterion])
            interval = accuracy_interval(train.correct(model, self.eval_data))
            return {"masks": masks, "accuracy": interval.value, "interval": interval,
                    "sparsity": weight_sparsity(model)}
        return self.remember("setting", key, prune_and_evaluate)

    def curve(self, criterion: str) -> list[float]:
        """Accuracy at each sparsity of ``LEVELS`` under ``criterion`` (computed once)."""
        return self.remember("curve", criterion, lambda: [self.setting(s, criterion)["accuracy"] for s in LEVELS])

    def _sample(self, layer: str) -> np.ndarray:
        """A fixed, seeded subset of the layer's flat weight indices (all of them if few)."""
        n = self.layers[layer].weight.numel()
        if n <= self._max_points:
            return np.arange(n)
        return self.remember("sample", layer, lambda: np.sort(
            np.random.default_rng(self._seed).choice(n, self._max_points, replace=False)))

    def draw(self, values: dict) -> None:
        criterion, s, layer = values["criterion"], float(values["sparsity"]), values["layer"]
        result = self.setting(s, criterion)
        jaccard = mask_jaccard(result["masks"], self.setting(s, "magnitude")["masks"])
        curve = self.curve(criterion)
        for trace, name in zip(self.figure.data, self.scores):
            trace.x, trace.y = list(LEVELS), [100 * a for a in self.curve(name)]
            trace.line.width = 4 if name == criterion else 1.5
        cursor, current, kept_trace, pruned_trace = self.figure.data[len(self.scores):]
        cursor.x, cursor.y = [s, s], [0.0, 100.0]
        current.x, current.y = [s], [100 * result["accuracy"]]
        idx = self._sample(layer)
        w = self.layers[layer].weight.detach().abs().reshape(-1).double().numpy()[idx]
        score = self.scores[criterion][layer].detach().reshape(-1).double().numpy()[idx]
        keep = result["masks"][layer].reshape(-1).numpy()[idx] == 1
        kept_trace.x, kept_trace.y = w[keep].tolist(), score[keep].tolist()         # plain lists, never numpy
        pruned_trace.x, pruned_trace.y = w[~keep].tolist(), score[~keep].tolist()
        full_keep = result["masks"][layer]
        self.figure.layout.title.text = (f"{criterion} pruning at global sparsity {s:.2f}: {layer} "
                                         f"{list(self.layers[layer].weight.shape)}")
        self.stats = {"criterion": criterion, "sparsity": s, "layer": layer, "accuracy": result["accuracy"],
                      "accuracy_low": result["interval"].low, "accuracy_high": result["interval"].high,
                      "eval_images": result["interval"].n,
                      "dense_accuracy": self.dense_accuracy, "jaccard_magnitude": jaccard,
                      "global_sparsity": result["sparsity"]["global"],
                      "layer_sparsity": result["sparsity"]["layers"][layer],
                      "kept": int(full_keep.sum()), "pruned": int((full_keep == 0).sum()), "curve": list(curve)}
        self.readout.value = _readout_html(self.stats)


def _check_scores(scores, layers: dict) -> dict:
    if not isinstance(scores, Mapping):
        raise TypeError(f"scores must be a dict {{criterion name: {{layer name: tensor}}}}, "
                        f"got {type(scores).__name__}")
    checked = {}
    for name, per_layer in scores.items():
        if not isinstance(name, str) or name in CRITERIA:
            raise ValueError(f"scores keys must be new criterion names (str, not {'/'.join(CRITERIA)}, which are "
                             f"always offered), got {name!r}")
        if not isinstance(per_layer, Mapping) or set(per_layer) != set(layers):
            raise ValueError(f"scores[{name!r}] must be a dict over the layers {list(layers)}")
        for layer, t in per_layer.items():
            if not isinstance(t, torch.Tensor) or tuple(t.shape) != tuple(layers[layer].weight.shape):
                raise ValueError(f"scores[{name!r}][{layer!r}] must be a tensor of shape "
                                 f"{tuple(layers[layer].weight.shape)}")
        checked[name] = dict(per_layer)
    return checked


def _readout_html(stats: dict) -> str:
    interval = f"[{100 * stats['accuracy_low']:.1f}, {100 * stats['accuracy_high']:.1f}]"
    rows = [(f"accuracy ({stats['eval_images']:,} test images)", f"{stats['accuracy']:.1%} {interval}"),
            ("dense accuracy", f"{stats['dense_accuracy']:.1%}"),
            ("overlap with magnitude (Jaccard)", f"{stats['jaccard_magnitude']:.2f}"),
            ("global sparsity", f"{stats['global_sparsity']:.1%}"),
            (f"{stats['layer']} sparsity", f"{stats['layer_sparsity']:.1%}")]
    body = "".join(f"<tr><td>{html.escape(k)}</td><td style='text-align:right;white-space:nowrap'>"
                   f"<b>{html.escape(v)}</b></td></tr>" for k, v in rows)
    return (f"<b>{html.escape(stats['criterion'])}</b> pruning, target {stats['sparsity']:.2f}"
            f"<table style='font-size:90%'>{body}</table>")
