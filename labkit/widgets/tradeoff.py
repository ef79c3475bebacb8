"""Trade-off explorer: every technique of the lab on one accuracy-vs-size (or latency, or MACs) plot.

Each point is one compression pipeline on one zoo model, measured on the 10,000 MNIST test images
(``labkit.pipeline.sweep`` results; the shipped file opens instantly). One trace per technique family,
with the 95 % Wilson interval of each accuracy as an error bar and the pipeline, model, bytes, latency
and MACs on hover; the **Pareto front** of the points shown (``labkit.pipeline.report.pareto_front``)
joins the results that nothing beats on both axes. Filters: the model, the technique family, the
x axis (file bytes, measured latency, MACs) and "only the front". ``add_run(record)`` adds the learner's
own pipeline result live (``labkit.pipeline.report.record(result, label, model)``).

Explained in notebooks/14_pipeline_tradeoffs_export.ipynb
"""
from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

import ipywidgets as W
import plotly.graph_objects as go

from labkit.pipeline.report import pareto_front
from labkit.widgets.base import FIGURE_TEMPLATE, Explorer, FigureWidget, checkbox, dropdown

FAMILY_NAMES = {"baseline": "baseline (fp32)", "lightweight": "lightweight net (MobileNet)",
                "unstructured": "unstructured pruning", "structured": "structured pruning (channels)",
                "ptq": "post-training quantization", "qat": "quantization-aware training",
                "kmeans": "k-means weight sharing", "distill": "distillation (KD)",
                "lowrank": "low-rank factorisation", "integer": "integer-only (int8 kernels)",
                "combination": "combinations", "your runs": "your runs"}
COLOURS = ["#636efa", "#EF553B", "#00cc96", "#ab63fa", "#FFA15A", "#19d3f3", "#FF6692", "#B6E880", "#FF97FF",
           "#FECB52", "#8c564b", "#111111"]
AXIS_TITLES = {"bytes": "compressed file on disk (bytes, log scale)",
               "latency_ms": "latency of 256 test images (ms, median, log scale)",
               "macs": "multiply-accumulates per image (log scale)"}
AXIS_NAMES = {"bytes": "file size", "latency_ms": "latency", "macs": "MACs"}
ALL = "all"


