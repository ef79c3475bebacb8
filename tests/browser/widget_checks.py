"""One parametrised real-browser test for every labkit explorer, and the checks a learner's eye makes.

A widget test is a ``WidgetCase``: the notebook, the explorer's CSS name (``labkit-<explorer>``), what
its figure title and readout say after Run All, and a list of ``Move``s (a control, where to put it,
what the title/readout must say afterwards). ``check_widget`` performs them in Chromium and, after
Run All and after every move, checks what a careful learner would notice:

- **Python and browser agree**: every trace the kernel's ``FigureWidget`` holds is drawn with the same
  ``name``, ``x`` and ``y`` (a numpy array of labels assigned to ``x`` reaches plotly.js as 0, 1, 2...).
- **Figures read right**: a title; a title on every axis that carries data; no legend entry
  "trace N" and no legend entry twice; a legend where several series share a subplot; a category
  axis neither empty nor holding numeric indices instead of the labels.
- **Nothing overflows**: no text cut or sticking out of the widget (labels, readout, the figure's
  titles and legend), no slider track narrower than 100 px.
- **Nothing else went wrong**: no error or warning under any cell, nothing in JupyterLab's log console
  (where an exception raised in a widget callback lands), no JavaScript error on the page.

Every problem is collected and the test fails once, listing all of them. The widget is photographed
before and after each move (``<artifacts>/<notebook>/<explorer>-NN-<control>-{before,after}.png``),
and each move's latency (release → figure drawn, in the browser; the redraw in Python) is reported.
"""
from __future__ import annotations

import math
import re
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import browser_helpers as lab

MIN_SLIDER_PX = 100
QUIET_MS = 400          # the figure counts as drawn once nothing in it changed for this long
DRAW_TIMEOUT_S = 60     # how long a figure may take to draw its first traces once on screen
SETTLE_S = 10           # after a move, how long the browser's figure may take to agree with Python's
PLOTLY_PLACEHOLDER = re.compile(r"^Click to enter .* title$")   # what plotly shows for an unset title
DEFAULT_NAME = re.compile(r"^trace \d+$")                        # what plotly calls an unnamed trace
COMPARED_VALUES = 500   # first entries of x / y compared between Python and the browser


@dataclass
class Move:
    """One learner action: put the control ``labkit-<explorer>-<control>`` at ``to``.

    ``to`` is, for a slider, the fraction (0–1) of its track where the handle is released; for a
    dropdown, an option's label or value (str) or index (int); for a checkbox, True/False; for toggle
    buttons, the label of the button to press; for a button, anything (it is clicked). Afterwards the figure title and the readout must match
    the regular expressions ``title`` and ``readout`` (when given), ``check(before, after)`` may assert
    anything else on the two ``State``s, and the figure or readout must have changed unless
    ``redraw=False``.
    """

    control: str
    to: float | int | str | bool
    title: str | None = None
    readout: str | None = None
    check: Callable[["State", "State"], None] | None = None
    redraw: bool = True


@dataclass
class WidgetCase:
    """A widget test: after Run All of ``notebook`` the ``index``-th ``labkit-<explorer>`` shows a title
    matching ``title`` and a readout matching ``readout`` (``check(state)`` for more), then ``moves``."""

    notebook: str
    explorer: str
    title: str | None = None
    readout: str | None = None
    moves: list[Move] = field(default_factory=list)
    index: int = 0
    check: Callable[["State"], None] | None = None


@dataclass
class State:
    """What the learner sees of one explorer: its figure title, readout text, drawn marks (plotly's
    trace paths and heat-map images: compare them to know whether the figure changed) and what
    plotly.js computed for each figure (``browser_figures``: axes with type/title/categories, traces)."""

    title: str
    readout: str
    marks: list[str]
    figures: list[dict]


@dataclass
class WidgetRun:
    """What ``check_widget`` did: the page, the explorer's root, the state after Run All and after each
    move, and each control's latencies (``{"browser_ms", "python_ms"}`` per move)."""

    page: object
    root: object
    states: list[State]
    latencies: dict[str, list[dict]]
    problems: list[str]


def all_of(*texts: str) -> str:
    """A regular expression matching a text that contains every one of ``texts``, in any order."""
    return "(?s)^" + "".join(f"(?=.*{re.escape(text)})" for text in texts)


