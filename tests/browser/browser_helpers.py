"""Drive JupyterLab 4 in a real Chromium through Playwright (sync API): open, run, wait, inspect.

Every helper takes a Playwright ``page`` already pointed at the lab started by ``conftest.py``.
Selectors rely on JupyterLab 4's stable class names and on the CSS classes labkit puts on each
widget control (``labkit-<explorer>-<control>``, see ``labkit/widgets/base.py``).
"""
from __future__ import annotations

import json
import os
import re
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

NOTEBOOK = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook"
STATUS_BAR = "#jp-main-statusbar"
KERNEL_STATES = ("Idle", "Busy", "Starting", "Restarting", "Connecting", "Initializing", "Unknown",
                 "Dead", "Terminating", "Autorestarting", "Reconnecting", "Disconnected", "No Kernel")
ERROR_PATTERN = re.compile(r"Traceback|\b[A-Za-z]*Error\b")

# Lines printed at the end of the pytest run (latencies etc.), filled by `report`.
REPORT: list[str] = []


def report(line: str) -> None:
    """Print a measurement now and repeat it in the end-of-run summary (never asserted on)."""
    print(line)
    REPORT.append(line)


@dataclass
class LabServer:
    """A running ``jupyter lab``: where it listens, its token, and the folder it serves."""

    url: str
    token: str
    root: Path
    log: Path

    def notebook_url(self, name: str, workspace: str) -> str:
        # A fresh workspace per test: JupyterLab restores no tabs from an earlier test.
        return f"{self.url}/lab/workspaces/{workspace}/tree/{name}?token={self.token}"


def open_notebook(page, server: LabServer, name: str, timeout: float = 120.0) -> None:
    """Open ``name`` (relative to the server root) in its own workspace and wait for its kernel."""
    workspace = re.sub(r"[^a-z0-9]+", "-", f"{name}-{time.time_ns()}".lower())
    page.goto(server.notebook_url(name, workspace), timeout=timeout * 1000)
    page.wait_for_selector(f"{NOTEBOOK} .jp-Cell", timeout=timeout * 1000)
    deadline = time.monotonic() + timeout
    while kernel_status(page) != "Idle":
        if time.monotonic() > deadline:
            raise TimeoutError(f"kernel of {name} not idle after {timeout:.0f} s; status bar says "
                               f"{status_bar_text(page)!r}")
        page.wait_for_timeout(200)


def status_bar_text(page) -> str:
    bar = page.query_selector(STATUS_BAR)
    return bar.inner_text() if bar else ""


def kernel_status(page) -> str | None:
    """The kernel state shown in the *status bar* ("Python 3 (ipykernel) | Idle" → "Idle")."""
    text = status_bar_text(page)
    for state in KERNEL_STATES:
        if re.search(rf"\|\s*{re.escape(state)}\b", text):
            return state
    return None


def prompts(page) -> list[str]:
    """The execution prompt of every code cell of the current notebook: "[1]:", "[*]:", "[ ]:"."""
    return page.eval_on_selector_all(f"{NOTEBOOK} .jp-CodeCell .jp-InputPrompt",
                                     "els => els.map(e => e.textContent.trim())")


def run_all_cells(page) -> None:
    """Run → Run All Cells from the main menu bar (what a learner clicks)."""
    page.click(f"{NOTEBOOK} .jp-Cell")  # focus the notebook so the command applies to it
    page.click(".lm-MenuBar-item:has(.lm-MenuBar-itemLabel:text-is('Run'))")
    page.click(".lm-Menu-item:has(.lm-Menu-itemLabel:text-is('Run All Cells'))")


def wait_kernel_idle(page, timeout: float = 300.0) -> float:
    """Wait until the run started by ``run_all_cells`` is over; return the seconds it took.

    Over means: the status bar has shown the kernel busy (or a cell showed ``[*]``), the status bar
    now says Idle, and no cell prompt is ``[*]``. If the run was too quick to see busy, every code
    cell having an execution count (or an error output, which stops Run All) counts as having seen it.
    """
    start = time.monotonic()
    seen_busy = False
    while True:
        status, marks = kernel_status(page), prompts(page)
        running = any("*" in mark for mark in marks)
        seen_busy = seen_busy or status == "Busy" or running
        all_ran = bool(marks) and all(re.search(r"\d", mark) for mark in marks)
        if status == "Idle" and not running and (seen_busy or all_ran or _has_error_output(page)):
            return time.monotonic() - start
        if status == "Dead":
            raise RuntimeError(f"the kernel died; outputs so far:\n{output_texts(page)}")
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"kernel not idle after {timeout:.0f} s (status bar {status_bar_text(page)!r}, "
                               f"prompts {marks})")
        page.wait_for_timeout(250)


def output_texts(page) -> list[str]:
    """The visible text of every cell output area of the current notebook."""
    return page.eval_on_selector_all(f"{NOTEBOOK} .jp-OutputArea-output",
                                     "els => els.map(e => e.innerText)")


