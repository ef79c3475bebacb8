"""Weight-bits explorer: move the bits and group-size sliders and watch a small language model change.

Every block linear layer of a ``TinyGPT`` is rounded to the nearest level of its group's asymmetric
grid (``labkit.llm.experiment.weight_only_point``: ``rtn`` + held-out perplexity + bytes on disk + a
greedy sample of generated text). The figure plots perplexity against bytes on disk for every setting
computed so far — one line per group size through 2…8 bits, the float32 model as a star — with the
current setting ringed in red. The readout gives the perplexity with its 95 % window interval, the
paired ratio to float32 on the same windows, the bytes and bits per weight, and the text the quantized
model writes beside the float32 model's. Each (bits, group size) is computed once and cached;
``precompute()`` fills the whole grid (a setting costs a few hundred ms on one core), so moving a
slider only looks up. Explained in notebooks/16_transformer_compression.ipynb.
"""
from __future__ import annotations

import html

import ipywidgets as W
import plotly.graph_objects as go

from labkit.llm import experiment
from labkit.llm.model import TinyGPT, linear_layers
from labkit.llm.rtn import MAX_BITS, MIN_BITS
from labkit.validate import require_int
from labkit.widgets.base import FIGURE_TEMPLATE, Explorer, FigureWidget, css_class, int_slider, readout_rows

GROUP_COLORS = ("#9ecae1", "#6baed6", "#3182bd", "#08519c", "#08306b", "#252525")


def llm_group_sizes(model: TinyGPT, smallest: int = 16) -> list[int]:
    """Group sizes (≥ ``smallest``) that divide the input width of every block linear of ``model``."""
    widths = {layer.in_features for layer in linear_layers(model).values()}
    return [g for g in range(smallest, min(widths) + 1) if all(w % g == 0 for w in widths)]


