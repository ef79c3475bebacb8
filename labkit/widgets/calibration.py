"""Calibration explorer: a layer's activation histogram, the range an observer picks, and the accuracy.

Post-training quantization chooses each activation's range with an *observer* (min/max, moving
average, percentile, MSE search, L2 histogram, entropy/KL). Pick a layer, an observer and a bit
width: the explorer feeds that layer's calibration activations to the observer
(``labkit.quant.make_observer``), draws the histogram with the chosen range, reports the scale,
zero point, clipped fraction and SQNR of the fake-quantized activations (``fake_quantize``,
``sqnr_db``), and the accuracy of the whole model quantized statically with that observer and bit
width (``quantize_static`` + ``labkit.train.evaluate`` on a fixed evaluation set). Ranges and
accuracies are cached per setting, so revisiting one is instant. The explorer is a view: only the
activation capture (forward hooks) lives here.

Explained in notebooks/03_post_training_quantization.ipynb.
"""
from __future__ import annotations

import html

import numpy as np
import plotly.graph_objects as go
import torch
from torch import nn

from labkit.quant import fake_quantize, fold_batchnorm, make_observer, quantize_static, sqnr_db
from labkit.quant.modules import activation_taps
from labkit.quant.observers import OBSERVERS
from labkit.train import evaluate
from labkit.validate import require_bool, require_choice, require_int, require_module
from labkit.widgets.base import (FIGURE_TEMPLATE, Explorer, FigureWidget, checkbox, dropdown, int_slider,
                                 vertical_lines)

__all__ = ["CalibrationExplorer", "activation_taps"]

_HIST_COLOR = "#9ecae1"
_RANGE_COLOR = "#C44E52"
_MAX_COLOR = "rgba(40, 40, 40, 0.6)"


