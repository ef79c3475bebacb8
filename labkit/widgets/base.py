"""Conventions shared by every labkit explorer (the widgets the notebooks put under a learner's hands).

An *explorer* is a thin view: a row of controls, one plotly figure and a small HTML readout. It holds
no algorithm of its own — every number it shows comes from a labkit function (``labkit.quant``,
``labkit.prune``, ``labkit.measure``...). Write a new explorer by following these rules:

1. **Controls come from the factories below** (``slider``, ``int_slider``, ``dropdown``,
   ``checkbox``). They create ipywidgets 8 controls with ``continuous_update=False`` (the figure is
   redrawn when the learner *releases* a slider, not on every pixel of the drag) and add a stable CSS
   class ``labkit-<explorer>-<control>`` (for example ``labkit-weight-histogram-layer``), which is how the
   real-browser tests in ``tests/browser/`` find them. The explorer's root box gets ``labkit-<explorer>``,
   its figure ``labkit-<explorer>-figure`` and its readout ``labkit-<explorer>-readout``.
2. **One plotly ``go.FigureWidget``, updated in place.** ``draw`` never builds a new figure: it
   assigns ``figure.data[i].x``/``.y``/``figure.layout...``; the base class wraps every redraw in
   ``figure.batch_update()`` so that the browser receives one message per update.
3. **Subclass ``Explorer``** and implement three methods: ``build_controls() -> dict[name, control]``,
   ``build_figure() -> go.FigureWidget`` and ``draw(values)``, where ``values`` maps each control name
   to its current value. ``draw`` updates the figure, ``self.stats`` (a dict of plain numbers that the
   tests inspect) and ``self.readout.value`` (HTML). The base class lays everything out, observes each
   control, displays itself in a notebook (``_repr_mimebundle_``) and exposes ``.widget``.
4. **A plain-Python API for tests and notebooks**: ``explorer.set(layer="fc1.weight", log=True)``
   changes several controls and redraws once; then inspect ``explorer.figure.data``,
   ``explorer.stats``. ``explorer.last_update_ms`` is the wall time of the last redraw (Python side),
   ``explorer.update_count`` the number of redraws, so notebooks and benchmarks can show latency.
5. **Remember what is expensive**: ``self.remember("setting", key, compute)`` runs ``compute()`` once
   per key (a re-pruned, re-evaluated model) and ``self.remembered("setting")`` lists what is known, so
   a slider moved back to a setting redraws at once. No explorer keeps a cache of its own.

Explained in notebooks/00_why_compress.ipynb.
"""
from __future__ import annotations

import copy
import html
import functools
import re
import time
from contextlib import contextmanager
from numbers import Real
from pathlib import Path

import ipywidgets as W
import plotly
import plotly.graph_objects as go
import traitlets

_SLUG = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")


def css_class(explorer: str, control: str | None = None) -> str:
    """The stable CSS class ``labkit-<explorer>[-<control>]`` (lower-case words joined by dashes)."""
    for arg, value in (("explorer", explorer), ("control", control)):
        if value is None:
            continue
        if not isinstance(value, str) or not _SLUG.match(value):
            raise ValueError(f"{arg} must be lower-case letters/digits joined by dashes (e.g. 'layer'), got {value!r}")
    return f"labkit-{explorer}" if control is None else f"labkit-{explorer}-{control}"


def _control(widget_type, explorer: str, control: str, **options):
    options.setdefault("style", {"description_width": "initial"})
    widget = widget_type(**options)
    widget.add_class(css_class(explorer, control))
    return widget


def slider(explorer: str, control: str, *, continuous_update: bool = False, **options) -> W.FloatSlider:
    """A ``FloatSlider`` (``value``, ``min``, ``max``, ``step``, ``description``...) classed ``labkit-<explorer>-<control>``."""
    return _control(W.FloatSlider, explorer, control, continuous_update=continuous_update, **options)


