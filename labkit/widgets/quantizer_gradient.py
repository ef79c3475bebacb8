"""Quantizer gradient explorer: the forward staircase of a fake quantizer and what its backward pass returns.

Rounding has derivative 0 almost everywhere, so quantization-aware training replaces it in the
backward pass. This explorer draws, for inputs ``x`` in ``[-2.5, 2.5]`` and the quantizer chosen in
the dropdown:

- the forward pass ``x̂ = Q(x)`` (a staircase) against the identity,
- ``∂x̂/∂x`` as autograd computes it through labkit's quantizer (the straight-through estimator),
  next to the true derivative of the staircase (0 between the jumps),
- for the learned quantizers, the derivative with respect to their parameter: LSQ's step
  ``∂x̂/∂s`` (a saw-tooth inside the grid, ``−Q_N`` / ``Q_P`` outside) and PACT's clipping level
  ``∂x̂/∂α`` (1 where ``x ≥ α``).

Every curve is computed by ``labkit.quant`` (``fake_quantize_ste``, ``LSQQuantizer``,
``PACTQuantizer``) and torch autograd; the explorer only arranges the calls so that each input
point gets its own derivative.

Explained in notebooks/05_quantization_aware_training.ipynb.
"""
from __future__ import annotations

import html

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from labkit.quant.fake_quant import RESPONSE_KINDS, quantizer_response
from labkit.validate import require_choice, require_float, require_int
from labkit.widgets.base import FIGURE_TEMPLATE, Explorer, FigureWidget, dropdown, int_slider, readout_rows, slider

QUANTIZERS = dict(zip(RESPONSE_KINDS, ("fake quant + clipped STE", "fake quant + identity STE",
                                        "LSQ (learned step s)", "PACT (learned clip α)")))
X_MIN, X_MAX, POINTS = -2.5, 2.5, 501
CLIP_MIN, CLIP_MAX, CLIP_STEP = 0.25, 2.0, 0.05