class CalibrationExplorer(Explorer):
    """Layer / observer / bits → activation histogram with the chosen range, and static-PTQ accuracy.

    ``CalibrationExplorer(model, calib_data, eval_data, layer=None, observer="minmax", bits=8,
    log=True, bins=120)``: ``model`` a trained network (BatchNorms are folded first, as
    ``quantize_static`` does), ``calib_data`` a tensor of calibration inputs ``[N, C, H, W]``,
    ``eval_data`` the fixed evaluation set (``labkit.data.eval_subset``). Observers see the activations
    in one batch, except ``moving_average``, which sees 4 batches (with one batch it equals min/max);
    ``quantize_static`` is called with the same batching.

    Controls: ``layer`` (a Conv2d/Linear name), ``observer`` (``OBSERVERS``), ``bits`` (2–8), ``log``
    (log-scale counts). ``stats`` holds ``layer``, ``observer``, ``bits``, ``numel``, ``lo``, ``hi``,
    ``max`` (largest activation), ``scale``, ``zero_point``, ``clipped`` (fraction above ``hi`` or below
    ``lo``), ``sqnr_db``, ``accuracy`` (whole model, static PTQ), ``float_accuracy``, ``cache_hit`` (the
    accuracy came from the cache) and ``evaluations``.

    Explained in notebooks/03_post_training_quantization.ipynb.
    """

    name = "calibration"

    def __init__(self, model: nn.Module, calib_data: torch.Tensor, eval_data, layer: str | None = None,
                 observer: str = "minmax", bits: int = 8, log: bool = True, bins: int = 120):
        require_module("model", model)
        if not isinstance(calib_data, torch.Tensor) or not calib_data.is_floating_point() or calib_data.dim() < 2:
            raise TypeError("calib_data must be a float tensor of inputs [N, ...] (e.g. training images)")
        self.model, self.calib, self.eval_data = model, calib_data, eval_data
        self._observer = require_choice("observer", observer, tuple(OBSERVERS))
        self._bits = require_int("bits", bits, 2, 8)
        self.bins = require_int("bins", bins, 10, 2000)
        require_bool("log", log)
        self._log = log
        self.activations = self._capture(fold_batchnorm(model))
        if not self.activations:
            raise ValueError(f"model must contain an nn.Conv2d or nn.Linear layer; {type(model).__name__} has none")
        self._layer = require_choice("layer", layer if layer is not None else next(iter(self.activations)),
                                     tuple(self.activations))
        self.float_accuracy = evaluate(model, eval_data)
        self.evaluations = 0
        super().__init__()

    # --- the three methods of an Explorer -----------------------------------------------------
    def build_controls(self) -> dict:
        n = self.name
        return {
            "layer": dropdown(n, "layer", options=list(self.activations), value=self._layer, description="layer"),
            "observer": dropdown(n, "observer", options=list(OBSERVERS), value=self._observer,
                                 description="observer"),
            "bits": int_slider(n, "bits", value=self._bits, min=2, max=8, step=1, description="bits"),
            "log": checkbox(n, "log", value=self._log, description="log counts"),
        }

    def build_figure(self) -> go.FigureWidget:
        figure = FigureWidget()
        figure.add_trace(go.Bar(x=[], y=[], marker_color=_HIST_COLOR, marker_line_width=0, name="activations",
                                hovertemplate="%{x:.3f}: %{y:,} values<extra></extra>"))
        # the range's two ends and the largest value: vertical lines on an invisible [0, 1] axis
        figure.add_trace(go.Scatter(x=[], y=[], mode="lines", name="chosen range", yaxis="y2", hoverinfo="skip",
                                    line=dict(color=_RANGE_COLOR, width=2.5)))
        figure.add_trace(go.Scatter(x=[], y=[], mode="lines", name="largest value", yaxis="y2", hoverinfo="skip",
                                    line=dict(color=_MAX_COLOR, width=1, dash="dot")))
        figure.update_layout(height=380, margin=dict(l=70, r=20, t=60, b=50), template=FIGURE_TEMPLATE,
                             bargap=0, xaxis_title="activation value",
                             yaxis=dict(title="count (log)" if self._log else "count",
                                        type="log" if self._log else "linear"),
                             yaxis2=dict(overlaying="y", range=[0, 1], visible=False, fixedrange=True),
                             legend=dict(orientation="h", yanchor="bottom", y=1.0, x=0.0),
                             title=dict(font=dict(size=13), y=0.97))
        return figure

    def draw(self, values: dict) -> None:
        layer, name, bits = values["layer"], values["observer"], values["bits"]
        act = self.activations[layer]
        lo, hi, scale, zero_point, clipped, sqnr = self._range(layer, name, bits)
        cache_hit = (name, bits) in self.remembered("accuracy")
        accuracy = self._model_accuracy(name, bits)
        centres, counts = self._histogram(layer)
        histogram, chosen, largest_line = self.figure.data
        histogram.x, histogram.y = centres, counts                     # plain lists, re-sent on a layer change only
        chosen.x, chosen.y = vertical_lines([lo, hi])
        largest = float(act.max())
        largest_line.x, largest_line.y = vertical_lines([largest])
        scale_type = "log" if values["log"] else "linear"
        if self.figure.layout.yaxis.type != scale_type:               # an axis change only when `log` changes
            self.figure.layout.yaxis.type = scale_type
            self.figure.layout.yaxis.title.text = "count (log)" if values["log"] else "count"
        self.figure.layout.title.text = (f"{layer}: {name}, {bits} bits → range [{lo:.3g}, {hi:.3g}], "
                                         f"{clipped:.1%} clipped, accuracy {accuracy:.1%}")
        self.stats = {"layer": layer, "observer": name, "bits": bits, "numel": act.numel(), "lo": lo, "hi": hi,
                      "max": largest, "scale": scale, "zero_point": zero_point, "clipped": clipped,
                      "sqnr_db": sqnr, "accuracy": accuracy, "float_accuracy": self.float_accuracy,
                      "cache_hit": cache_hit, "evaluations": self.evaluations}
        self.readout.value = self._readout_html()

    # --- helpers ------------------------------------------------------------------------------
    @torch.no_grad()
    def _capture(self, model: nn.Module) -> dict[str, torch.Tensor]:
        taps, captured = activation_taps(model), {}
        hooks = [module.register_forward_hook(lambda m, i, out, key=key: captured.__setitem__(key, out.detach()))
                 for key, module in taps.items()]
        try:
            model.eval()(self.calib)
        finally:
            for hook in hooks:
                hook.remove()
        return {key: captured[key] for key in taps if key in captured}

    def _batches(self, name: str) -> int:
        return 4 if name == "moving_average" else 1

    def _range(self, layer: str, name: str, bits: int) -> tuple:
        def observe() -> tuple:
            act = self.activations[layer]
            observer = make_observer(name, bits=bits)
            for piece in act.chunk(self._batches(name)):
                observer(piece)
            lo, hi = (float(v) for v in observer.range())
            qp = observer.calculate_qparams()
            clipped = ((act > hi) | (act < lo)).float().mean().item()
            return lo, hi, qp.scale.item(), int(qp.zero_point.item()), clipped, sqnr_db(act, fake_quantize(act, qp))
        return self.remember("range", (layer, name, bits), observe)

    def _model_accuracy(self, name: str, bits: int) -> float:
        def quantize_and_evaluate() -> float:
            self.evaluations += 1
            qmodel = quantize_static(self.model, self.calib, weight_bits=bits, act_bits=bits, observer=name,
                                     batch_size=max(1, len(self.calib) // self._batches(name)))
            return evaluate(qmodel, self.eval_data)
        return self.remember("accuracy", (name, bits), quantize_and_evaluate)

    def _histogram(self, layer: str) -> tuple[list, list]:
        """Bin centres and counts of ``layer``'s activations, as plain lists (cached per layer)."""
        def histogram() -> tuple[list, list]:
            counts, edges = np.histogram(self.activations[layer].flatten().numpy(), bins=self.bins)
            return (0.5 * (edges[:-1] + edges[1:])).tolist(), counts.tolist()
        return self.remember("histogram", layer, histogram)

    def _readout_html(self) -> str:
        s = self.stats
        rows = [("values observed", f"{s['numel']:,}"), ("largest value", f"{s['max']:.4g}"),
                ("range", f"[{s['lo']:.4g}, {s['hi']:.4g}]"), ("scale", f"{s['scale']:.4g}"),
                ("zero point", f"{s['zero_point']}"), ("clipped", f"{s['clipped']:.2%}"),
                ("SQNR", f"{s['sqnr_db']:.1f} dB"),
                ("model accuracy", f"{s['accuracy']:.2%}" + (" (cached)" if s["cache_hit"] else "")),
                ("float accuracy", f"{s['float_accuracy']:.2%}")]
        body = "".join(f"<tr><td>{html.escape(k)}</td><td style='text-align:right'>{html.escape(v)}</td></tr>"
                       for k, v in rows)
        return (f"<b>{html.escape(s['layer'])}</b> · {html.escape(s['observer'])} · {s['bits']} bits"
                f"<table style='margin-top:6px'>{body}</table>"
                "<small>accuracy: the whole model, static PTQ with this observer and bit width</small>")