def int_slider(explorer: str, control: str, *, continuous_update: bool = False, **options) -> W.IntSlider:
    """An ``IntSlider`` classed ``labkit-<explorer>-<control>``; redraws on release by default."""
    return _control(W.IntSlider, explorer, control, continuous_update=continuous_update, **options)


def dropdown(explorer: str, control: str, **options) -> W.Dropdown:
    """A ``Dropdown`` (``options`` as values or ``(label, value)`` pairs) classed ``labkit-<explorer>-<control>``."""
    return _control(W.Dropdown, explorer, control, **options)


def checkbox(explorer: str, control: str, **options) -> W.Checkbox:
    """A ``Checkbox`` classed ``labkit-<explorer>-<control>`` (``indent=False`` so it sits in a row)."""
    options.setdefault("indent", False)
    return _control(W.Checkbox, explorer, control, **options)


_GRID = dict(gridcolor="#EBF0F8", linecolor="#EBF0F8", zerolinecolor="#EBF0F8", zerolinewidth=2, automargin=False)
#: The look of plotly's ``plotly_white``, reduced to what labkit's figures use, with fixed margins.
#: plotly.js merges the template into every trace and axis on each redraw (every control change);
#: the built-in templates carry defaults for every trace type, and automatic margins lay the figure
#: out again whenever a tick label changes width. Measured in Chromium, a redraw of the
#: quantization-grid figure took about a third of the time with this template.
FIGURE_TEMPLATE = go.layout.Template(layout=dict(
    paper_bgcolor="white", plot_bgcolor="white", font=dict(color="#2a3f5f"), hovermode="closest",
    colorway=["#636efa", "#EF553B", "#00cc96", "#ab63fa", "#FFA15A", "#19d3f3", "#FF6692", "#B6E880"],
    xaxis=_GRID, yaxis=_GRID))


# plotly's widget front end (``plotly/package_data/widgetbundle.js``, 5 MB) behind a few lines that
# anywidget can load and initialize at once. anywidget (0.11) gives a model's front end 2 s from the
# model's creation to load its module and run ``initialize``; past that, its ``ready`` promise is
# rejected for good and every later message to the model is dropped unseen (``AnyModel._handle_comm_msg``
# awaits it). plotly.py sends its 5 MB module as each figure's ``_esm``, parsed again for every figure:
# on a loaded machine that takes longer than 2 s, and the figure then never redraws again while the
# rest of the explorer (the readout) answers. This module initializes at once and imports plotly's
# module once per page (cached by ``_plotly_bundle_id``), shared by every figure; a view waits for it.
_PLOTLY_ESM = """
const modules = (globalThis.__labkitPlotlyWidget ??= new Map());
function plotlyWidget(model) {
  const key = model.get("_plotly_bundle_id");
  if (!modules.has(key)) {
    const url = URL.createObjectURL(new Blob([model.get("_plotly_bundle")], { type: "text/javascript" }));
    modules.set(key, import(url).finally(() => URL.revokeObjectURL(url)));
  }
  return modules.get(key);
}
export default () => {
  let widget;
  return {
    initialize({ model }) {
      widget = plotlyWidget(model).then(async (module) => {
        const inner = module.default();
        await inner.initialize({ model });
        return inner;
      });
    },
    async render({ model, el }) {
      const inner = await widget;
      return inner.render({ model, el });
    },
  };
};
"""


@functools.cache
def _plotly_bundle() -> str:
    return (Path(plotly.__file__).parent / "package_data" / "widgetbundle.js").read_text(encoding="utf-8")


