"""AGP explorer: shape Zhu & Gupta's gradual pruning schedule and prune a real model to any step of it.

Five controls define ``prune.AGPSchedule`` — initial and final sparsity, start step t₀, duration
(``end = start + duration``) and frequency Δt — over a training run of ``total_steps`` steps. The top
plot draws the sparsity the model has after each step (a staircase: it changes only at the pruning
steps) over the continuous cubic; the bottom plot its derivative ``ds/dt`` (per 1,000 steps): steep
at the start, flat at the end. A sixth control picks a training step ``t``: the trained model is
pruned (global magnitude, no fine-tuning) to ``s(t)`` and evaluated on a fixed subset — the cost of
the schedule's cut at that point *before* any recovery. Each sparsity is evaluated once and cached.
A schedule labkit refuses (initial above final, an end after the training run) is shown as the
error message ``prune.AGPSchedule`` raises, in the readout, and the figure keeps the last valid one.
Explained in notebooks/10_pruning_schedules_automation.ipynb.
"""
from __future__ import annotations

import copy
import html

import ipywidgets as W
import plotly.graph_objects as go
from plotly.subplots import make_subplots
from torch import nn

from labkit import train
from labkit.prune import AGPSchedule, global_prune, prunable_layers
from labkit.validate import require_float, require_int, require_module
from labkit.widgets.base import FIGURE_TEMPLATE, Explorer, FigureWidget, int_slider, readout_rows, slider

PER = 1000  # the derivative is shown per 1,000 steps