def _has_error_output(page) -> bool:
    return any(ERROR_PATTERN.search(text) for text in output_texts(page))


def assert_no_errors(page) -> None:
    """Fail if any cell output shows a traceback or an ``...Error`` (including widget render errors)."""
    bad = [text for text in output_texts(page) if ERROR_PATTERN.search(text)]
    assert not bad, "cell outputs contain errors:\n" + "\n---\n".join(text[:2000] for text in bad)


def explorer(page, name: str, index: int = 0):
    """The root element of the ``index``-th explorer named ``name`` (CSS class ``labkit-<name>``)."""
    locator = page.locator(f"{NOTEBOOK} .labkit-{name}").nth(index)
    locator.wait_for(state="visible", timeout=60_000)
    return locator


def figure_state(root) -> dict:
    """What the plotly figure under ``root`` draws: its title and every trace path (waits for a first trace)."""
    root.locator(".js-plotly-plot .trace path").first.wait_for(state="attached", timeout=60_000)
    return root.evaluate("""el => ({
        title: (el.querySelector('.js-plotly-plot .gtitle') || {}).textContent || '',
        paths: Array.from(el.querySelectorAll('.js-plotly-plot .trace path')).map(p => p.getAttribute('d')),
    })""")


# Installs a MutationObserver on the figure and records when the learner's input ended (the first
# `eventName` event: "pointerup" for a slider, "change" for a select) and the figure's first and
# last DOM change after it, in `window.__labkitWatch`; `_watch_result` turns them into latencies.
_WATCH_JS = """(el, eventName) => {
    const plot = el.querySelector('.js-plotly-plot');
    const w = window.__labkitWatch = {input: null, first: null, last: null};
    const obs = new MutationObserver(() => { if (w.input !== null) { const t = performance.now();
        if (w.first === null) w.first = t; w.last = t; } });
    obs.observe(plot, {subtree: true, childList: true, attributes: true, characterData: true});
    w.stop = () => obs.disconnect();
    document.addEventListener(eventName, () => { if (w.input === null) w.input = performance.now(); },
                              {capture: true, once: true});
}"""


def _watch_result(page, quiet_ms: int = 400, timeout: float = 30.0) -> dict:
    """Wait for the figure to change and then stay still for ``quiet_ms``; return the latencies."""
    page.wait_for_function("() => window.__labkitWatch.first !== null", timeout=timeout * 1000)
    while True:
        last = page.evaluate("() => window.__labkitWatch.last")
        page.wait_for_timeout(quiet_ms)
        if page.evaluate("() => window.__labkitWatch.last") == last:
            break
    w = page.evaluate("() => { const w = window.__labkitWatch; w.stop(); "
                      "return {input: w.input, first: w.first, last: w.last}; }")
    return {"first_ms": w["first"] - w["input"], "last_ms": w["last"] - w["input"]}


def select_option(page, root, control_class: str, **option) -> dict:
    """Pick an option of the ``<select>`` in ``.<control_class>``; return the figure latency (ms)."""
    root.evaluate(_WATCH_JS, "change")
    root.locator(f".{control_class} select").select_option(**option)
    return _watch_result(page)


def drag_slider(page, root, control_class: str, fraction: float) -> dict:
    """Drag the slider handle in ``.<control_class>`` to ``fraction`` (0–1) of its track and release.

    Returns the latency from the mouse release to the first and last change of the figure (ms).
    """
    track = root.locator(f".{control_class} .noUi-target").bounding_box()
    handle = root.locator(f".{control_class} .noUi-handle").bounding_box()
    x0, y = handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2
    x1 = track["x"] + fraction * track["width"]
    root.evaluate(_WATCH_JS, "pointerup")
    page.mouse.move(x0, y)
    page.mouse.down()
    page.mouse.move(x1, y, steps=8)
    page.mouse.up()
    return _watch_result(page)


def shutdown_kernels(server: LabServer) -> None:
    """Delete every session and kernel the tests started (REST API), so the next test starts clean."""
    def call(method, path):
        request = urllib.request.Request(f"{server.url}{path}?token={server.token}", method=method)
        with urllib.request.urlopen(request, timeout=30) as response:
            body = response.read()
        return json.loads(body) if body else None

    for session in call("GET", "/api/sessions") or []:
        call("DELETE", f"/api/sessions/{session['id']}")
    for kernel in call("GET", "/api/kernels") or []:
        call("DELETE", f"/api/kernels/{kernel['id']}")


def screenshot(page, name: str) -> Path | None:
    """Save a full-page screenshot to ``$LABKIT_SCREENSHOTS/<name>.png`` when that variable is set."""
    folder = os.environ.get("LABKIT_SCREENSHOTS")
    if not folder:
        return None
    path = Path(folder) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    return path
