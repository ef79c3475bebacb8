"""Quantization-grid explorer: a layer's weight histogram with the quantizer's levels drawn over it.

A ``b``-bit uniform quantizer can only output ``2^b`` values, ``x̂ = (k - z)·s`` for the integer
codes ``k = qmin..qmax``. Drawing those values as vertical lines over the histogram of a trained
layer's weights shows at a glance what the numbers in the readout mean: how coarse the grid is at
2–3 bits, how many levels a symmetric grid wastes on a one-sided range, how far the outermost
levels (the clipping points, red) sit from the bulk of the weights, and how a per-channel or
per-group grid adapts to each channel's own range. The explorer is a view: every number comes from
``labkit.quant.quantize_weight`` (codes, scale, zero point, grid, SQNR, MSE, packed bytes).

Explained in notebooks/01_quantization_basics.ipynb.
"""
from __future__ import annotations

import html

import numpy as np
import plotly.graph_objects as go
import torch
from torch import nn

from labkit.measure import weight_tensors
from labkit.quant.affine import quantize_weight, valid_group_sizes
from labkit.validate import require_bool, require_choice, require_int
from labkit.widgets.base import (FIGURE_TEMPLATE, Explorer, FigureWidget, checkbox, dropdown, int_slider, readout_rows,
                                 step_histogram, vertical_lines)

__all__ = ["QuantGridExplorer", "valid_group_sizes"]

SCHEMES = ("asymmetric", "symmetric")
GRANULARITY_OPTIONS = (("per-tensor", "tensor"), ("per-channel", "channel"), ("per-group", "group"))
ALL_CHANNELS = -1
PREFERRED_GROUP_SIZE = 16

_WEIGHT_COLOR = "#4C72B0"
_WEIGHT_FILL = "rgba(76, 114, 176, 0.55)"
_QUANT_EDGE = "#C8602A"
_QUANT_FILL = "rgba(221, 132, 82, 0.55)"
_GRID_COLOR = "rgba(40, 40, 40, 0.45)"
_CLIP_COLOR = "#C44E52"


def _nearest(options: list[int], wanted: int) -> int:
    return min(options, key=lambda g: (abs(g - wanted), g))