class FigureWidget(go.FigureWidget):
    """``go.FigureWidget`` that keeps answering in a loaded browser and opens with its drawn state.

    - **Its front end initializes at once** (``_PLOTLY_ESM``): plotly's own 5 MB module, loaded per
      figure, can take longer than the 2 s anywidget allows a model to initialize on a loaded
      machine, and anywidget then drops every later update: the figure froze while the readout
      answered. Here plotly's module is loaded once per page, after the model is ready.
    - **Its comm opens with the figure's current data and layout as its state.** plotly.py assigns
      ``_widget_data`` and ``_widget_layout`` only after ipywidgets has opened the comm with empty
      defaults, so they reach the browser as later updates; a view built before they arrive drew an
      empty plot. An ``Explorer`` builds and draws its figure first (``held_figures``), so the first
      message already holds the drawn figure.
    - ``sync_state()`` (``Explorer.update`` calls it after every redraw) keeps that state current
      until a view has drawn the figure: a view drawn only once plotly's module has loaded starts
      from the figure as it is, not as it was created.

    Same arguments as ``go.FigureWidget``.
    """

    _esm = _PLOTLY_ESM
    _plotly_bundle = traitlets.Unicode().tag(sync=True)
    _plotly_bundle_id = traitlets.Unicode().tag(sync=True)

    def __init__(self, *args, **kwargs):
        self._open_later = True
        super().__init__(*args, **kwargs)
        if _HELD is None:
            self._open_later = False
            self.open()
        else:
            _HELD.append(self)

    def open(self):
        if getattr(self, "_open_later", False):
            return
        if self.comm is None:   # what plotly's __init__ assigns, taken from the figure as it is now
            bundle = _plotly_bundle()
            self._plotly_bundle, self._plotly_bundle_id = bundle, f"plotly {plotly.__version__} {len(bundle)}"
            self._widget_data = copy.deepcopy(self._data)
            self._widget_layout = copy.deepcopy(self._layout_obj._props)
        super().open()

    def sync_state(self) -> None:
        """Send the whole figure as the widget's state (when it changed), until a view has drawn it.

        Updates that reach the browser before plotly's module has loaded are not applied to the
        model's copy of the figure, which a view draws first; once a view has drawn the figure (it
        then reports the traces it drew: ``_js2py_traceDeltas``), plotly's front end applies every
        update to that copy and this does nothing (the whole state of a large heat map costs tens
        of milliseconds a redraw)."""
        if self._view_answered:
            return
        self._widget_data = copy.deepcopy(self._data)
        self._widget_layout = copy.deepcopy(self._layout_obj._props)

    _view_answered = False

    @traitlets.observe("_js2py_traceDeltas")
    def _on_view_answer(self, change):
        if change["new"]:
            self._view_answered = True


_HELD: list | None = None


@contextmanager
def held_figures():
    """``FigureWidget``s created inside the block open their comm when it ends, with the state they
    have then (``Explorer.__init__`` builds and draws its figure inside one)."""
    global _HELD
    outer, _HELD = _HELD, []
    try:
        yield
    finally:
        held, _HELD = _HELD, outer
        for figure in held:
            figure._open_later = False
            if _HELD is None:
                figure.open()
            else:
                _HELD.append(figure)


def step_histogram(counts, edges) -> tuple[list, list]:
    """``(x, y)`` of a histogram drawn as one step line (``line_shape="hv"``, ``fill="tozeroy"``).

    ``counts`` ``[n]`` and bin ``edges`` ``[n + 1]`` as ``numpy.histogram`` returns them. One SVG
    path instead of one bar per bin, which plotly.js redraws several times faster. Plain lists, with
    an empty bin of padding on each side: nothing sits on the edge of the axis, and ``sum(y)`` is the
    number of values counted.
    """
    width = float(edges[1] - edges[0])
    x = [float(edges[0]) - width] + [float(e) for e in edges] + [float(edges[-1]) + width]
    return x, [0] + [int(c) for c in counts] + [0, 0]


def vertical_lines(positions, low: float = -1.0, high: float = 2.0) -> tuple[list, list]:
    """``(x, y)`` of one scatter line that draws a vertical segment at each of ``positions``.

    Plain lists (the rule for trace data), 3 points per position: the path runs ``low → 0.5 → high``
    at one position and ``high → 0.5 → low`` at the next, so the segments joining two positions lie
    at ``y = low`` or ``y = high``. On an axis fixed to ``range=[0, 1]`` plotly clips those joins away
    and only the vertical lines remain: one trace, one SVG path, no ``None`` gaps in the data. The
    mid-height points are where hovering shows a line's ``customdata`` (give each value 3 times).
    """
    xs, ys = [], []
    for k, value in enumerate(float(v) for v in positions):
        xs += [value, value, value]
        ys += [low, 0.5, high] if k % 2 == 0 else [high, 0.5, low]
    return xs, ys