class WeightBitsExplorer(Explorer):
    """Round-to-nearest weight quantization of a whole ``TinyGPT`` at the sliders' bits and group size.

    ``WeightBitsExplorer(model, windows, prompt="The ", bits=4, group_size=None, new_tokens=60)``:
    ``windows`` int64 ``[W, T + 1]`` held-out windows (``experiment.held_out_windows``); ``prompt`` a str
    of characters in the corpus; ``group_size`` one of ``llm_group_sizes(model)`` (``None``: the one nearest
    64). Controls: ``bits`` (IntSlider 2–8), ``group_size`` (SelectionSlider over
    ``llm_group_sizes``), both redrawn on release. ``stats``: ``bits``, ``group_size``, ``ppl``,
    ``ppl_low``, ``ppl_high``, ``ratio`` (PPL / fp32 PPL on the same windows, paired) with ``ratio_low``,
    ``ratio_high``, ``bytes`` (the whole model file), ``fp32_bytes``, ``fp32_ppl``, ``weights`` (block-linear
    weights), ``sample``, ``fp32_sample``, ``points`` (settings cached), ``windows``. The model is never modified.
    Explained in notebooks/16_transformer_compression.ipynb.
    """

    name = "weight-bits"

    def __init__(self, model: TinyGPT, windows, prompt: str = "The ", bits: int = 4, group_size: int | None = None,
                 new_tokens: int = 60):
        if not isinstance(model, TinyGPT):
            raise TypeError(f"model must be a TinyGPT, got {type(model).__name__}")
        self.group_sizes = llm_group_sizes(model)
        self._bits = require_int("bits", bits, MIN_BITS, MAX_BITS)
        if group_size is None:
            group_size = min(self.group_sizes, key=lambda g: abs(g - 64))
        if group_size not in self.group_sizes:
            raise ValueError(f"group_size must divide every layer's input width: one of {self.group_sizes}, "
                             f"got {group_size!r}")
        self._group_size = group_size
        self.model, self.windows, self.prompt = model, windows, prompt
        self.new_tokens = require_int("new_tokens", new_tokens, 1, 1000)
        self.fp32 = experiment.measure(model, windows)
        self.fp32["sample"] = experiment.generate_text(model, prompt, self.new_tokens)
        super().__init__()

    def build_controls(self) -> dict:
        group = W.SelectionSlider(options=self.group_sizes, value=self._group_size, description="group size",
                                  continuous_update=False, style={"description_width": "initial"})
        group.add_class(css_class(self.name, "group-size"))
        return {"bits": int_slider(self.name, "bits", value=self._bits, min=MIN_BITS, max=MAX_BITS, step=1,
                                   description="bits per weight"),
                "group_size": group}

    def build_figure(self) -> go.FigureWidget:
        fig = go.Figure()
        for g, color in zip(self.group_sizes, GROUP_COLORS[-len(self.group_sizes):]):
            fig.add_trace(go.Scatter(x=[], y=[], mode="lines+markers", marker=dict(color=color, size=7),
                                     line=dict(color=color), name=f"RTN, group {g}"))
        fig.add_trace(go.Scatter(x=[], y=[], mode="markers", marker=dict(color="#2ca02c", size=14, symbol="star"),
                                 name="float32"))
        fig.add_trace(go.Scatter(x=[], y=[], mode="markers", name="current setting",
                                 marker=dict(color="rgba(0,0,0,0)", size=18, line=dict(color="#d62728", width=3))))
        fig.update_layout(height=420, width=640, margin=dict(l=70, r=20, t=60, b=60), template=FIGURE_TEMPLATE,
                          legend=dict(x=1.0, xanchor="right", y=1.0, bgcolor="rgba(255,255,255,0.8)"))
        fig.update_xaxes(title_text="bytes on disk (kB, whole model file)")
        fig.update_yaxes(type="log", title_text="held-out perplexity (per character, log scale)")
        return FigureWidget(fig)

    # --- the numbers (all from labkit.llm.experiment) -------------------------------------------
    def setting(self, bits: int, group_size: int) -> dict:
        """``weight_only_point`` at ``bits``/``group_size`` (cached, no redraw)."""
        bits = require_int("bits", bits, MIN_BITS, MAX_BITS)
        if group_size not in self.group_sizes:
            raise ValueError(f"group_size must be one of {self.group_sizes}, got {group_size!r}")
        key = (bits, group_size)
        return self.remember("setting", key, lambda: experiment.weight_only_point(
            self.model, bits, group_size, self.windows, self.prompt, self.new_tokens, self.fp32["nll"]))

    def precompute(self, progress=None) -> "WeightBitsExplorer":
        """Compute every (bits, group size) of the sliders, then redraw; ``progress`` wraps the list (tqdm)."""
        grid = [(b, g) for g in self.group_sizes for b in range(MIN_BITS, MAX_BITS + 1)]
        for bits, group_size in (progress(grid) if progress else grid):
            self.setting(bits, group_size)
        self.update()
        return self

    def draw(self, values: dict) -> None:
        bits, group_size = int(values["bits"]), int(values["group_size"])
        point = self.setting(bits, group_size)
        *lines, star, ring = self.figure.data
        for g, line in zip(self.group_sizes, lines):
            known = self.remembered("setting")
            done = sorted(b for b, gg in known if gg == g)
            line.x = [known[(b, g)]["bytes"] / 1000 for b in done]
            line.y = [known[(b, g)]["ppl"].value for b in done]
            line.text = [f"{b} bits" for b in done]
        # every trace gets x, y and text in every batch (labkit.widgets.base.complete_batch)
        star.x, star.y, star.text = [self.fp32["bytes"] / 1000], [self.fp32["ppl"].value], ["float32"]
        ring.x, ring.y = [point["bytes"] / 1000], [point["ppl"].value]
        ring.text = [f"{bits} bits, group {group_size}"]
        self.figure.layout.title.text = (f"Perplexity vs bytes: RTN {bits}-bit, group {group_size} → "
                                         f"PPL {point['ppl'].value:.2f} at {point['bytes'] / 1000:,.0f} kB")
        n_weights = sum(layer.weight.numel() for layer in linear_layers(self.model).values())
        self.stats = {"bits": bits, "group_size": group_size, "ppl": point["ppl"].value, "ppl_low": point["ppl"].low,
                      "ppl_high": point["ppl"].high, "ratio": point["ratio"].value, "ratio_low": point["ratio"].low,
                      "ratio_high": point["ratio"].high, "bytes": point["bytes"], "fp32_bytes": self.fp32["bytes"],
                      "fp32_ppl": self.fp32["ppl"].value, "weights": n_weights, "sample": point["sample"],
                      "fp32_sample": self.fp32["sample"], "points": len(self.remembered("setting")), "windows": len(self.windows)}
        self.readout.value = _readout_html(self.stats, self.prompt)


def _readout_html(s: dict, prompt: str) -> str:
    rows = [("perplexity [95 % window interval]", f"{s['ppl']:.3f} [{s['ppl_low']:.3f}, {s['ppl_high']:.3f}]"),
            ("PPL / float32 (paired)", f"{s['ratio']:.3f} [{s['ratio_low']:.3f}, {s['ratio_high']:.3f}]"),
            ("float32 perplexity", f"{s['fp32_ppl']:.3f}"),
            ("bytes on disk", f"{s['bytes']:,} ({s['fp32_bytes'] / s['bytes']:.2f}× smaller)"),
            ("float32 bytes", f"{s['fp32_bytes']:,}")]
    body = readout_rows(rows)
    text = (lambda t: html.escape(prompt + t).replace("\n", "↵"))
    return (f"<b>RTN {s['bits']}-bit, group {s['group_size']}</b> ({s['windows']} held-out windows, "
            f"{s['points']} settings cached)<table style='font-size:90%'>{body}</table>"
            f"<div style='font-size:90%'>quantized model writes:</div>"
            f"<pre style='white-space:pre-wrap;max-width:340px;margin:2px 0'>{text(s['sample'])}</pre>"
            f"<div style='font-size:90%'>float32 model writes:</div>"
            f"<pre style='white-space:pre-wrap;max-width:340px;margin:2px 0;color:#555'>{text(s['fp32_sample'])}</pre>")