def axis_type(letter: str, kind: str) -> Callable[["State", "State"], None]:
    """A ``Move.check``: afterwards some ``letter`` axis ("x" or "y") of the first figure is of type
    ``kind`` ("log", "linear", "category")."""
    def check(before: "State", after: "State") -> None:
        types = [a["type"] for a in after.figures[0]["axes"] if a["key"].startswith(letter)]
        assert kind in types, f"no {letter} axis of type {kind!r}: {types}"
    return check


# -- reading the page -----------------------------------------------------------------------------

def state(root, explorer: str) -> State:
    value = root.evaluate("""(el, name) => {
        const title = el.querySelector('.js-plotly-plot .gtitle');
        const readout = el.querySelector('.labkit-' + name + '-readout');
        const marks = Array.from(el.querySelectorAll('.js-plotly-plot .trace path, .js-plotly-plot .hm image'))
            .map(m => m.getAttribute('d') || m.getAttribute('href') || '');
        return {title: title ? title.textContent : '', readout: readout ? readout.innerText : '', marks};
    }""", explorer)
    return State(**value, figures=browser_figures(root))


# The browser side of every plotly figure under the explorer: what plotly.js computed (_fullData,
# _fullLayout), not what it was sent, so defaults it filled in (a "trace 1" name) are visible.
_PLOTLY_JS = """el => Array.from(el.querySelectorAll('.js-plotly-plot')).map(gd => {
    const L = gd._fullLayout || {};
    const values = v => (v === undefined || v === null) ? null
        : Array.from(v, x => (x === null || typeof x === 'string') ? x : Number(x)).slice(0, %d);
    const axes = Object.keys(L).filter(k => /^[xy]axis\\d*$/.test(k)).map(k => ({
        key: k, id: L[k]._id, type: L[k].type, visible: L[k].visible !== false,
        title: (L[k].title && L[k].title.text) || '', categories: (L[k]._categories || []).map(String)}));
    const traces = (gd._fullData || []).map(t => ({
        index: t.index, type: t.type, name: t.name === undefined ? '' : String(t.name),
        visible: t.visible === true, showlegend: t.showlegend !== false, xaxis: t.xaxis || null,
        yaxis: t.yaxis || null, x: values(t.x), y: t.type === 'heatmap' ? null : values(t.y),
        n: Math.max(t.x ? t.x.length : 0, t.y ? t.y.length : 0)}));
    return {title: (L.title && L.title.text) || '', showlegend: !!L.showlegend, ndata: (gd.data || []).length,
            axes, traces};
})""" % COMPARED_VALUES


def browser_figures(root) -> list[dict]:
    return root.evaluate(_PLOTLY_JS)


# Runs inside the notebook's kernel (KernelProbe.run), first in both scripts below: ``found``, every
# labkit Explorer named NAME in the user namespace (or in a dict there, such as Out[]), each once.
_FIND_EXPLORERS = """
import json
from IPython import get_ipython
from labkit.widgets import Explorer

found, seen = [], set()
for value in list(get_ipython().user_ns.values()):
    for obj in ([value] + (list(value.values()) if isinstance(value, dict) else [])):
        if isinstance(obj, Explorer) and obj.name == NAME and id(obj) not in seen:
            seen.add(id(obj))
            found.append(obj)
"""

# Every explorer named NAME, with its figure's traces as plain lists and its last redraw time.
_PYTHON_SIDE = _FIND_EXPLORERS + """
import numbers

def plain(values, limit=%d):
    if values is None:
        return None
    out = []
    for v in list(values)[:limit]:
        out.append(v if v is None else str(v) if isinstance(v, str) else float(v) if isinstance(v, numbers.Number)
                   else repr(v))
    return out

result = json.dumps([{
    "title": e.figure.layout.title.text, "last_update_ms": e.last_update_ms, "update_count": e.update_count,
    "traces": [{"type": t.type, "name": t.name, "x": plain(getattr(t, "x", None)),
                "y": None if t.type == "heatmap" else plain(getattr(t, "y", None))} for t in e.figure.data],
} for e in found])
""" % COMPARED_VALUES


def python_figures(probe: lab.KernelProbe, explorer: str) -> list[dict]:
    import json

    return json.loads(probe.run(f"NAME = {explorer!r}\n" + _PYTHON_SIDE))


# Runs inside the notebook's kernel: the control values of the INDEX-th explorer named NAME, after
# setting them to VALUES (None: leave them) — what a learner's "put it back" would do, in one redraw.
_VALUES_SIDE = _FIND_EXPLORERS + """
if VALUES is not None:
    found[INDEX].set(**VALUES)
result = json.dumps(found[INDEX].values)
"""


