"""Channel-pruning explorer: remove a fraction of every layer's channels and see what it really buys.

The model is pruned structurally (``labkit.prune.structured_prune``: the same fraction of output
channels from every prunable layer, ranked by the chosen criterion) and physically shrunk. The
figure shows one layer's channel scores in rank order — kept channels in blue, removed ones in red,
the cut between them dashed — on an axis that spans the scores themselves, so one sees how far the
removed channels sit below the kept ones (or how close: then the criterion hardly separates them).
The readout compares the smaller dense model with the original: parameters, MACs, bytes on disk,
accuracy on a fixed evaluation subset (with its 95 % interval) and — when the learner presses
"time it" — the latency of the two models *measured together* (``labkit.measure.compare_latency``:
interleaved rounds, the ratio with its p10–p90 spread, flagged when noisy). Timing is a button, not
part of every redraw: an honest measurement takes longer than a slider should. Each (ratio,
criterion) setting is computed once and cached, its timing too.
Explained in notebooks/09_structured_pruning.ipynb.
"""
from __future__ import annotations

import copy
import html

import ipywidgets as W
import plotly.graph_objects as go
import torch
from torch import nn

from labkit import measure, train
from labkit.prune import CHANNEL_CRITERIA, channel_groups, channel_scores, structured_prune
from labkit.stats import accuracy_interval
from labkit.validate import require_choice, require_float, require_int, require_module
from labkit.widgets.base import FIGURE_TEMPLATE, Explorer, FigureWidget, css_class, dropdown, slider

RATIO_MAX, RATIO_STEP = 0.9, 0.05