class QuantGridExplorer(Explorer):
    """Weight histogram of one layer with the representable levels of its quantizer drawn over it.

    ``QuantGridExplorer(model, layer=None, bits=4, scheme="asymmetric", granularity="tensor",
    group_size=None, channel=-1, show_quantized=True, bins=80)`` works on any ``nn.Module`` with a
    conv/linear weight. Controls: ``layer`` (weight name), ``bits`` (1–8), ``scheme``
    (``"asymmetric"``/``"symmetric"``), ``granularity`` (``"tensor"``, ``"channel"``, ``"group"``),
    ``group_size`` (the divisors of one channel's length; used when ``granularity="group"``),
    ``channel`` (``-1`` = the whole layer, else one output channel: its histogram and its own grid)
    and ``show_quantized`` (overlay the histogram of the dequantized weights ``x̂``, right axis).

    The grid lines are the levels ``(k - z)·s`` of the quantizer that covers the shown channel
    (channel 0 when the whole layer is shown with per-channel/per-group parameters; the first group
    of the channel for per-group); the two outermost levels — the clipping points — are red, and
    hovering a line shows its integer code. Both histograms are filled step lines (one path each);
    the one of ``x̂`` (right axis) is drawn over the grid lines, so that at 1–2 bits, where every
    ``x̂`` sits on a level, the lines do not hide it. A redraw assigns trace data only
    (plain lists) and the title; the right axis changes only when ``show_quantized`` does. With
    ``show_quantized=False`` the x̂ trace is hidden (``visible=False``) and holds no data (x, y
    ``None``), as the browser's plotly.js keeps none for a hidden trace.
    ``stats`` holds ``layer``, ``shape``, ``numel``, ``bits``, ``levels`` (``2^bits``),
    ``grid_lines`` (lines drawn), ``levels_used`` (distinct codes in the shown weights),
    ``num_qparams``, ``scale``/``zero_point`` (those of the drawn grid), ``scale_min``/``scale_max``,
    ``sqnr_db``/``mse`` (whole layer), ``nbytes`` (packed codes + parameters, from
    ``labkit.quant.quantized_nbytes``), ``fp32_nbytes`` and ``compression``.

    Explained in notebooks/01_quantization_basics.ipynb.
    """

    name = "quant-grid"

    def __init__(self, model: nn.Module, layer: str | None = None, bits: int = 4, scheme: str = "asymmetric",
                 granularity: str = "tensor", group_size: int | None = None, channel: int = ALL_CHANNELS,
                 show_quantized: bool = True, bins: int = 80):
        self.weights = weight_tensors(model)  # TypeError / ValueError at the boundary
        self.model = model
        if layer is not None and layer not in self.weights:
            raise ValueError(f"layer must be one of {list(self.weights)}, got {layer!r}")
        self._init = {
            "layer": layer or next(iter(self.weights)),
            "bits": require_int("bits", bits, 1, 8),
            "scheme": require_choice("scheme", scheme, SCHEMES),
            "granularity": require_choice("granularity", granularity, [g for _, g in GRANULARITY_OPTIONS]),
        }
        weight = self.weights[self._init["layer"]]()
        sizes = valid_group_sizes(weight)
        if group_size is not None:
            group_size = require_int("group_size", group_size, 1)
            if group_size not in sizes:
                raise ValueError(f"group_size must divide the {weight[0].numel()} values of one channel of "
                                 f"{self._init['layer']}: one of {sizes}, got {group_size}")
        self._init["group_size"] = group_size or _nearest(sizes, PREFERRED_GROUP_SIZE)
        self._init["channel"] = require_int("channel", channel, ALL_CHANNELS, weight.shape[0] - 1)
        require_bool("show_quantized", show_quantized)
        self._init["show_quantized"] = show_quantized
        self._bins = require_int("bins", bins, 5, 250)
        super().__init__()

    # --- the three methods of an Explorer -----------------------------------------------------
    def build_controls(self) -> dict:
        init, n = self._init, self.name
        weight = self.weights[init["layer"]]()
        layers = [(f"{name}  {_shape_text(fn().shape)}", name) for name, fn in self.weights.items()]
        return {
            "layer": dropdown(n, "layer", options=layers, value=init["layer"], description="layer"),
            "bits": int_slider(n, "bits", value=init["bits"], min=1, max=8, step=1, description="bits"),
            "scheme": dropdown(n, "scheme", options=list(SCHEMES), value=init["scheme"], description="scheme"),
            "granularity": dropdown(n, "granularity", options=list(GRANULARITY_OPTIONS),
                                    value=init["granularity"], description="granularity"),
            "group_size": dropdown(n, "group-size", options=_group_options(weight), value=init["group_size"],
                                   description="group size"),
            "channel": dropdown(n, "channel", options=_channel_options(weight), value=init["channel"],
                                description="show"),
            "show_quantized": checkbox(n, "show-quantized", value=init["show_quantized"],
                                       description="histogram of x̂"),
        }

    def build_figure(self) -> go.FigureWidget:
        traces = [
            go.Scatter(x=[], y=[], name="weights w", mode="lines", line=dict(color=_WEIGHT_COLOR, width=1, shape="hv"),
                       fill="tozeroy", fillcolor=_WEIGHT_FILL,
                       hovertemplate="w from %{x:.4f}<br>count %{y}<extra></extra>"),
            go.Scatter(x=[], y=[], mode="lines", name="levels (k − z)·s", yaxis="y2",
                       line=dict(color=_GRID_COLOR, width=1),
                       hovertemplate="code %{customdata} → x̂ = %{x:.4g}<extra></extra>"),
            go.Scatter(x=[], y=[], mode="lines", name="clipping points", yaxis="y2", hoverinfo="skip",
                       line=dict(color=_CLIP_COLOR, width=2, dash="dash")),
            go.Scatter(x=[], y=[], name="dequantized x̂", mode="lines", yaxis="y3", fill="tozeroy",
                       line=dict(color=_QUANT_EDGE, width=1.5, shape="hv"), fillcolor=_QUANT_FILL,
                       hovertemplate="x̂ from %{x:.4f}<br>count %{y}<extra></extra>"),
        ]
        figure = FigureWidget(data=traces)
        figure.update_layout(
            height=420, margin=dict(l=65, r=75, t=80, b=50), template=FIGURE_TEMPLATE,
            xaxis_title="weight value", yaxis=dict(title="count of w", rangemode="tozero"),
            yaxis2=dict(overlaying="y", range=[0, 1], visible=False, fixedrange=True),
            yaxis3=dict(title="count of x̂", overlaying="y", side="right", showgrid=False, rangemode="tozero",
                        tickmode="auto",
                        visible=self._init["show_quantized"]),
            legend=dict(orientation="h", yanchor="bottom", y=1.0, x=0, font=dict(size=10)),
            title=dict(font=dict(size=13), y=0.97))
        return figure

    def draw(self, values: dict) -> None:
        values = self._sync_layer_options(values)
        weight = self.weights[values["layer"]]().float()
        granularity, channel = values["granularity"], values["channel"]
        result = quantize_weight(weight, values["bits"], values["scheme"], granularity, axis=0,
                                 group_size=values["group_size"] if granularity == "group" else None)
        shown = slice(None) if channel == ALL_CHANNELS else channel
        w_shown = weight[shown].reshape(-1).double().numpy()
        x_hat_shown = result.dequantized[shown].reshape(-1).double().numpy()
        grid_channel = 0 if channel == ALL_CHANNELS else channel
        levels, scale, zero_point = _drawn_grid(result, grid_channel)

        lo = min(w_shown.min(), x_hat_shown.min())
        hi = max(w_shown.max(), x_hat_shown.max())
        span = (lo, hi if hi > lo else lo + 1e-6)  # equal-width bins: numpy's fast path, no sort
        w_counts, edges = np.histogram(w_shown, bins=self._bins, range=span)
        q_counts, _ = np.histogram(x_hat_shown, bins=self._bins, range=span)
        weights, grid, clip, quantized = self.figure.data
        weights.x, weights.y = step_histogram(w_counts, edges)
        codes = np.arange(result.qparams.qmin, result.qparams.qmax + 1)
        grid.x, grid.y = vertical_lines(levels)
        grid.customdata = np.repeat(codes, 3).tolist()   # hover on a line: its code and value
        clip.x, clip.y = vertical_lines(levels[[0, -1]])
        # hidden x̂: no data, as plotly.js keeps none for a trace with visible=False (its _fullData
        # entry has no x/y), so the kernel's figure and the drawn one agree; shown again, it is redrawn
        quantized.x, quantized.y = step_histogram(q_counts, edges) if values["show_quantized"] else (None, None)
        quantized.visible = values["show_quantized"]
        if self.figure.layout.yaxis3.visible != values["show_quantized"]:
            self.figure.layout.yaxis3.visible = values["show_quantized"]
        self.figure.layout.title.text = _title(values, result, weight.shape[0], grid_channel)

        self.stats = self._stats(values, weight, result, levels, scale, zero_point, shown)
        self.readout.value = _readout_html(self.stats)

    # --- keeping the layer-dependent controls valid -------------------------------------------
    def set(self, **values) -> "QuantGridExplorer":
        """As ``Explorer.set``; a new ``layer`` is applied first so that its ``group_size`` and
        ``channel`` options are the ones the other values are checked against."""
        if "bits" in values:  # an IntSlider would silently clamp 12 to 8
            require_int("bits", values["bits"], 1, 8)
        if "layer" in values:
            if values["layer"] not in self.weights:
                raise ValueError(f"layer must be one of {list(self.weights)}, got {values['layer']!r}")
            with self._hold():
                self.controls["layer"].value = values["layer"]
                self._sync_layer_options(self.values)
        return super().set(**values)

    def _sync_layer_options(self, values: dict) -> dict:
        """Give ``group_size`` and ``channel`` the options of the current layer (without redrawing);
        return ``values`` with their (possibly adjusted) current values."""
        weight = self.weights[values["layer"]]()
        group, channel = self.controls["group_size"], self.controls["channel"]
        with self._hold():
            options = _group_options(weight)
            if list(group.options) != options:
                keep = _nearest([g for _, g in options], group.value)
                group.options, group.value = options, keep
            options = _channel_options(weight)
            if list(channel.options) != options:
                keep = channel.value if channel.value < weight.shape[0] else ALL_CHANNELS
                channel.options, channel.value = options, keep
        group.disabled = values["granularity"] != "group"
        return {**values, "group_size": group.value, "channel": channel.value}

    def _stats(self, values, weight, result, levels, scale, zero_point, shown) -> dict:
        qp = result.qparams
        used = int(torch.unique(result.codes[shown]).numel())
        return {
            "layer": values["layer"], "shape": tuple(weight.shape), "numel": int(weight.numel()),
            "bits": values["bits"], "scheme": values["scheme"], "granularity": values["granularity"],
            "group_size": values["group_size"] if values["granularity"] == "group" else None,
            "channel": values["channel"], "levels": qp.levels, "grid_lines": int(levels.size),
            "levels_used": used, "num_qparams": qp.num_params(),
            "scale": scale, "zero_point": zero_point,
            "scale_min": float(qp.scale.min()), "scale_max": float(qp.scale.max()),
            "zero_point_min": int(qp.zero_point.min()), "zero_point_max": int(qp.zero_point.max()),
            "sqnr_db": result.sqnr_db, "mse": result.mse,
            "nbytes": result.nbytes, "fp32_nbytes": result.fp32_nbytes,
            "compression": result.fp32_nbytes / result.nbytes,
        }