def explorer_values(probe: lab.KernelProbe, explorer: str, index: int = 0, set_to: dict | None = None) -> dict:
    """The control values of the ``index``-th explorer named ``explorer`` in the notebook's kernel, after
    setting them to ``set_to`` (one redraw; the browser follows through the widgets' state)."""
    import json

    return json.loads(probe.run(f"NAME, INDEX, VALUES = {explorer!r}, {index!r}, {set_to!r}\n" + _VALUES_SIDE))


def _python_for(python: list[dict], figure: dict, index: int) -> dict | None:
    """The Python-side explorer drawn as ``figure``: the one with the same title, else by position."""
    same = [p for p in python if (p["title"] or "") == figure["title"]]
    if len(same) == 1:
        return same[0]
    return python[index] if index < len(python) else None


# -- the checks -----------------------------------------------------------------------------------

def _same_values(py: list | None, js: list | None) -> str | None:
    """Why ``py`` (Python's values) and ``js`` (the browser's) differ, or None."""
    if py is None:
        return None
    if js is None:
        return f"the browser has no values, Python has {py[:4]}…"
    if len(py) != len(js):
        return f"{len(js)} values in the browser, {len(py)} in Python"
    for a, b in zip(py, js):
        if a is None or b is None:          # a gap in a line: None in Python, null in plotly.js
            if a is not b:
                return f"browser {js[:6]} vs Python {py[:6]}"
        elif isinstance(a, str) or isinstance(b, str):
            if str(a) != str(b):
                return f"browser {js[:6]} vs Python {py[:6]}"
        elif not (a == b or (isinstance(b, (int, float)) and math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-12))
                  or (math.isnan(a) and isinstance(b, float) and math.isnan(b))):
            return f"browser {js[:6]} vs Python {py[:6]}"
    return None


def trace_problems(figure: dict, python: dict | None) -> list[str]:
    """Python side vs browser side, trace by trace: count, name, x, y."""
    if python is None:
        return ["no Python-side explorer found for this figure (is it assigned to a variable?)"]
    problems = []
    if len(python["traces"]) != figure["ndata"]:
        problems.append(f"Python holds {len(python['traces'])} traces, the browser {figure['ndata']}")
    drawn = {t["index"]: t for t in figure["traces"]}
    for i, py in enumerate(python["traces"]):
        js = drawn.get(i)
        if js is None:
            continue
        if py["name"] is not None and str(py["name"]) != js["name"]:
            problems.append(f"trace {i}: named {js['name']!r} in the browser, {py['name']!r} in Python")
        for axis in ("x", "y"):
            why = _same_values(py[axis], js[axis])
            if why:
                problems.append(f"trace {i} ({js['name'] or py['type']}): {axis} differs: {why}")
    return problems


def _has_data(trace: dict) -> bool:
    return trace["visible"] and (trace["n"] > 0 or trace["type"] in ("heatmap", "image"))


def figure_problems(figure: dict) -> list[str]:
    """Title, axis titles, legend names, category axes of one drawn figure."""
    problems = [] if figure["title"].strip() else ["the figure has no title"]
    traces = [t for t in figure["traces"] if _has_data(t)]
    for axis in figure["axes"]:
        on_axis = [t for t in traces if axis["id"] in (t["xaxis"], t["yaxis"])]
        if not (axis["visible"] and on_axis):
            continue
        if not axis["title"].strip() or PLOTLY_PLACEHOLDER.match(axis["title"]):
            problems.append(f"{axis['key']} has no title (label it, with its unit)")
        if axis["type"] == "category" and not axis["categories"]:
            problems.append(f"{axis['key']} is a category axis without categories")
        if axis["type"] == "category" and axis["categories"] == [str(i) for i in range(len(axis["categories"]))]:
            labels = {v for t in on_axis for v in (t["x"] if axis["id"] == t["xaxis"] else t["y"]) or []}
            if not any(isinstance(v, str) and not v.isdigit() for v in labels):
                problems.append(f"{axis['key']} shows the indices {axis['categories'][:5]} instead of labels")
    in_legend = [t for t in traces if t["showlegend"]] if figure["showlegend"] else []
    for t in in_legend:
        if DEFAULT_NAME.match(t["name"]) or not t["name"]:
            problems.append(f"the legend shows an unnamed trace as {t['name']!r} (set `name` when creating it)")
    names = [t["name"] for t in in_legend]
    problems += [f"the legend shows {name!r} {names.count(name)} times" for name in sorted(set(names))
                 if names.count(name) > 1]
    subplots: dict[tuple, list] = {}
    for t in traces:
        subplots.setdefault((t["xaxis"], t["yaxis"]), []).append(t)
    for (xaxis, yaxis), group in subplots.items():
        if xaxis and len(group) > 1 and not any(t in in_legend for t in group):
            problems.append(f"{len(group)} series share the subplot {xaxis}/{yaxis} but none is in a legend")
    return problems