def _check_in_range(name: str, control, value) -> None:
    """Refuse what a slider would clamp or truncate: a number outside ``[min, max]`` (a log slider's
    bounds are ``base**min`` and ``base**max``), NaN, or a non-integer for an integer slider."""
    if not isinstance(control, (W.FloatSlider, W.IntSlider, W.FloatLogSlider)):
        return
    if isinstance(value, bool) or not isinstance(value, Real):
        return  # not a number at all: the control itself refuses it (a ValueError naming it, below)
    if isinstance(control, W.IntSlider) and not float(value).is_integer():
        raise TypeError(f"{name} must be an integer in [{control.min}, {control.max}], got {value!r}")
    low, high = control.min, control.max
    if isinstance(control, W.FloatLogSlider):
        low, high = control.base ** low, control.base ** high
    if not low <= value <= high:  # also False for NaN
        raise ValueError(f"{name} must be in [{low}, {high}] (the slider's range), got {value!r}")


def complete_batch(figure: go.FigureWidget) -> None:
    """Inside ``figure.batch_update()``: give every trace of the batch a value for every property it sets.

    plotly's batch message sends ``undefined`` for a trace whose property did not change while another
    trace's did. The FigureWidget's JavaScript *model* (plotly ≥ 6, anywidget) merges that placeholder
    into its copy of the figure as the string ``"_undefined_"`` whenever no view has drawn the figure
    yet — as after an explorer's first draw, before the cell's output is shown. The view drawn later
    then shows bars without their categories (0, 1, 2), a legend with "trace 1", or nothing at all.
    Sending the unchanged current value instead avoids it. A property that is unset on a trace (``None``)
    or that the trace's type does not have (a scatter's ``width``) keeps the placeholder, so ``draw`` must
    give every updated trace its whole data (a heatmap its x, y and z), as CONTRIBUTING asks.
    """
    edits = figure._batch_trace_edits          # plotly's pending per-trace edits (no public accessor)
    props = {prop for trace_edits in edits.values() for prop in trace_edits}
    for index, trace_edits in edits.items():
        for prop in props - set(trace_edits):
            try:
                value = figure.data[index][prop]
            except (KeyError, ValueError):      # a property this trace type does not have
                continue
            if value is not None:
                trace_edits[prop] = list(value) if isinstance(value, tuple) else value


def readout_rows(rows) -> str:
    """The readout table's rows as HTML: each ``(label, value)`` pair escaped, the label left and the value
    right-aligned in bold (every explorer's readout uses this layout; wrap the result in ``<table>``)."""
    return "".join(f"<tr><td>{html.escape(k)}</td><td style='text-align:right'><b>{html.escape(v)}</b></td></tr>"
                   for k, v in rows)