class ChannelPruningExplorer(Explorer):
    """Structured pruning of ``model`` at the slider's channel ratio, one layer's scores shown.

    ``ChannelPruningExplorer(model, eval_data, ratio=0.5, criterion="l1", layer=None)``: ``model`` is
    a LeNet-5, VGG or ResNet (copied, never modified); ``eval_data`` a labelled Dataset or ``(x, y)``
    pair. Controls: ``ratio`` (fraction of channels removed per layer, 0–0.9, on release),
    ``criterion`` (the data-free ``prune.CHANNEL_CRITERIA``: l1, l2, bn — only when every layer has a
    BatchNorm —, correlation, geometric_median, one you register, and random; channel "magnitude"
    is Σ|w| = l1, offered once as l1), ``layer``
    (whose scores are drawn); the ``time`` button (or ``measure_latency()``) times the dense and the
    pruned model in ``latency_rounds`` interleaved rounds of ``latency_repeats`` calls on the first
    ``latency_batch`` images. ``stats``: ``ratio``,
    ``criterion``, ``layer``, ``kept``, ``removed``, ``cut`` (the score between removed and kept),
    ``params``, ``dense_params``, ``macs``, ``dense_macs``, ``bytes``, ``dense_bytes``, ``accuracy``
    (with ``accuracy_low``/``accuracy_high``), ``dense_accuracy``, ``latency_ms``,
    ``dense_latency_ms``, ``latency_ratio`` (pruned/dense, median of the rounds) with
    ``latency_ratio_p10``/``latency_ratio_p90``, ``latency_noisy`` (all None until timed).
    Explained in notebooks/09_structured_pruning.ipynb.
    """

    name = "channel-pruning"

    def __init__(self, model: nn.Module, eval_data, ratio: float = 0.5, criterion: str = "l1",
                 layer: str | None = None, seed: int = 0, latency_batch: int = 64, latency_rounds: int = 10,
                 latency_repeats: int = 2):
        require_module("model", model)
        self._base = copy.deepcopy(model).eval()
        self.groups = channel_groups(self._base)
        has_bn = all(g.norm is not None for g in self.groups.values())
        offered = [name for name in CHANNEL_CRITERIA if name != "magnitude" and (name != "bn" or has_bn)]
        self.criteria = tuple(sorted(offered, key=lambda name: name == "random"))   # the baseline last
        if layer is not None and layer not in self.groups:
            raise ValueError(f"layer must be one of {list(self.groups)}, got {layer!r}")
        self._layer = layer or list(self.groups)[-1]
        self._ratio = require_float("ratio", ratio, 0.0, RATIO_MAX)
        self._criterion = require_choice("criterion", criterion, self.criteria)
        self._seed = require_int("seed", seed, 0, 2**32 - 1)
        self._rounds = require_int("latency_rounds", latency_rounds, 2, 1000)
        self._repeats = require_int("latency_repeats", latency_repeats, 1, 1000)
        self.eval_data = eval_data
        dataset = train.as_dataset(eval_data, "eval_data", labelled=True)
        count = min(require_int("latency_batch", latency_batch, 1, 4096), len(dataset))
        self._x = torch.stack([dataset[i][0] for i in range(count)])
        self._shape = tuple(self._x.shape[1:])
        self.dense = self._sizes(self._base)
        self.dense["accuracy"] = accuracy_interval(train.correct(self._base, eval_data))
        super().__init__()

    # --- controls and figure ----------------------------------------------------------------
    def build_controls(self) -> dict:
        options = [(f"{n}  ({g.channels} channels)", n) for n, g in self.groups.items()]
        return {
            "ratio": slider(self.name, "ratio", value=self._ratio, min=0.0, max=RATIO_MAX, step=RATIO_STEP,
                            readout_format=".2f", description="channels removed per layer",
                            layout=W.Layout(width="440px")),
            "criterion": dropdown(self.name, "criterion", options=list(self.criteria), value=self._criterion,
                                  description="criterion", layout=W.Layout(width="180px")),
            "layer": dropdown(self.name, "layer", options=options, value=self._layer, description="layer",
                              layout=W.Layout(width="260px")),
        }

    def build_figure(self) -> go.FigureWidget:
        fig = go.Figure()
        for name, colour in (("kept", "#4C72B0"), ("removed", "#d62728")):
            fig.add_trace(go.Scatter(x=[], y=[], mode="markers", name=f"{name} channels", customdata=[],
                                     marker=dict(color=colour, size=8),
                                     hovertemplate=f"channel %{{customdata}}<br>score %{{y:.4g}}<extra>{name}</extra>"))
        fig.add_trace(go.Scatter(x=[], y=[], mode="lines", name="cut", hoverinfo="skip",
                                 line=dict(color="black", width=1, dash="dash")))
        fig.update_layout(height=380, margin=dict(l=60, r=20, t=60, b=50), template=FIGURE_TEMPLATE,
                          legend=dict(orientation="h", x=0.0, y=-0.2))
        fig.update_xaxes(title_text="channel rank (lowest score first)")
        fig.update_yaxes(title_text="channel score (criterion's units)")
        return FigureWidget(fig)

    def layout(self) -> W.Box:
        self.time_button = W.Button(description="time it: dense vs pruned", icon="clock",
                                    layout=W.Layout(width="220px"),
                                    tooltip="measure both models together, interleaved (about a second)")
        self.time_button.add_class(css_class(self.name, "time"))
        self.time_button.on_click(lambda _: self.measure_latency())
        self.figure.layout.autosize = True
        row = W.HBox([*self.controls.values(), self.time_button],
                     layout=W.Layout(flex_flow="row wrap", align_items="center"))
        self.readout.layout = W.Layout(margin="4px 0 0 60px")    # under the figure: the table needs the width
        return W.VBox([row, self.figure, self.readout])

    def measure_latency(self) -> dict:
        """Time the dense and the current pruned model together (``measure.compare_latency``), keep the
        result with the setting and redraw; returns ``compare_latency``'s dict."""
        values = self.values
        result = self.setting(float(values["ratio"]), values["criterion"])
        result["latency"] = measure.compare_latency({"dense": self._base, "pruned": result["model"]}, self._x,
                                                    rounds=self._rounds, repeats=self._repeats, warmup=2)
        self.update()
        return result["latency"]

    # --- the numbers (all from labkit.prune / labkit.measure / labkit.train / labkit.stats) ---
    def _sizes(self, model: nn.Module) -> dict:
        return {"params": measure.count_parameters(model), "macs": measure.total_macs(model, self._shape),
                "bytes": measure.size_on_disk(model, "fp32")}

    def scores(self, criterion: str) -> dict:
        """``channel_scores(model, criterion)`` of every group (computed once per criterion)."""
        return self.remember("scores", criterion, lambda: channel_scores(self._base, criterion, seed=self._seed))

    def setting(self, ratio: float, criterion: str) -> dict:
        """Kept indices and measurements of the model pruned at ``ratio`` (cached)."""
        key = (round(float(ratio), 4), criterion)

        def prune_and_measure() -> dict:
            small, keep = structured_prune(self._base, key[0], scores=self.scores(criterion))
            return {"keep": keep, "model": small.eval(), **self._sizes(small),
                    "accuracy": accuracy_interval(train.correct(small, self.eval_data)), "latency": None}
        return self.remember("setting", key, prune_and_measure)

    def draw(self, values: dict) -> None:
        ratio, criterion, layer = float(values["ratio"]), values["criterion"], values["layer"]
        result = self.setting(ratio, criterion)
        scores = self.scores(criterion)[layer]
        kept = set(result["keep"][layer].tolist())
        order = sorted(range(len(scores)), key=lambda c: (float(scores[c]), c))
        removed = [r for r, c in enumerate(order) if c not in kept]
        kept_trace, removed_trace, cut_trace = self.figure.data
        for trace, ranks in ((kept_trace, [r for r in range(len(order)) if r not in removed]),
                             (removed_trace, removed)):
            trace.x, trace.y = ranks, [float(scores[order[r]]) for r in ranks]     # plain lists, never numpy
            trace.customdata = [order[r] for r in ranks]
        cut = _cut(scores, order, len(removed))
        cut_trace.x, cut_trace.y = ([-0.5, len(order) - 0.5], [cut, cut]) if cut is not None else ([], [])
        self.figure.layout.title.text = f"{criterion} scores of {layer}: {len(kept)} of {len(scores)} channels kept"
        self.stats = self._stats(ratio, criterion, layer, result, len(kept), len(scores), cut)
        self.readout.value = _readout_html(self.stats)

    def _stats(self, ratio, criterion, layer, result, kept, channels, cut) -> dict:
        dense = self.dense
        stats = {"ratio": ratio, "criterion": criterion, "layer": layer, "kept": kept, "removed": channels - kept,
                 "cut": cut, **{k: result[k] for k in ("params", "macs", "bytes")},
                 **{f"dense_{k}": dense[k] for k in ("params", "macs", "bytes")},
                 "accuracy": result["accuracy"].value, "accuracy_low": result["accuracy"].low,
                 "accuracy_high": result["accuracy"].high, "eval_images": result["accuracy"].n,
                 "dense_accuracy": dense["accuracy"].value, "latency_batch": len(self._x)}
        return {**stats, **_latency_stats(result["latency"])}