_LAYOUT_JS = """(root, minSlider) => {
    const problems = [];
    const box = root.getBoundingClientRect();
    if (root.scrollWidth > root.clientWidth + 1)
        problems.push(`the widget's content is ${root.scrollWidth}px wide, the widget ${root.clientWidth}px`);
    const overflowing = [];
    for (const el of root.querySelectorAll('*')) {
        if (el.closest('.js-plotly-plot') || el instanceof SVGElement) continue;
        const cs = getComputedStyle(el);
        const r = el.getBoundingClientRect();
        const text = (el.innerText || '').trim();
        if (cs.display === 'none' || cs.visibility === 'hidden' || r.width === 0 || !text) continue;
        if (el.clientWidth > 0 && el.scrollWidth > el.clientWidth + 1 && !['auto', 'scroll'].includes(cs.overflowX))
            overflowing.push(el);
        else if (r.right > box.right + 1 || r.left < box.left - 1)
            problems.push(`text "${text.slice(0, 50)}" sticks out of the widget by ${Math.round(Math.max(r.right - box.right, box.left - r.left))}px`);
    }
    for (const el of overflowing)   // the innermost box that is too small for its text
        if (!overflowing.some(other => other !== el && el.contains(other)))
            problems.push(`text "${el.innerText.trim().slice(0, 50)}" overflows its box: it needs ${el.scrollWidth}px, ` +
                          `it has ${el.clientWidth}px (${String(el.className).match(/labkit-[\\w-]+|widget-[\\w-]+/) || el.tagName})`);
    for (const track of root.querySelectorAll('.noUi-target')) {
        const w = track.getBoundingClientRect().width;
        const control = track.closest('[class*="labkit-"]');
        if (w < minSlider)
            problems.push(`the slider ${control ? control.className.match(/labkit-[\\w-]+/)[0] : ''} has a ${Math.round(w)}px track (< ${minSlider}px)`);
    }
    for (const gd of root.querySelectorAll('.js-plotly-plot')) {
        const svg = gd.querySelector('.main-svg');
        if (!svg) continue;
        const frame = svg.getBoundingClientRect();
        for (const t of gd.querySelectorAll('.infolayer text, .legendtext')) {
            const r = t.getBoundingClientRect();
            if (r.width && (r.left < frame.left - 1 || r.right > frame.right + 1 || r.top < frame.top - 1 || r.bottom > frame.bottom + 1))
                problems.push(`figure text "${t.textContent.slice(0, 50)}" is cut by the figure's edge`);
        }
    }
    return problems;
}"""


def layout_problems(root) -> list[str]:
    return root.evaluate(_LAYOUT_JS, MIN_SLIDER_PX)


def quality_problems(root, probe: lab.KernelProbe, explorer: str) -> list[str]:
    """Every figure under ``root`` checked on its own and against the kernel, plus the layout."""
    python = python_figures(probe, explorer)
    problems = []
    for i, figure in enumerate(browser_figures(root)):
        where = f"figure {i}" if i else "figure"
        problems += [f"{where}: {p}" for p in figure_problems(figure) + trace_problems(figure, _python_for(python, figure, i))]
    return problems + layout_problems(root)


def wait_until_drawn(page, root) -> bool:
    """Wait (up to ``DRAW_TIMEOUT_S``) until every plotly figure under ``root`` has drawn its traces
    (plotly draws a figure only once it is on screen, later on a busy machine); False if one never did."""
    root.locator(".js-plotly-plot").first.wait_for(state="attached", timeout=DRAW_TIMEOUT_S * 1000)
    try:
        page.wait_for_function("""el => Array.from(el.querySelectorAll('.js-plotly-plot')).every(gd =>
                                      (gd._fullData || []).length > 0 && gd.querySelector('.trace, .hm'))""",
                               arg=root.element_handle(), timeout=DRAW_TIMEOUT_S * 1000)
    except Exception:   # playwright's TimeoutError
        return False
    page.wait_for_timeout(QUIET_MS)
    return True


# -- moving controls ------------------------------------------------------------------------------