class TradeoffExplorer(Explorer):
    """Accuracy against bytes / latency / MACs for ``records`` (sweep results), with the Pareto front.

    ``TradeoffExplorer(records, model="all", family="all", x="bytes")``. Controls: ``model`` and
    ``family`` (Dropdowns, "all" or one), ``x`` (Dropdown: bytes, latency_ms, macs), ``front``
    (Checkbox: show only the Pareto front). ``add_run(record)`` adds one result of the learner's.
    ``stats``: ``shown`` (number of points), ``front`` (labels on the front, by increasing x), ``x``,
    ``user_runs``; ``setting(model, family, x, front)`` computes the same view without drawing. Explained in notebooks/14_pipeline_tradeoffs_export.ipynb
    """

    name = "tradeoff"

    def __init__(self, records: Sequence[Mapping], model: str = ALL, family: str = ALL, x: str = "bytes"):
        if isinstance(records, (str, bytes)) or not isinstance(records, Sequence):
            raise TypeError(f"records must be a list of sweep results, got {type(records).__name__}")
        self.records = [_check_record(r, i) for i, r in enumerate(records)]
        self.user_records: list[dict] = []
        self.families = [f for f in FAMILY_NAMES if any(r["family"] == f for r in self.records)] + ["your runs"]
        self.models = sorted({r["model"] for r in self.records})
        self._initial = {"model": model, "family": family, "x": x}
        self.setting(model, family, x)                  # checks the initial values
        super().__init__()

    def build_controls(self) -> dict:
        models = [("all models", ALL)] + [(m, m) for m in self.models]
        families = [("all techniques", ALL)] + [(FAMILY_NAMES[f], f) for f in self.families]
        axes = [(f"x: {AXIS_NAMES[k]}", k) for k in AXIS_TITLES]
        return {"model": dropdown(self.name, "model", options=models, value=self._initial["model"], description="model"),
                "family": dropdown(self.name, "family", options=families, value=self._initial["family"],
                                   description="technique"),
                "x": dropdown(self.name, "x", options=axes, value=self._initial["x"], description="axis"),
                "front": checkbox(self.name, "front", value=False, description="only the Pareto front")}

    def build_figure(self) -> go.FigureWidget:
        fig = FigureWidget()
        hover = ("<b>%{customdata[0]}</b><br>%{customdata[1]}<br>accuracy %{y:.2f} % "
                 "[%{customdata[2]:.2f}, %{customdata[3]:.2f}]<br>file %{customdata[4]:,} B · "
                 "latency %{customdata[5]} · %{customdata[6]:,} MACs<br>%{customdata[7]}<extra></extra>")
        for family, colour in zip(self.families, COLOURS):
            symbol = "star" if family == "your runs" else "circle"
            fig.add_trace(go.Scatter(x=[], y=[], mode="markers", name=FAMILY_NAMES[family], hovertemplate=hover,
                                     marker=dict(color=colour, size=11 if symbol == "star" else 8, symbol=symbol,
                                                 line=dict(width=0.5, color="white")),
                                     error_y=dict(type="data", symmetric=False, array=[], arrayminus=[],
                                                  thickness=1, width=0, color=colour)))
        fig.add_trace(go.Scatter(x=[], y=[], mode="lines", name="Pareto front", hoverinfo="skip",
                                 line=dict(color="#444444", dash="dash", width=1.5, shape="hv")))
        fig.update_layout(template=FIGURE_TEMPLATE, height=490, width=760, margin=dict(l=70, r=20, t=75, b=130),
                          showlegend=True,
                          legend=dict(orientation="h", x=0.0, y=-0.2, font=dict(size=11)),
                          yaxis=dict(title=dict(text="test accuracy (%, 95 % Wilson interval)")),
                          xaxis=dict(type="log", title=dict(text=AXIS_TITLES["bytes"])))
        return fig

    def layout(self):
        """Controls above the figure, the readout (the front's table) under it: it needs the width. The
        readout keeps one height (room for the table's 10 rows), so a move does not re-lay out the page
        below it: that reflow was a fifth of a model change's time in the browser."""
        self.figure.layout.autosize = True
        row = W.HBox(list(self.controls.values()), layout=W.Layout(flex_flow="row wrap", align_items="center"))
        self.readout.layout = W.Layout(margin="4px 0 0 60px", height="340px", overflow="auto")
        return W.VBox([row, self.figure, self.readout])

    # --- the data shown (selection and front from labkit.pipeline.report) ---------------------
    def selected(self, values: dict) -> list[dict]:
        """The records passing the model and family filters that have a value on the chosen axis."""
        chosen = []
        for r in self.records + self.user_records:
            if values["model"] not in (ALL, r["model"]) or values["family"] not in (ALL, r["family"]):
                continue
            if isinstance(r.get(values["x"]), (int, float)) and r[values["x"]] > 0:
                chosen.append(r)
        return chosen

    def add_run(self, record: Mapping) -> None:
        """Add one of the learner's results (a sweep-style record, e.g. ``pipeline.report.record(...)``) and redraw."""
        record = _check_record(record, len(self.user_records))
        self.user_records.append({**record, "family": "your runs"})
        self.update()

    def setting(self, model: str = ALL, family: str = ALL, x: str = "bytes", front: bool = False) -> dict:
        """What the view shows for these control values, computed without drawing: ``points`` (records
        passing the filters), ``front`` (the Pareto-optimal ones, by increasing ``x``) and ``shown``."""
        for name, value, valid in (("model", model, [ALL, *self.models]), ("family", family, [ALL, *self.families]),
                                   ("x", x, list(AXIS_TITLES))):
            if value not in valid:
                raise ValueError(f"{name} must be one of {valid}, got {value!r}")
        points = self.selected({"model": model, "family": family, "x": x})
        on_front = [points[i] for i in pareto_front(points, x, "accuracy")]
        return {"points": points, "front": on_front, "shown": on_front if front else points}

    def draw(self, values: dict) -> None:
        axis = values["x"]
        view = self.setting(values["model"], values["family"], axis, values["front"])
        points, front, shown = view["points"], view["front"], view["shown"]
        for trace, family in zip(self.figure.data, self.families):
            mine = [r for r in shown if r["family"] == family]
            trace.x = [float(r[axis]) for r in mine]
            trace.y = [100 * r["accuracy"] for r in mine]
            trace.error_y.array = [100 * (r["accuracy_high"] - r["accuracy"]) for r in mine]
            trace.error_y.arrayminus = [100 * (r["accuracy"] - r["accuracy_low"]) for r in mine]
            trace.customdata = [_hover(r) for r in mine]
            # every trace stays visible, empty when filtered out: a hidden trace loses its data in the browser
        line = self.figure.data[-1]
        line.x, line.y = [float(r[axis]) for r in front], [100 * r["accuracy"] for r in front]
        self.figure.layout.xaxis.title.text = AXIS_TITLES[axis]
        where = "all models" if values["model"] == ALL else values["model"]
        what = "all techniques" if values["family"] == ALL else FAMILY_NAMES[values["family"]]
        self.figure.layout.title.text = (f"Accuracy vs {AXIS_NAMES[axis]}: {where}, {what}<br><sup>{len(points)} "
                                         f"results, {len(front)} on the Pareto front</sup>")
        self.stats = {"shown": len(shown), "front": [r["label"] for r in front], "x": axis,
                      "user_runs": len(self.user_records)}
        self.readout.value = _readout_html(front, axis, len(points), len(self.records) + len(self.user_records))