class QuantizerGradientExplorer(Explorer):
    """Forward and backward pass of a fake quantizer, for clipped/identity STE, LSQ and PACT.

    ``QuantizerGradientExplorer(quantizer="clipped", bits=2, clip=1.0)``. Controls: ``quantizer``
    (Dropdown, one of ``QUANTIZERS``), ``bits`` (IntSlider 1–8) and ``clip`` (FloatSlider 0.25–2: the
    range ``[-clip, clip]`` of the STE quantizers, LSQ's ``Q_P·s`` or PACT's ``α``). ``stats``:
    ``quantizer``, ``bits``, ``clip``, ``scale``, ``levels`` (grid size), ``grid_min``, ``grid_max``,
    ``pass_fraction`` (share of the plotted inputs whose ``∂x̂/∂x`` is not 0), ``param``,
    ``param_grad_min`` / ``param_grad_max``. Explained in notebooks/05_quantization_aware_training.ipynb.
    """

    name = "quantizer-gradient"

    def __init__(self, quantizer: str = "clipped", bits: int = 2, clip: float = 1.0):
        self._quantizer = require_choice("quantizer", quantizer, tuple(QUANTIZERS))
        self._bits = require_int("bits", bits, 1, 8)
        self._clip = require_float("clip", clip, CLIP_MIN, CLIP_MAX)
        self.x = torch.linspace(X_MIN, X_MAX, POINTS)
        super().__init__()

    def build_controls(self) -> dict:
        return {
            "quantizer": dropdown(self.name, "quantizer", options=[(v, k) for k, v in QUANTIZERS.items()],
                                  value=self._quantizer, description="quantizer"),
            "bits": int_slider(self.name, "bits", value=self._bits, min=1, max=8, description="bits"),
            "clip": slider(self.name, "clip", value=self._clip, min=CLIP_MIN, max=CLIP_MAX, step=CLIP_STEP,
                           readout_format=".2f", description="range / α"),
        }

    def build_figure(self) -> go.FigureWidget:
        fig = make_subplots(rows=1, cols=3, horizontal_spacing=0.09,
                            subplot_titles=("forward: x̂ = Q(x)", "backward: ∂x̂/∂x", "backward: ∂x̂/∂s, ∂x̂/∂α"))
        grey = dict(color="#999999", dash="dot")
        xs = self.x.tolist()
        fig.add_trace(go.Scatter(x=[X_MIN, X_MAX], y=[X_MIN, X_MAX], mode="lines", line=grey,
                                 name="identity x̂ = x", hoverinfo="skip"), 1, 1)
        fig.add_trace(go.Scatter(x=xs, y=[0.0] * len(xs), mode="lines", line=dict(color="#1f77b4", width=2),
                                 name="x̂ = Q(x)"), 1, 1)
        fig.add_trace(go.Scatter(x=[X_MIN, X_MAX], y=[0, 0], mode="lines", line=dict(color="#999999", width=4),
                                 name="true derivative (0 between jumps)", hoverinfo="skip"), 1, 2)
        fig.add_trace(go.Scatter(x=xs, y=[0.0] * len(xs), mode="lines", line=dict(color="#ff7f0e", width=2),
                                 name="STE ∂x̂/∂x"), 1, 2)
        fig.add_trace(go.Scatter(x=xs, y=[0.0] * len(xs), mode="lines", line=dict(color="#2ca02c", width=2),
                                 name="∂x̂/∂s (LSQ) or ∂x̂/∂α (PACT)"), 1, 3)
        fig.update_layout(height=400, margin=dict(l=50, r=40, t=80, b=40), template=FIGURE_TEMPLATE,
                          title=dict(font=dict(size=14)), legend=dict(orientation="h", x=0, y=-0.22))
        for col in (1, 2, 3):
            fig.update_xaxes(title_text="input x (real value)", range=[X_MIN, X_MAX], row=1, col=col)
        fig.update_yaxes(title_text="x̂ (real value)", row=1, col=1)
        fig.update_yaxes(title_text="∂x̂/∂x", range=[-0.2, 1.2], row=1, col=2)
        fig.update_yaxes(title_text="∂x̂/∂s or ∂x̂/∂α", row=1, col=3)
        return FigureWidget(fig)

    def draw(self, values: dict) -> None:
        kind, bits, clip = values["quantizer"], int(values["bits"]), float(values["clip"])
        r = quantizer_response(kind, bits, clip, self.x)
        _, staircase, _, ste, learned = self.figure.data
        # Data only, as plain lists, each updated trace with its whole data (CONTRIBUTING: a property
        # set only when the figure was built has been seen lost in the browser); no axis changes.
        xs = self.x.tolist()
        staircase.update(x=xs, y=r["x_hat"].tolist())
        ste.update(x=xs, y=r["grad_x"].tolist())
        if r["grad_param"] is None:
            learned.update(x=xs, y=[0.0] * len(xs), visible=False)
        else:
            learned.update(x=xs, y=r["grad_param"].tolist(), visible=True)
        self.figure.layout.title.text = (f"{QUANTIZERS[kind]}, {bits} bits, "
                                         f"{'α' if kind == 'pact' else 'range'} {clip:.2f}")
        self.stats = {
            "quantizer": kind, "bits": bits, "clip": clip, "scale": r["scale"], "levels": int(len(r["levels"])),
            "grid_min": float(r["levels"].min()), "grid_max": float(r["levels"].max()),
            "pass_fraction": float(np.mean(r["grad_x"] != 0)), "param": r["param"],
            "param_grad_min": None if r["grad_param"] is None else float(r["grad_param"].min()),
            "param_grad_max": None if r["grad_param"] is None else float(r["grad_param"].max()),
        }
        self.readout.value = _readout_html(self.stats)


def _readout_html(stats: dict) -> str:
    rows = [("grid step s", f"{stats['scale']:.4g}"), ("levels", f"{stats['levels']}"),
            ("grid", f"[{stats['grid_min']:.3g}, {stats['grid_max']:.3g}]"),
            ("inputs whose gradient passes", f"{stats['pass_fraction']:.0%}")]
    if stats["param"] is not None:
        rows.append((f"∂x̂/∂{stats['param']} range", f"[{stats['param_grad_min']:.3g}, {stats['param_grad_max']:.3g}]"))
    body = readout_rows(rows)
    return f"<b>{html.escape(QUANTIZERS[stats['quantizer']])}</b><table style='font-size:90%'>{body}</table>"