# Records when the learner's input ended (the first `eventName` event) and the last DOM change of the
# figure or readout after it, in `window.__labkitWatch`.
_WATCH_JS = """(el, [eventName, readout]) => {
    const w = window.__labkitWatch = {input: null, first: null, last: null};
    const obs = new MutationObserver(() => { if (w.input !== null) { const t = performance.now();
        if (w.first === null) w.first = t; w.last = t; } });
    for (const target of [el.querySelector('.js-plotly-plot'), el.querySelector(readout)])
        if (target) obs.observe(target, {subtree: true, childList: true, attributes: true, characterData: true});
    w.stop = () => obs.disconnect();
    document.addEventListener(eventName, () => { if (w.input === null) w.input = performance.now(); },
                              {capture: true, once: true});
}"""


def control_kind(root, selector: str) -> str:
    if root.locator(f"button{selector}").count():
        return "button"
    for kind, inner in (("slider", ".noUi-target"), ("dropdown", "select"), ("checkbox", "input[type=checkbox]"),
                        ("buttons", "button")):
        if root.locator(f"{selector} {inner}").count():
            return kind
    raise AssertionError(f"no slider, dropdown, checkbox or buttons in {selector}")


def _act(page, root, selector: str, kind: str, to) -> None:
    if kind == "slider":
        track = root.locator(f"{selector} .noUi-target").bounding_box()
        handle = root.locator(f"{selector} .noUi-handle").bounding_box()
        x0, y = handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2
        page.mouse.move(x0, y)
        page.mouse.down()
        page.mouse.move(track["x"] + float(to) * track["width"], y, steps=8)
        page.mouse.up()
    elif kind == "dropdown":
        select = root.locator(f"{selector} select")
        if isinstance(to, int):
            select.select_option(index=to)
        else:
            labels = select.locator("option").evaluate_all("els => els.map(e => e.textContent)")
            select.select_option(label=to) if to in labels else select.select_option(value=to)
    elif kind == "checkbox":
        box = root.locator(f"{selector} input[type=checkbox]")
        box.check() if to else box.uncheck()
    elif kind == "button":
        root.locator(f"button{selector}").click()
    else:
        root.locator(f"{selector} button", has_text=str(to)).first.click()


def move(page, root, explorer: str, control: str, to, *, redraw: bool = True, timeout: float = 30.0) -> float | None:
    """Put ``control`` at ``to`` as a learner would and wait until the figure and readout are still
    for ``QUIET_MS``; return the milliseconds from the input's end (mouse release, option picked,
    click) to the last change of the figure or readout, or None if nothing changed."""
    selector = f".labkit-{explorer}-{control}"
    kind = control_kind(root, selector)
    root.locator(selector).scroll_into_view_if_needed()
    event = {"slider": "pointerup", "dropdown": "change", "checkbox": "change", "buttons": "click", "button": "click"}[kind]
    root.evaluate(_WATCH_JS, [event, f".labkit-{explorer}-readout"])
    _act(page, root, selector, kind, to)
    try:
        page.wait_for_function("() => window.__labkitWatch.first !== null",
                               timeout=(timeout if redraw else QUIET_MS * 2 / 1000) * 1000)
    except Exception:   # playwright's TimeoutError: nothing changed
        page.evaluate("() => window.__labkitWatch.stop()")
        if redraw:
            raise AssertionError(f"{selector} → {to!r}: neither the figure nor the readout changed in {timeout:.0f} s")
        return None
    while True:
        last = page.evaluate("() => window.__labkitWatch.last")
        page.wait_for_timeout(QUIET_MS)
        if page.evaluate("() => window.__labkitWatch.last") == last:
            break
    w = page.evaluate("() => { const w = window.__labkitWatch; w.stop(); return {input: w.input, last: w.last}; }")
    return w["last"] - w["input"]


def settled_quality(page, root, probe: lab.KernelProbe, explorer: str) -> tuple[list[str], float]:
    """``quality_problems`` once the browser's figures agree with Python's, polling up to ``SETTLE_S``
    (a loaded machine can draw the figure after the readout has gone quiet); the problems left then, and
    the milliseconds waited for agreement (0 when it was immediate)."""
    start = time.monotonic()
    problems, retried = quality_problems(root, probe, explorer), False
    while problems and time.monotonic() - start < SETTLE_S:
        page.wait_for_timeout(250)
        problems, retried = quality_problems(root, probe, explorer), True
    return problems, ((time.monotonic() - start) * 1000.0 if retried and not problems else 0.0)