def _check_record(r, index: int) -> dict:
    if not isinstance(r, Mapping):
        raise TypeError(f"records[{index}] must be a dict (a sweep result), got {type(r).__name__}")
    missing = [k for k in ("label", "model", "family", "accuracy", "accuracy_low", "accuracy_high", "bytes")
               if k not in r]
    if missing:
        raise ValueError(f"records[{index}] lacks {missing}; use sweep results or pipeline.report.record(...)")
    if r["family"] not in FAMILY_NAMES:
        raise ValueError(f"records[{index}] has family {r['family']!r}; families are {list(FAMILY_NAMES)}")
    return dict(r)


def _hover(r: Mapping) -> list:
    latency = "—" if r.get("latency_ms") is None else f"{r['latency_ms']:.2f} ms"
    steps = " → ".join(step[0] for step in (r.get("spec") or r.get("pipeline") or [])) or "the zoo model as it is"
    return [r["label"], f"{r['model']}: {steps}", 100 * r["accuracy_low"], 100 * r["accuracy_high"], int(r["bytes"]),
            latency, int(r.get("macs") or 0), r.get("runtime", "")]


def _readout_html(front: list, axis: str, shown: int, total: int) -> str:
    unit = {"bytes": lambda v: f"{v / 1000:,.1f} kB", "latency_ms": lambda v: f"{v:.2f} ms",
            "macs": lambda v: f"{v / 1e6:.2f} M"}[axis]
    cell = "padding:1px 8px"          # compact rows: ten of them fit the readout's fixed height
    rows = "".join(f"<tr><td style='{cell}'>{html.escape(r['label'])} <span style='color:#777'>"
                   f"({html.escape(r['model'])})</span></td><td style='{cell};text-align:right'>{unit(r[axis])}</td>"
                   f"<td style='{cell};text-align:right'><b>{100 * r['accuracy']:.2f} %</b></td></tr>"
                   for r in front[:10])
    more = f"<p style='margin:2px 0'>… and {len(front) - 10} more</p>" if len(front) > 10 else ""
    return (f"<p style='margin:2px 0'><b>{shown}</b> of {total} results shown</p><p style='margin:2px 0 6px 0'>"
            f"<b>Pareto front</b> ({len(front)}): nothing shown is both smaller/faster and more accurate</p>"
            f"<table style='font-size:12px;line-height:1.35'>{rows}</table>{more}"
            "<p style='font-size:11px;color:#777;margin:6px 0'>Latency: median of 10 calls on the sweep's shared "
            "2-core machine, 1 thread — noisy; compare within one run.</p>")
