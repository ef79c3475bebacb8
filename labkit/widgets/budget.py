"""Size-budget explorer: a byte budget in, a bit width per layer and a measured accuracy out.

Mixed precision asks which layers can afford fewer bits. Drag the budget slider (KiB of packed weight
codes) and the explorer solves the allocation problem of ``labkit.quant.mixed`` —

    minimise Σ_l sensitivity_l(b_l)   subject to   Σ_l ceil(n_l·b_l / 8) ≤ budget

— exactly (``allocate_bits(method="dp")``, a multiple-choice knapsack) or greedily, draws the bits
of every layer, quantizes the model with ``apply_bit_allocation`` and measures its accuracy on a
fixed evaluation set with ``labkit.train.evaluate``. Accuracies are cached per allocation, so a
budget that leads to an allocation already seen costs only the knapsack (about a millisecond). The
right-hand panel places every allocation met so far on the size–accuracy plane next to the uniform
bit widths. The explorer is a view: every number comes from ``labkit.quant.mixed`` or
``labkit.train``; only the cache lives here.

Explained in notebooks/06_mixed_precision_vector_quantization.ipynb.
"""
from __future__ import annotations

import html
import math
from collections.abc import Mapping

import plotly.graph_objects as go
from plotly.subplots import make_subplots
from torch import nn

from labkit.quant import mixed
from labkit.stats import accuracy_interval
from labkit.train import evaluate
from labkit.validate import require_bool, require_choice, require_float, require_int
from labkit.widgets.base import FIGURE_TEMPLATE, Explorer, FigureWidget, dropdown, slider

__all__ = ["BudgetExplorer"]

METHOD_OPTIONS = (("exact (dynamic programming)", "dp"), ("greedy", "greedy"))
_NICE_STEPS = (0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0)
_BAR_COLOR = "#4C72B0"
_SEEN_COLOR = "rgba(120, 120, 120, 0.55)"
_UNIFORM_COLOR = "#DD8452"
_CURRENT_COLOR = "#C44E52"


def _slider_step(span_kib: float) -> float:
    """A round step giving at most ~200 positions over ``span_kib``."""
    return next((s for s in _NICE_STEPS if span_kib / s <= 200), _NICE_STEPS[-1])