class AGPExplorer(Explorer):
    """``AGPExplorer(model, eval_data, total_steps, final=0.9, initial=0.0, start=0, duration=None,
    frequency=None, step=None)``: ``model`` is a trained ``nn.Module`` with Linear/Conv2d layers
    (copied, never modified), ``eval_data`` a labelled Dataset or ``(x, y)`` pair (keep it small:
    ``data.eval_subset``), ``total_steps`` the length of the training run in optimizer steps.
    Controls: ``initial``, ``final`` (FloatSliders), ``start``, ``duration``, ``frequency``,
    ``step`` (IntSliders). ``stats``: ``initial``, ``final``, ``start``, ``end``, ``frequency``,
    ``step``, ``sparsity`` (at ``step``), ``rate_per_1000`` (ds/dt there), ``prunes`` (number of
    pruning steps), ``accuracy`` (model pruned to ``sparsity``), ``dense_accuracy``, ``error`` (the
    refused schedule's message, else None). ``setting(step, **schedule)`` returns the same numbers for
    any step (and schedule) without redrawing. Explained in notebooks/10_pruning_schedules_automation.ipynb.
    """

    name = "agp"

    def __init__(self, model: nn.Module, eval_data, total_steps: int, *, final: float = 0.9, initial: float = 0.0,
                 start: int = 0, duration: int | None = None, frequency: int | None = None, step: int | None = None):
        require_module("model", model)
        if not prunable_layers(model):
            raise ValueError("model has no nn.Linear or nn.Conv2d layer to prune")
        self.total_steps = require_int("total_steps", total_steps, 2)
        self._base = copy.deepcopy(model).eval()
        self.eval_data = eval_data
        duration = self.total_steps // 2 if duration is None else duration
        self._initial_values = {
            "initial": require_float("initial", initial, 0.0, 0.95), "final": require_float("final", final, 0.05, 0.99),
            "start": require_int("start", start, 0, self.total_steps - 1),
            "duration": require_int("duration", duration, 1, self.total_steps),
            "frequency": require_int("frequency", frequency or max(1, self.total_steps // 50), 1, self.total_steps),
            "step": require_int("step", self.total_steps if step is None else step, 0, self.total_steps)}
        self.dense_accuracy = train.evaluate(self._base, eval_data)
        self.schedule: AGPSchedule | None = None
        super().__init__()

    # --- controls and figure ----------------------------------------------------------------
    def build_controls(self) -> dict:
        v, t = self._initial_values, self.total_steps
        size = {"layout": W.Layout(width="300px")}
        return {
            "initial": slider(self.name, "initial", value=v["initial"], min=0.0, max=0.95, step=0.05,
                              readout_format=".2f", description="initial s_i", **size),
            "final": slider(self.name, "final", value=v["final"], min=0.05, max=0.99, step=0.01,
                            readout_format=".2f", description="final s_f", **size),
            "start": int_slider(self.name, "start", value=v["start"], min=0, max=t - 1, description="start t₀", **size),
            "duration": int_slider(self.name, "duration", value=v["duration"], min=1, max=t, description="duration",
                                   **size),
            "frequency": int_slider(self.name, "frequency", value=v["frequency"], min=1, max=max(1, t // 4),
                                    description="every Δt", **size),
            "step": int_slider(self.name, "step", value=v["step"], min=0, max=t, description="prune at t", **size),
        }

    def build_figure(self) -> go.FigureWidget:
        fig = make_subplots(rows=2, cols=1, vertical_spacing=0.3, row_heights=[0.6, 0.4],
                            subplot_titles=("sparsity after each training step", "slope ds/dt of the cubic"))
        fig.add_trace(go.Scatter(x=[], y=[], mode="lines", line=dict(color="#4C72B0", width=2, shape="hv"),
                                 name="sparsity s(t) (pruning steps)"), 1, 1)
        fig.add_trace(go.Scatter(x=[], y=[], mode="lines", line=dict(color="#7f7f7f", dash="dot"),
                                 name="continuous cubic"), 1, 1)
        fig.add_trace(go.Scatter(x=[], y=[], mode="markers", marker=dict(color="#d62728", size=11, symbol="diamond"),
                                 name="step t picked"), 1, 1)
        fig.add_trace(go.Scatter(x=[], y=[], mode="lines", line=dict(color="#2ca02c", width=2),
                                 name="ds/dt (% per 1,000 steps)"), 2, 1)
        fig.add_trace(go.Scatter(x=[], y=[], mode="markers", marker=dict(color="#d62728", size=9),
                                 showlegend=False, name="slope at t"), 2, 1)
        fig.update_layout(height=560, margin=dict(l=60, r=20, t=80, b=50), template=FIGURE_TEMPLATE,
                          legend=dict(orientation="h", x=0.0, y=-0.16))
        fig.update_yaxes(title_text="sparsity (%)", range=[0, 100], row=1, col=1)
        fig.update_yaxes(title_text="% per 1,000 steps", row=2, col=1)
        for row in (1, 2):      # the same steps on both plots (not shared: each keeps its tick labels)
            fig.update_xaxes(title_text="training step", range=[0, self.total_steps], row=row, col=1)
        return FigureWidget(fig)

    # --- the numbers (labkit.prune.AGPSchedule, global_prune, train.evaluate) -----------------
    def accuracy_at(self, sparsity: float) -> float:
        """Accuracy on ``eval_data`` of the trained model globally pruned to ``sparsity`` (cached)."""
        key = round(float(sparsity), 4)

        def evaluate_pruned() -> float:
            model = copy.deepcopy(self._base)
            if key > 0:
                global_prune(model, key)
            return train.evaluate(model, self.eval_data)
        return self.remember("accuracy", key, evaluate_pruned)

    def setting(self, step: int, **schedule) -> dict:
        """The numbers the explorer would show at training step ``step`` (computed, cached, no redraw).

        ``schedule`` overrides any of ``initial``, ``final``, ``start``, ``duration``, ``frequency``
        (default: the controls' current values). Returns the keys of ``stats``; a schedule labkit
        refuses raises its ``ValueError``."""
        unknown = sorted(set(schedule) - {"initial", "final", "start", "duration", "frequency"})
        if unknown:
            raise ValueError(f"unknown schedule argument(s) {unknown}; accepted: initial, final, start, duration, "
                             "frequency")
        values = {**self.values, **schedule, "step": require_int("step", step, 0, self.total_steps)}
        s, error = self._schedule(values)
        if s is None:
            raise ValueError(error)
        return self._stats(s, values["step"], None)

    def _stats(self, s: AGPSchedule, t: int, error: str | None) -> dict:
        sparsity, rate = s.sparsity(t), s.rate(t)
        return {"initial": s.initial, "final": s.final, "start": s.start, "end": s.end,
                "frequency": s.frequency, "step": t, "sparsity": sparsity, "rate_per_1000": PER * rate,
                "prunes": len(s.steps()), "accuracy": self.accuracy_at(sparsity),
                "dense_accuracy": self.dense_accuracy, "error": error}

    def _schedule(self, values: dict) -> tuple[AGPSchedule | None, str | None]:
        try:
            schedule = AGPSchedule(values["final"], end=values["start"] + values["duration"],
                                   initial=values["initial"], start=values["start"], frequency=values["frequency"])
        except (TypeError, ValueError) as error:
            return None, str(error)
        if schedule.end > self.total_steps:
            return None, (f"the schedule ends at step {schedule.end}, after the end of training "
                          f"({self.total_steps} steps): shorten the duration or start earlier")
        return schedule, None

    def draw(self, values: dict) -> None:
        schedule, error = self._schedule(values)
        self.schedule = schedule or self.schedule
        s = self.schedule
        if s is None:                                   # refused from the start: nothing valid to draw yet
            self.stats = {"error": error}
            self.readout.value = _error_html(error)
            return
        t = min(values["step"], self.total_steps)
        ts = list(range(0, self.total_steps + 1, max(1, self.total_steps // 400))) + [self.total_steps]
        ts = sorted(set(ts) | set(s.steps()) | {t})
        stairs, cubic, marker, slope, slope_marker = self.figure.data
        stairs.x, stairs.y = ts, [100 * s.sparsity(x) for x in ts]
        cubic.x, cubic.y = ts, [100 * s.curve(x) if x >= s.start else None for x in ts]
        slope.x, slope.y = ts, [100 * PER * s.rate(x) for x in ts]
        sparsity, rate = s.sparsity(t), s.rate(t)
        marker.x, marker.y = [t], [100 * sparsity]
        slope_marker.x, slope_marker.y = [t], [100 * PER * rate]
        self.figure.layout.title.text = (f"AGP: {s.initial:.0%} → {s.final:.0%} from step {s.start} to {s.end}, "
                                         f"every {s.frequency} steps ({len(s.steps())} pruning steps)")
        self.stats = self._stats(s, t, error)
        self.readout.value = _readout_html(self.stats)


def _error_html(error: str) -> str:
    return f"<div style='color:#b00020'><b>schedule refused</b>: {html.escape(error)}</div>"


def _readout_html(stats: dict) -> str:
    rows = [("sparsity at step t", f"{stats['sparsity']:.1%}"),
            ("slope ds/dt at t", f"{100 * stats['rate_per_1000']:.2f} % per 1,000 steps"),
            ("pruning steps", f"{stats['prunes']}"),
            ("accuracy, pruned to s(t)", f"{stats['accuracy']:.1%}"),
            ("dense accuracy", f"{stats['dense_accuracy']:.1%}")]
    body = readout_rows(rows)
    note = "" if stats["error"] is None else _error_html(stats["error"]) + "<i>showing the last valid schedule</i><br>"
    return (f"{note}<b>step t = {stats['step']:,}</b> (no fine-tuning: the cut's raw cost)"
            f"<table style='font-size:90%'>{body}</table>")