def python_redraw_ms(probe: lab.KernelProbe, explorer: str) -> float | None:
    """The Python side of the last redraw (``Explorer.last_update_ms``) of the explorer named so."""
    figures = python_figures(probe, explorer)
    return figures[0]["last_update_ms"] if len(figures) == 1 else None


# -- the test -------------------------------------------------------------------------------------

def _expect(problems: list[str], where: str, current: State, title: str | None, readout: str | None) -> None:
    if title and not re.search(title, current.title):
        problems.append(f"{where}: the title {current.title!r} does not match {title!r}")
    if readout and not re.search(readout, current.readout):
        problems.append(f"{where}: the readout does not match {readout!r}: {current.readout!r}")


def _run_check(problems: list[str], where: str, check, *states) -> None:
    if check is None:
        return
    try:
        check(*states)
    except AssertionError as error:
        problems.append(f"{where}: {error}")


def check_widget(page, server: lab.LabServer, case: WidgetCase, artifacts: Path) -> WidgetRun:
    """Run ``case`` on a notebook that Run All has just executed in ``page``; fail listing every problem."""
    root = lab.explorer(page, case.explorer, case.index)
    root.scroll_into_view_if_needed()    # plotly draws a figure once it is on screen
    drawn = wait_until_drawn(page, root)
    folder = artifacts / Path(case.notebook).stem
    folder.mkdir(parents=True, exist_ok=True)
    tag = case.explorer + (f"{case.index}" if case.index else "")
    probe = lab.KernelProbe(server, case.notebook)
    try:
        problems: list[str] = [] if drawn else [f"after Run All: the figure drew no trace in {DRAW_TIMEOUT_S} s"]
        states = [state(root, case.explorer)]
        root.screenshot(path=str(folder / f"{tag}-00-initial.png"))
        _expect(problems, "after Run All", states[0], case.title, case.readout)
        _run_check(problems, "after Run All", case.check, states[0])
        problems += [f"after Run All: {p}" for p in quality_problems(root, probe, case.explorer)]
        latencies: dict[str, list[dict]] = {}
        for k, step in enumerate(case.moves, start=1):
            where = f"move {k} ({step.control} → {step.to!r})"
            root.screenshot(path=str(folder / f"{tag}-{k:02d}-{step.control}-before.png"))
            try:
                browser_ms = move(page, root, case.explorer, step.control, step.to, redraw=step.redraw)
            except AssertionError as error:
                problems.append(f"{where}: {error}")
                continue
            quality, late_ms = settled_quality(page, root, probe, case.explorer)
            if browser_ms is not None and late_ms:
                browser_ms += late_ms   # the figure agreed with Python only this much after the quiet period
            root.screenshot(path=str(folder / f"{tag}-{k:02d}-{step.control}-after.png"))
            states.append(state(root, case.explorer))
            before, after = states[-2], states[-1]
            if step.redraw and after == before:
                problems.append(f"{where}: the figure and the readout look the same as before")
            _expect(problems, where, after, step.title, step.readout)
            _run_check(problems, where, step.check, before, after)
            problems += [f"{where}: {p}" for p in quality]
            if browser_ms is not None:
                latencies.setdefault(step.control, []).append(
                    {"browser_ms": browser_ms, "python_ms": python_redraw_ms(probe, case.explorer)})
    finally:
        probe.close()
    problems += [f"under a cell: {w}" for w in lab.visible_warnings(page)]
    problems += [f"log console: {m}" for m in lab.log_console_messages(page)]
    problems += [f"page error: {e}" for e in getattr(page, "labkit_console_errors", [])]
    try:
        lab.assert_no_errors(page)
    except AssertionError as error:
        problems.append(str(error))
    _report(case, latencies)
    assert not problems, (f"{case.notebook}, labkit-{case.explorer}: {len(problems)} problem(s)\n  - "
                          + "\n  - ".join(problems) + f"\nscreenshots: {folder}")
    return WidgetRun(page, root, states, latencies, problems)


def _report(case: WidgetCase, latencies: dict[str, list[dict]]) -> None:
    for control, runs in latencies.items():
        browser = [r["browser_ms"] for r in runs]
        python = [r["python_ms"] for r in runs if r["python_ms"] is not None]
        py = f", Python redraw median {statistics.median(python):.0f} ms" if python else ""
        lab.report(f"{case.notebook} {case.explorer}.{control}: release → figure drawn, {len(runs)} move(s): "
                   f"median {statistics.median(browser):.0f} ms, max {max(browser):.0f} ms{py}")
