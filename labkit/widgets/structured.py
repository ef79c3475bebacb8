"""Channel-pruning explorer: remove a fraction of every layer's channels and see what it really buys.

The model is pruned structurally (``labkit.prune.structured_prune``: the same fraction of output
channels from every prunable layer, ranked by the chosen criterion) and physically shrunk. The
figure shows one layer's channel importances, kept channels in blue and removed ones in red; the
readout compares the smaller dense model with the original: parameters, MACs, bytes on disk, accuracy
on a fixed evaluation subset and the *measured* latency ratio (``labkit.measure.latency``, a few
repeats). Each (ratio, criterion) setting is computed once and cached.
Explained in notebooks/09_structured_pruning.ipynb.
"""
from __future__ import annotations

import copy
import html

import plotly.graph_objects as go
import torch
from torch import nn

from labkit import measure, train
from labkit.prune import channel_groups, channel_scores, structured_prune
from labkit.validate import require_choice, require_float, require_int
from labkit.widgets.base import Explorer, dropdown, slider

RATIO_MAX, RATIO_STEP = 0.9, 0.05


class ChannelPruningExplorer(Explorer):
    """Structured pruning of ``model`` at the slider's channel ratio, one layer's scores shown.

    ``ChannelPruningExplorer(model, eval_data, ratio=0.5, criterion="l1", layer=None)``: ``model`` is
    a LeNet-5, VGG or ResNet (copied, never modified); ``eval_data`` a labelled Dataset or ``(x, y)``
    pair. Controls: ``ratio`` (fraction of channels removed per layer, 0–0.9, on release),
    ``criterion`` (l1 / l2 / bn / random; bn only when every layer has a BatchNorm), ``layer``
    (whose scores are drawn). ``stats``: ``ratio``, ``criterion``, ``layer``, ``kept``, ``removed``,
    ``params``, ``dense_params``, ``macs``, ``dense_macs``, ``bytes``, ``dense_bytes``, ``accuracy``,
    ``dense_accuracy``, ``latency_ms``, ``dense_latency_ms``, ``latency_ratio``.
    Explained in notebooks/09_structured_pruning.ipynb.
    """

    name = "channels"

    def __init__(self, model: nn.Module, eval_data, ratio: float = 0.5, criterion: str = "l1",
                 layer: str | None = None, seed: int = 0, latency_batch: int = 64, latency_repeats: int = 5):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self._base = copy.deepcopy(model).eval()
        self.groups = channel_groups(self._base)
        has_bn = all(g.norm is not None for g in self.groups.values())
        self.criteria = ("l1", "l2", "bn", "random") if has_bn else ("l1", "l2", "random")
        if layer is not None and layer not in self.groups:
            raise ValueError(f"layer must be one of {list(self.groups)}, got {layer!r}")
        self._layer = layer or list(self.groups)[-1]
        self._ratio = require_float("ratio", ratio, 0.0, RATIO_MAX)
        self._criterion = require_choice("criterion", criterion, self.criteria)
        self._seed = require_int("seed", seed, 0, 2**32 - 1)
        self._repeats = require_int("latency_repeats", latency_repeats, 1, 1000)
        self.eval_data = eval_data
        dataset = train._as_dataset(eval_data, "eval_data", labelled=True)
        count = min(require_int("latency_batch", latency_batch, 1, 4096), len(dataset))
        self._x = torch.stack([dataset[i][0] for i in range(count)])
        self._shape = tuple(self._x.shape[1:])
        self.dense = self._measure(self._base)
        self._cache: dict = {}
        super().__init__()

    # --- controls and figure ----------------------------------------------------------------
    def build_controls(self) -> dict:
        options = [(f"{n}  ({g.channels} channels)", n) for n, g in self.groups.items()]
        return {
            "ratio": slider(self.name, "ratio", value=self._ratio, min=0.0, max=RATIO_MAX, step=RATIO_STEP,
                            readout_format=".2f", description="channels removed per layer"),
            "criterion": dropdown(self.name, "criterion", options=list(self.criteria), value=self._criterion,
                                  description="criterion"),
            "layer": dropdown(self.name, "layer", options=options, value=self._layer, description="layer"),
        }

    def build_figure(self) -> go.FigureWidget:
        fig = go.Figure()
        fig.add_trace(go.Bar(x=[], y=[], marker_color="#4C72B0", name="kept",
                             hovertemplate="channel %{x}<br>score %{y:.4g}<extra>kept</extra>"))
        fig.add_trace(go.Bar(x=[], y=[], marker_color="#d62728", name="removed",
                             hovertemplate="channel %{x}<br>score %{y:.4g}<extra>removed</extra>"))
        fig.update_layout(height=360, margin=dict(l=50, r=20, t=60, b=50), template="plotly_white",
                          barmode="overlay", legend=dict(orientation="h", x=0.0, y=-0.2))
        fig.update_xaxes(title_text="output channel (sorted by score)", type="category")
        fig.update_yaxes(title_text="importance score")
        return go.FigureWidget(fig)

    # --- the numbers (all from labkit.prune / labkit.measure / labkit.train) --------------------
    def _measure(self, model: nn.Module) -> dict:
        return {"params": measure.count_parameters(model), "macs": measure.total_macs(model, self._shape),
                "bytes": measure.size_on_disk(model, "fp32"), "accuracy": train.evaluate(model, self.eval_data),
                "latency_ms": measure.latency(model, self._x, warmup=1, repeats=self._repeats)["median_ms"]}

    def setting(self, ratio: float, criterion: str) -> dict:
        """Scores, kept indices and measurements of the model pruned at ``ratio`` (cached)."""
        key = (round(float(ratio), 4), criterion)
        if key not in self._cache:
            scores = channel_scores(self._base, criterion, seed=self._seed)
            small, keep = structured_prune(self._base, key[0], scores=scores)
            self._cache[key] = {"scores": scores, "keep": keep, **self._measure(small.eval())}
        return self._cache[key]

    def draw(self, values: dict) -> None:
        ratio, criterion, layer = float(values["ratio"]), values["criterion"], values["layer"]
        result = self.setting(ratio, criterion)
        scores = result["scores"][layer]
        kept = set(result["keep"][layer].tolist())
        order = sorted(range(len(scores)), key=lambda c: float(scores[c]))
        kept_bar, removed_bar = self.figure.data
        kept_bar.x = [str(c) for c in order if c in kept]
        kept_bar.y = [float(scores[c]) for c in order if c in kept]
        removed_bar.x = [str(c) for c in order if c not in kept]
        removed_bar.y = [float(scores[c]) for c in order if c not in kept]
        self.figure.layout.xaxis.categoryarray = [str(c) for c in order]
        self.figure.layout.xaxis.categoryorder = "array"
        self.figure.layout.title.text = f"{criterion} scores of {layer}: {len(kept)} of {len(scores)} channels kept"
        dense = self.dense
        self.stats = {"ratio": ratio, "criterion": criterion, "layer": layer, "kept": len(kept),
                      "removed": len(scores) - len(kept),
                      **{k: result[k] for k in ("params", "macs", "bytes", "accuracy", "latency_ms")},
                      **{f"dense_{k}": dense[k] for k in ("params", "macs", "bytes", "accuracy", "latency_ms")},
                      "latency_ratio": result["latency_ms"] / dense["latency_ms"]}
        self.readout.value = _readout_html(self.stats)


def _readout_html(s: dict) -> str:
    rows = [("params", f"{s['params']:,} / {s['dense_params']:,}", s["params"] / s["dense_params"]),
            ("MACs", f"{s['macs']:,} / {s['dense_macs']:,}", s["macs"] / s["dense_macs"]),
            ("bytes fp32", f"{s['bytes']:,} / {s['dense_bytes']:,}", s["bytes"] / s["dense_bytes"]),
            ("accuracy (eval subset)", f"{s['accuracy']:.1%} / {s['dense_accuracy']:.1%}", None),
            ("latency (measured)", f"{s['latency_ms']:.2f} ms / {s['dense_latency_ms']:.2f} ms", s["latency_ratio"])]
    body = "".join(f"<tr><td>{html.escape(k)}</td><td style='text-align:right'><b>{html.escape(v)}</b></td>"
                   f"<td style='text-align:right'>{'' if r is None else f'× {r:.2f}'}</td></tr>"
                   for k, v, r in rows)
    return (f"<b>{html.escape(s['criterion'])}</b>: {s['ratio']:.0%} of channels removed per layer "
            f"(pruned / dense)<table style='font-size:90%'>{body}</table>")