# --- small view helpers ---------------------------------------------------------------------------

def _group_options(weight: torch.Tensor) -> list[tuple[str, int]]:
    return [(str(g), g) for g in valid_group_sizes(weight)]


def _channel_options(weight: torch.Tensor) -> list[tuple[str, int]]:
    return [("whole layer", ALL_CHANNELS)] + [(f"channel {c}", c) for c in range(weight.shape[0])]


def _drawn_grid(result, channel: int) -> tuple[np.ndarray, float, int]:
    """Levels, scale and zero point of the quantizer covering ``channel`` (its first group)."""
    qp, levels = result.qparams, result.levels
    index = () if qp.granularity == "tensor" else (channel,) if qp.granularity == "channel" else (channel, 0)
    return (levels[index].double().numpy(), float(qp.scale[index]), int(qp.zero_point[index]))


def _shape_text(shape) -> str:
    return "[" + "×".join(str(int(s)) for s in shape) + "]"


def _title(values: dict, result, channels: int, grid_channel: int) -> str:
    g = values["granularity"]
    where = {"tensor": "one grid for the layer",
             "channel": f"grid of channel {grid_channel} (one of {channels})",
             "group": f"grid of channel {grid_channel}, group 0 (one of {result.qparams.num_params()})"}[g]
    return (f"{values['layer']}: {values['bits']}-bit {values['scheme']} per-{g} — "
            f"{result.qparams.levels} levels, SQNR {result.sqnr_db:.1f} dB<br><sup>lines: {where}</sup>")