class Explorer:
    """Base class: controls + one FigureWidget + an HTML readout, redrawn whenever a control changes.

    Subclasses set ``name`` (the ``<explorer>`` part of the CSS classes) and implement
    ``build_controls``, ``build_figure`` and ``draw``; see the module docstring.
    """

    name = "explorer"

    def __init__(self):
        self.stats: dict = {}
        self.last_update_ms: float | None = None
        self.update_count = 0
        self._holding = False
        self.controls: dict[str, W.ValueWidget] = dict(self.build_controls())
        self.readout = W.HTML()
        self.readout.add_class(css_class(self.name, "readout"))
        with held_figures():   # a labkit FigureWidget reaches the browser already drawn (see FigureWidget)
            self.figure: go.FigureWidget = self.build_figure()
            self.figure.add_class(css_class(self.name, "figure"))
            self.update()
        self.widget: W.Box = self.layout()
        self.widget.add_class(css_class(self.name))
        for control in self.controls.values():
            control.observe(self._on_control_change, names="value")

    # --- what a subclass provides -------------------------------------------------------------
    def build_controls(self) -> dict:
        raise NotImplementedError

    def build_figure(self) -> go.FigureWidget:
        raise NotImplementedError

    def draw(self, values: dict) -> None:
        raise NotImplementedError

    def layout(self) -> W.Box:
        """Controls in a row above the figure, the readout to the right of the figure."""
        self.readout.layout = W.Layout(min_width="240px", margin="0 0 0 12px")
        self.figure.layout.autosize = True
        row = W.HBox(list(self.controls.values()), layout=W.Layout(flex_flow="row wrap", align_items="center"))
        body = W.HBox([self.figure, self.readout], layout=W.Layout(align_items="flex-start"))
        return W.VBox([row, body])

    # --- the plain-Python API -----------------------------------------------------------------
    @property
    def values(self) -> dict:
        """The current value of every control, by control name."""
        return {name: control.value for name, control in self.controls.items()}

    def set(self, **values) -> "Explorer":
        """Set several controls as a learner would (``set(layer=..., log=True)``) and redraw once.

        A value a learner could not reach with the control raises before anything changes:
        ``ValueError`` naming the control and its range for a number outside a slider's
        ``[min, max]`` (ipywidgets would silently clamp ``sparsity=1.5`` to the maximum),
        ``TypeError`` for a fraction given to an integer slider (it would be truncated); a value of
        the wrong kind (a string for a slider) is a ``ValueError`` naming the control."""
        unknown = sorted(set(values) - set(self.controls))
        if unknown:
            raise ValueError(f"unknown control(s) {unknown}; this explorer has {sorted(self.controls)}")
        for name, value in values.items():
            _check_in_range(name, self.controls[name], value)
        with self._hold():
            for name, value in values.items():
                try:
                    self.controls[name].value = value
                except traitlets.TraitError as error:
                    raise ValueError(f"{name}={value!r} is not accepted by this control: {error}") from None
        self.update()
        return self

    def update(self) -> None:
        """Redraw from the current control values (in one plotly batch) and time it."""
        start = time.perf_counter()
        with self.figure.batch_update():
            self.draw(self.values)
            complete_batch(self.figure)
        if isinstance(self.figure, FigureWidget):
            self.figure.sync_state()
        self.last_update_ms = (time.perf_counter() - start) * 1000.0
        self.update_count += 1

    def remember(self, kind: str, key, compute):
        """``compute()``'s result for ``key`` in the table ``kind`` (``"setting"``, ``"curve"``...), computed
        once per explorer: a setting the learner comes back to is redrawn without re-pruning or
        re-evaluating anything. Results are kept for the explorer's lifetime (a few settings' worth)."""
        table = self.remembered(kind)
        if key not in table:
            table[key] = compute()
        return table[key]

    def remembered(self, kind: str) -> dict:
        """What ``remember`` holds under ``kind``: key → result, in the order they were computed."""
        return self.__dict__.setdefault("_remembered", {}).setdefault(kind, {})

    # --- plumbing -----------------------------------------------------------------------------
    @contextmanager
    def _hold(self):
        self._holding, previous = True, self._holding
        try:
            yield
        finally:
            self._holding = previous

    def _on_control_change(self, change) -> None:
        if not self._holding:
            self.update()

    def _repr_mimebundle_(self, **kwargs):
        # A FigureWidget displayed on its own re-sends its whole figure when it is shown, because the
        # updates made between its creation and its display can reach the browser before the widget's
        # JavaScript model exists there (a busy kernel or machine) and be lost; nested in our box it is
        # not displayed on its own, so ask it to do the same (the bundle it returns is not needed).
        self.figure._repr_mimebundle_()
        return self.widget._repr_mimebundle_(**kwargs)