def _latency_stats(timing: dict | None) -> dict:
    if timing is None:
        return dict.fromkeys(("latency_ms", "dense_latency_ms", "latency_ratio", "latency_ratio_p10",
                              "latency_ratio_p90", "latency_noisy"))
    pruned, dense = timing["pruned"], timing["dense"]
    return {"latency_ms": pruned["median_ms"], "dense_latency_ms": dense["median_ms"],
            "latency_ratio": 1 / pruned["speedup"], "latency_ratio_p10": 1 / pruned["speedup_p90"],
            "latency_ratio_p90": 1 / pruned["speedup_p10"], "latency_noisy": pruned["noisy"] or dense["noisy"]}


def _cut(scores: torch.Tensor, order: list, removed: int) -> float | None:
    """The score half-way between the highest removed and the lowest kept channel (None if none removed)."""
    if removed == 0:
        return None
    return (float(scores[order[removed - 1]]) + float(scores[order[removed]])) / 2


def _readout_html(s: dict) -> str:
    interval = f"[{100 * s['accuracy_low']:.1f}, {100 * s['accuracy_high']:.1f}]"
    rows = [("parameters", f"{s['params']:,}", f"{s['dense_params']:,}", f"×{s['params'] / s['dense_params']:.2f}"),
            ("MACs / image", f"{s['macs']:,}", f"{s['dense_macs']:,}", f"×{s['macs'] / s['dense_macs']:.2f}"),
            ("bytes (fp32)", f"{s['bytes']:,}", f"{s['dense_bytes']:,}", f"×{s['bytes'] / s['dense_bytes']:.2f}"),
            (f"accuracy ({s['eval_images']:,} images)", f"{s['accuracy']:.1%} {interval}",
             f"{s['dense_accuracy']:.1%}", "")]
    if s["latency_ratio"] is None:
        note = "latency: press <i>time it</i> to measure the dense and the pruned model together"
    else:
        rows.append((f"latency, batch {s['latency_batch']}", f"{s['latency_ms']:.2f} ms",
                     f"{s['dense_latency_ms']:.2f} ms", f"×{s['latency_ratio']:.2f}"))
        note = (f"latency measured together, interleaved; ratio p10–p90 ×{s['latency_ratio_p10']:.2f}–"
                f"{s['latency_ratio_p90']:.2f}" + (" — <b>noisy</b> (a busy machine): time it again"
                                                      if s["latency_noisy"] else ""))
    cell = "style='text-align:right;white-space:nowrap;padding-left:10px'"
    body = "".join(f"<tr><td style='white-space:nowrap'>{html.escape(k)}</td>"
                   + "".join(f"<td {cell}>{html.escape(v)}</td>" for v in values) + "</tr>"
                   for k, *values in rows)
    head = f"<tr><th></th><th {cell}>pruned</th><th {cell}>dense</th><th {cell}>ratio</th></tr>"
    return (f"<b>{html.escape(s['criterion'])}</b>: {s['ratio']:.0%} of the channels of every layer removed"
            f"<table style='font-size:90%'>{head}{body}</table><span style='font-size:85%'>{note}</span>")