def _number(value: float) -> str:
    return f"{value:.4g}"


def _readout_html(stats: dict) -> str:
    g = stats["granularity"]
    if stats["num_qparams"] == 1:
        scale, zero = _number(stats["scale_min"]), str(stats["zero_point_min"])
    else:
        scale = f"{_number(stats['scale_min'])} … {_number(stats['scale_max'])}"
        zero = (str(stats["zero_point_min"]) if stats["zero_point_min"] == stats["zero_point_max"]
                else f"{stats['zero_point_min']} … {stats['zero_point_max']}")
    granularity = f"per-{g}" + (f" (size {stats['group_size']})" if g == "group" else "")
    rows = [
        ("shape", _shape_text(stats["shape"])),
        ("bits / levels", f"{stats['bits']} / {stats['levels']}"),
        ("codes used", f"{stats['levels_used']} of {stats['levels']}"),
        ("granularity", granularity),
        ("(s, z) pairs", f"{stats['num_qparams']:,}"),
        ("scale s", scale),
        ("zero point z", zero),
        ("drawn grid s / z", f"{_number(stats['scale'])} / {stats['zero_point']}"),
        ("SQNR", f"{stats['sqnr_db']:.2f} dB"),
        ("MSE", f"{stats['mse']:.3e}"),
        ("bytes (packed)", f"{stats['nbytes']:,}"),
        ("bytes (fp32)", f"{stats['fp32_nbytes']:,}"),
        ("compression", f"{stats['compression']:.2f}×"),
    ]
    body = readout_rows(rows)
    return (f"<b>{html.escape(stats['layer'])}</b> — {html.escape(stats['scheme'])}"
            f"<table style='font-size:90%'>{body}</table>")