class BudgetExplorer(Explorer):
    """Budget slider (KiB) → bit width per layer (bar chart) → accuracy and size (readout, scatter).

    ``BudgetExplorer(model, data, sensitivity=None, choices=(2, 3, 4, 8), budget_kib=None,
    method="dp", per_channel=True)``: ``model`` any network with Conv2d/Linear layers, ``data`` the
    fixed evaluation set (a Dataset or an ``(x, y)`` pair, e.g. ``labkit.data.eval_subset``),
    ``sensitivity`` ``{layer: {bits: accuracy drop}}`` from ``mixed.layer_sensitivity`` (computed on
    ``data`` when ``None``; pass one measured on calibration data to keep the evaluation set
    honest), ``choices`` the bit widths a layer may get. The budget counts packed weight codes only,
    ``Σ ceil(n_l·b_l / 8)`` bytes (``mixed.allocation_bytes``; scales and biases are not counted); the
    slider runs (in round steps) from every layer at the narrowest choice to every layer at the widest, and starts at
    ``budget_kib`` (default: the size of every layer at the second narrowest choice).

    Controls: ``budget`` (FloatSlider, KiB) and ``method`` (``"dp"`` or ``"greedy"``). ``stats``
    holds ``budget_bytes``, ``used_bytes``, ``fp32_bytes`` (weights in float32), ``compression``
    (fp32 / used), ``allocation`` ``{layer: bits}``, ``accuracy``, ``float_accuracy``,
    ``predicted_drop`` (Σ sensitivities of the allocation), ``measured_drop``, ``cache_hit`` and
    ``evaluations`` (models evaluated so far, uniform baselines included).

    Explained in notebooks/06_mixed_precision_vector_quantization.ipynb.
    """

    name = "budget"

    def __init__(self, model: nn.Module, data, sensitivity: Mapping | None = None, choices=(2, 3, 4, 8),
                 budget_kib: float | None = None, method: str = "dp", per_channel: bool = True):
        self.sizes = mixed.layer_sizes(model)  # TypeError / ValueError for a model without layers
        self.model, self.data = model, data
        self.choices = tuple(sorted({require_int("choices", b, 1, 16) for b in _as_tuple(choices)}))
        if not self.choices:
            raise ValueError("choices must hold at least one bit width in [1, 16], got an empty sequence")
        self._method = require_choice("method", method, mixed.METHODS)
        require_bool("per_channel", per_channel)
        self.per_channel = per_channel
        self.evaluations = 0
        self.float_accuracy = evaluate(model, data)  # TypeError for data that is not a dataset
        self.n_eval = len(data[1]) if isinstance(data, (tuple, list)) else len(data)
        if sensitivity is None:
            sensitivity = mixed.layer_sensitivity(model, data, bits=self.choices, per_channel=per_channel)
        self.sensitivity = sensitivity
        self.min_bytes = mixed.allocation_bytes(self.sizes, mixed.uniform_allocation(self.sizes, self.choices[0]))
        self.max_bytes = mixed.allocation_bytes(self.sizes, mixed.uniform_allocation(self.sizes, self.choices[-1]))
        # Validates sensitivity against sizes and choices once, at the boundary.
        mixed.allocate_bits(self.sizes, sensitivity, self.max_bytes, self.choices, self._method)
        self.step_kib = _slider_step((self.max_bytes - self.min_bytes) / 1024)
        self.min_kib = math.ceil(self.min_bytes / 1024 / self.step_kib - 1e-9) * self.step_kib
        self.max_kib = max(self.min_kib, math.ceil(self.max_bytes / 1024 / self.step_kib - 1e-9) * self.step_kib)
        if budget_kib is None:
            start = self.choices[1] if len(self.choices) > 1 else self.choices[0]
            budget_kib = mixed.allocation_bytes(self.sizes, mixed.uniform_allocation(self.sizes, start)) / 1024
        budget_kib = require_float("budget_kib", budget_kib, self.min_kib, self.max_kib)
        self._budget_kib = min(self.max_kib, max(self.min_kib, round(budget_kib / self.step_kib) * self.step_kib))
        self.uniform = {b: self._point(mixed.uniform_allocation(self.sizes, b)) for b in self.choices}
        super().__init__()

    # --- the three methods of an Explorer -----------------------------------------------------
    def build_controls(self) -> dict:
        n = self.name
        return {
            "budget": slider(n, "budget", value=self._budget_kib, min=self.min_kib, max=self.max_kib,
                             step=self.step_kib, description="budget (KiB)", readout_format=".2f",
                             layout={"width": "480px"}),
            "method": dropdown(n, "method", options=list(METHOD_OPTIONS), value=self._method,
                               description="allocation"),
        }

    def build_figure(self) -> go.FigureWidget:
        # Every trace goes into a plain Figure first and labkit's FigureWidget is built from it at the end:
        # the traces then reach plotly.js in the widget's first message (traces added to a FigureWidget
        # travel as later addTraces messages, and a bar's category labels were lost on the way).
        figure = make_subplots(rows=1, cols=2, column_widths=[0.45, 0.55], horizontal_spacing=0.12,
                               subplot_titles=("bits per layer", "size vs accuracy (eval set)"))
        layers = list(self.sizes)
        # a category axis of the layer names, sent as a plain list (a numpy array of strings would
        # reach plotly.js as 0, 1, 2...)
        figure.add_trace(go.Bar(x=layers, y=[0] * len(layers), marker_color=_BAR_COLOR,
                                textposition="outside", name="bits", showlegend=False,
                                hovertemplate="%{customdata}<extra></extra>"), row=1, col=1)
        uniform_kib = [self.uniform[b][0] / 1024 for b in self.choices]
        uniform_acc = [100 * self.uniform[b][1] for b in self.choices]
        figure.add_trace(go.Scatter(x=uniform_kib, y=uniform_acc, mode="markers+text+lines", name="uniform",
                                    text=[f"{b}-bit" for b in self.choices],
                                    textposition=["bottom right"] * (len(self.choices) - 1) + ["bottom left"],
                                    marker=dict(color=_UNIFORM_COLOR, size=9, symbol="square"),
                                    line=dict(color=_UNIFORM_COLOR, dash="dot", width=1),
                                    hovertemplate="uniform: %{x:.2f} KiB, %{y:.2f} %<extra></extra>"), row=1, col=2)
        figure.add_trace(go.Scatter(x=[], y=[], mode="markers", name="allocations seen",
                                    marker=dict(color=_SEEN_COLOR, size=7),
                                    hovertemplate="%{x:.2f} KiB, %{y:.2f} %<extra></extra>"), row=1, col=2)
        span = self._span = [min(uniform_acc + [100 * self.float_accuracy]) - 2, 101]
        figure.add_trace(go.Scatter(x=[], y=[], mode="lines", name="budget", hoverinfo="skip",
                                    line=dict(color=_CURRENT_COLOR, dash="dash", width=1)), row=1, col=2)
        figure.add_trace(go.Scatter(x=[], y=[], mode="markers", name="this allocation",
                                    marker=dict(color=_CURRENT_COLOR, size=14, symbol="star"),
                                    hovertemplate="%{x:.2f} KiB, %{y:.2f} %<extra></extra>"), row=1, col=2)
        figure.add_trace(go.Scatter(x=[self.min_bytes / 1024, self.max_bytes / 1024],
                                    y=[100 * self.float_accuracy] * 2, mode="lines", name="float32",
                                    line=dict(color="#55A868", width=1), hoverinfo="skip"), row=1, col=2)
        figure.update_yaxes(title_text="bits", range=[0, self.choices[-1] * 1.25], tickvals=list(self.choices),
                            row=1, col=1)
        figure.update_xaxes(title_text="layer", type="category", row=1, col=1)
        pad = 0.08 * (self.max_bytes - self.min_bytes) / 1024
        figure.update_xaxes(title_text="weight codes (KiB)", row=1, col=2,
                            range=[self.min_bytes / 1024 - pad, self.max_bytes / 1024 + pad])
        figure.update_yaxes(title_text="accuracy (%)", range=span, row=1, col=2)
        figure.update_layout(height=440, margin=dict(l=60, r=20, t=70, b=90), template=FIGURE_TEMPLATE,
                             legend=dict(orientation="h", yanchor="top", y=-0.2, x=0.45, font=dict(size=10)),
                             title=dict(font=dict(size=13), y=0.97))
        return FigureWidget(figure)

    def draw(self, values: dict) -> None:
        budget_bytes = max(self.min_bytes, int(round(values["budget"] * 1024)))
        allocation = mixed.allocate_bits(self.sizes, self.sensitivity, budget_bytes, self.choices, values["method"])
        cache_hit = tuple(allocation[name] for name in self.sizes) in self.remembered("accuracy")
        used, accuracy = self._point(allocation)
        predicted = sum(float(self.sensitivity[name][b]) for name, b in allocation.items())
        fp32 = 4 * sum(self.sizes.values())

        data = self.figure.data
        bits = list(allocation.values())
        layer_bytes = [math.ceil(self.sizes[name] * b / 8) for name, b in allocation.items()]
        data[0].update(x=list(allocation), y=bits, text=[f"{b}" for b in bits],
                       customdata=[f"{name}: {b} bits<br>{self.sizes[name]:,} weights → {nb:,} B"
                                   for (name, b), nb in zip(allocation.items(), layer_bytes)])
        seen = [(key_bytes, acc) for key_bytes, acc in self._seen()]
        data[2].update(x=[s[0] / 1024 for s in seen], y=[100 * s[1] for s in seen])
        data[3].update(x=[budget_bytes / 1024] * 2, y=self._span)
        data[4].update(x=[used / 1024], y=[100 * accuracy])
        self.figure.layout.title.text = (f"budget {budget_bytes / 1024:.2f} KiB → {used / 1024:.2f} KiB used, "
                                         f"accuracy {accuracy:.2%} ({values['method']})")
        interval = accuracy_interval(round(accuracy * self.n_eval), self.n_eval)
        self.stats = {"budget_bytes": budget_bytes, "used_bytes": used, "fp32_bytes": fp32,
                      "compression": fp32 / used, "allocation": dict(allocation), "accuracy": accuracy,
                      "float_accuracy": self.float_accuracy, "predicted_drop": predicted,
                      "measured_drop": self.float_accuracy - accuracy, "cache_hit": cache_hit,
                      "evaluations": self.evaluations, "method": values["method"],
                      "accuracy_low": interval.low, "accuracy_high": interval.high}
        self.readout.value = self._readout_html()

    # --- helpers ------------------------------------------------------------------------------
    def _point(self, allocation: dict) -> tuple[int, float]:
        """``(bytes, accuracy)`` of an allocation; accuracy from the cache or one evaluation."""
        key = tuple(allocation[name] for name in self.sizes)

        def evaluate_allocation() -> float:
            self.evaluations += 1
            return evaluate(mixed.apply_bit_allocation(self.model, allocation, self.per_channel), self.data)
        return mixed.allocation_bytes(self.sizes, allocation), self.remember("accuracy", key, evaluate_allocation)

    def _seen(self):
        for key, acc in self.remembered("accuracy").items():
            yield mixed.allocation_bytes(self.sizes, dict(zip(self.sizes, key))), acc

    def _readout_html(self) -> str:
        s = self.stats
        rows = "".join(f"<tr><td>{html.escape(name)}</td><td style='text-align:right'>{b}</td></tr>"
                       for name, b in s["allocation"].items())
        ms = "" if self.last_update_ms is None else f"<br>previous redraw: {self.last_update_ms:.0f} ms"
        return (f"<b>budget</b> {s['budget_bytes']:,} B<br><b>used</b> {s['used_bytes']:,} B "
                f"({s['compression']:.1f}× smaller than fp32 {s['fp32_bytes']:,} B)<br>"
                f"<b>accuracy</b> {s['accuracy']:.2%} [{100 * s['accuracy_low']:.1f}, {100 * s['accuracy_high']:.1f}] "
                f"on {self.n_eval:,} images (float {s['float_accuracy']:.2%})<br>"
                f"predicted drop Σ sensitivity {100 * s['predicted_drop']:.2f} pts, "
                f"measured {100 * s['measured_drop']:.2f} pts<br>"
                f"<table style='margin-top:4px'><tr><th>layer</th><th>bits</th></tr>{rows}</table>"
                f"<small>{'cached' if s['cache_hit'] else 'evaluated'} · {s['evaluations']} evaluations so far"
                f"{ms}<br>codes only: scales and biases not counted</small>")


def _as_tuple(choices) -> tuple:
    if isinstance(choices, (str, bytes)) or not hasattr(choices, "__iter__"):
        raise TypeError(f"choices must be a sequence of bit widths, got {type(choices).__name__}")
    return tuple(choices)
