"""Drive JupyterLab 4 in a real Chromium through Playwright (sync API): start, open, run, wait, inspect.

Every page helper takes a Playwright ``page`` already pointed at a lab started by ``start_lab`` (the
``lab_server`` fixture of ``conftest.py``, or ``benchmarks/widget_latency.py``). Selectors rely on
JupyterLab 4's stable class names and on the CSS classes labkit puts on each widget control
(``labkit-<explorer>-<control>``, see ``labkit/widgets/base.py``). What a learner would see as wrong
(a warning under a cell, an error in the log console, the news pop-up) has a helper here; what is
wrong in a widget is checked by ``widget_checks.py``.
"""
from __future__ import annotations

import ast
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

NOTEBOOK = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook"
STATUS_BAR = "#jp-main-statusbar"
KERNEL_STATES = ("Idle", "Busy", "Starting", "Restarting", "Connecting", "Initializing", "Unknown",
                 "Dead", "Terminating", "Autorestarting", "Reconnecting", "Disconnected", "No Kernel")
# An error a learner sees under a cell: a traceback, an exception line on stderr, a widget that failed
# to render. (A notebook may *print* "ValueError: ..." on stdout to show what a wrong call does.)
ERROR_PATTERN = re.compile(r"Traceback|^[A-Za-z_.]*(Error|Exception)\b|Error displaying widget", re.M)
# A warning a learner sees under a cell: anything on stderr, or Python's warning format
# ("file.py:12: UserWarning: ...") wherever it was printed.
WARNING_PATTERN = re.compile(r":\d+: [A-Za-z]*Warning: ")
STDERR_MIME = "application/vnd.jupyter.stderr"
EXCEPTION_LINE = re.compile(r"^[A-Za-z_.]*(Error|Exception|Warning)\b:?")
NEWS_POPUP = "official Jupyter news"
SERVER_START_TIMEOUT_S = 120

# Lines printed at the end of the pytest run (latencies etc.), filled by `report`.
REPORT: list[str] = []


def report(line: str) -> None:
    """Print a measurement now and repeat it in the end-of-run summary (never asserted on)."""
    print(line)
    REPORT.append(line)


@dataclass
class LabServer:
    """A running ``jupyter lab``: where it listens, its token, the folder it serves, its log, the
    folder holding its kernels' connection files, and its process."""

    url: str
    token: str
    root: Path
    log: Path
    runtime: Path | None = None
    process: subprocess.Popen | None = None

    def notebook_url(self, name: str, workspace: str) -> str:
        # A fresh workspace per test: JupyterLab restores no tabs from an earlier test.
        return f"{self.url}/lab/workspaces/{workspace}/tree/{name}?token={self.token}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _write_lab_home(home: Path, user_settings: dict, overrides: Path | None) -> tuple[dict, list[str]]:
    """Temporary Jupyter folders, a python3 kernelspec running this interpreter, the user settings and
    the lab's own ``overrides.json`` (as ``make lab`` installs it); returns the env and extra flags."""
    kernel = home / "path" / "kernels" / "python3"
    kernel.mkdir(parents=True)
    (kernel / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (ipykernel)", "language": "python"}))
    for name, values in user_settings.items():
        target = home / "settings" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(values))
    flags = []
    if overrides is not None:
        (home / "app-settings").mkdir()
        shutil.copy(overrides, home / "app-settings" / "overrides.json")
        flags.append(f"--LabApp.app_settings_dir={home / 'app-settings'}")
    env = dict(os.environ)
    env.update({
        "JUPYTER_PATH": str(home / "path"), "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_DATA_DIR": str(home / "data"), "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
        "IPYTHONDIR": str(home / "ipython"), "MPLCONFIGDIR": str(home / "matplotlib"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        "PYTHONUNBUFFERED": "1",
    })
    env.pop("JUPYTER_PREFER_ENV_PATH", None)
    return env, flags


def _wait_until_up(server: LabServer) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with {server.process.returncode}:\n{server.log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(f"{server.url}/api/status?token={server.token}", timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"jupyter lab did not answer in {SERVER_START_TIMEOUT_S} s:\n{server.log.read_text()[-4000:]}")


def start_lab(base: Path, notebooks: Path, *, fixtures: Path | None = None, user_settings: dict | None = None,
              overrides: Path | None = None) -> LabServer:
    """``python -m jupyterlab`` from this interpreter on 127.0.0.1, a free port and a random token,
    serving a temporary copy of ``notebooks`` (plus ``fixtures`` as ``_browser_fixtures/``) under
    ``base``, so the repository is never written. Config, data, runtime, settings and workspace
    folders live under ``base`` too. Returns once the server answers; stop it with ``stop_lab``."""
    root = base / "notebooks"
    shutil.copytree(notebooks, root, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    if fixtures is not None and fixtures.is_dir():
        shutil.copytree(fixtures, root / "_browser_fixtures")
    env, flags = _write_lab_home(base / "home", user_settings or {}, overrides)
    port, token = _free_port(), secrets.token_hex(16)
    log = base / "jupyterlab.log"
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ip=127.0.0.1",
               f"--port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
               f"--ServerApp.root_dir={root}", *flags]
    with open(log, "wb") as sink:
        process = subprocess.Popen(command, cwd=root, env=env, stdout=sink, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    server = LabServer(url=f"http://127.0.0.1:{port}", token=token, root=root, log=log,
                       runtime=base / "home" / "runtime", process=process)
    try:
        _wait_until_up(server)
    except BaseException:
        stop_lab(server)
        raise
    return server


def stop_lab(server: LabServer) -> None:
    """Shut down every kernel, then the server's whole process group (SIGTERM, then SIGKILL)."""
    try:
        shutdown_kernels(server)
    except OSError:
        pass
    process = server.process
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


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


def wait_kernel_idle(page, timeout: float = 600.0) -> float:
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


def error_outputs(page) -> list[str]:
    """Outputs that show an error: any output with a traceback or a failed widget, and stderr outputs
    (where Jupyter renders exceptions) with an exception line."""
    outputs = page.eval_on_selector_all(f"{NOTEBOOK} .jp-OutputArea-output", """els => els.map(e =>
        ({mime: e.getAttribute('data-mime-type') || '', text: e.innerText}))""")
    return [o["text"] for o in outputs
            if re.search(r"Traceback|Error displaying widget", o["text"])
            or (o["mime"] == STDERR_MIME and ERROR_PATTERN.search(o["text"]))]


def _has_error_output(page) -> bool:
    return bool(error_outputs(page))


def assert_no_errors(page) -> None:
    """Fail if any cell output shows a traceback or an exception (including widget render errors)."""
    bad = error_outputs(page)
    assert not bad, "cell outputs contain errors:\n" + "\n---\n".join(text[:2000] for text in bad)


def visible_warnings(page) -> list[str]:
    """Every output a learner sees as a warning: a stderr stream (the pink box) or text naming a
    ``...Warning``, as ``"cell N: <text>"``. (tqdm draws its bars as widgets, not on stderr.)"""
    outputs = page.eval_on_selector_all(
        f"{NOTEBOOK} .jp-Cell", """cells => cells.flatMap((cell, i) =>
            Array.from(cell.querySelectorAll('.jp-OutputArea-output')).map(o =>
                ({cell: i, mime: o.getAttribute('data-mime-type') || '', text: o.innerText})))""")
    return [f"cell {o['cell']}: {o['text'][:500]}" for o in outputs
            if o["mime"] == STDERR_MIME or WARNING_PATTERN.search(o["text"])]


def assert_no_warnings(page) -> None:
    bad = visible_warnings(page)
    assert not bad, "warnings are visible under cells:\n" + "\n---\n".join(bad)


def news_popups(page) -> list[str]:
    """The text of any notification asking about Jupyter news (the lab's settings must disable it)."""
    texts = page.eval_on_selector_all(".Toastify__toast, .jp-Notification-Toast, .jp-toast-message",
                                      "els => els.map(e => e.innerText)")
    return [text for text in texts if NEWS_POPUP.lower() in text.lower()]


def _toggle_log_console(page) -> None:
    page.click(".lm-MenuBar-item:has(.lm-MenuBar-itemLabel:text-is('View'))")
    page.click(".lm-Menu-item:has(.lm-Menu-itemLabel:text-is('Show Log Console'))")


def log_console_messages(page) -> list[str]:
    """What JupyterLab's log console holds for the current notebook: output that no cell shows, e.g.
    a traceback raised in a widget callback (plotly, ipywidgets) after a slider moved. Opens the
    console (View → Show Log Console), reads every entry of level warning and above (its default
    filter), and closes it again. Entries are ``"<level>: <text>"``, a traceback shortened to its
    exception line and the last frame that names a file."""
    _toggle_log_console(page)
    try:
        page.wait_for_selector(".jp-LogConsolePanel", state="visible", timeout=10_000)
        page.wait_for_timeout(300)
        entries = page.eval_on_selector_all(
            ".jp-LogConsolePanel .jp-Scrolling:not(.lm-mod-hidden) .jp-OutputArea-child",
            """els => els.map(e => {
                const prompt = e.querySelector('[data-log-level]');
                const body = e.querySelector('.jp-OutputArea-output');
                return [prompt ? prompt.getAttribute('data-log-level') : '?', (body || e).innerText]; })""")
    finally:
        _toggle_log_console(page)
    return [f"{level}: {_short_traceback(text)}" for level, text in entries]


def _short_traceback(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    exception = [line for line in lines if EXCEPTION_LINE.match(line)]
    frames = [line for line in lines if line.startswith("File ")]
    if not exception:
        return text[:600]
    return exception[-1][:400] + (f" (last frame: {frames[-1][:200]})" if frames else "")


def assert_no_log_console_messages(page) -> None:
    messages = log_console_messages(page)
    assert not messages, "JupyterLab's log console shows:\n" + "\n---\n".join(messages)


def explorer(page, name: str, index: int = 0):
    """The root element of the ``index``-th explorer named ``name`` (CSS class ``labkit-<name>``)."""
    locator = page.locator(f"{NOTEBOOK} .labkit-{name}").nth(index)
    locator.wait_for(state="visible", timeout=60_000)
    return locator


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


def notebook_kernel_id(server: LabServer, name: str) -> str:
    """The id of the kernel running notebook ``name`` (path relative to the server root)."""
    url = f"{server.url}/api/sessions?token={server.token}"
    with urllib.request.urlopen(url, timeout=30) as response:
        sessions = json.loads(response.read())
    ids = [s["kernel"]["id"] for s in sessions if s.get("path") == name and s.get("kernel")]
    if len(ids) != 1:
        raise RuntimeError(f"expected one kernel for {name}, the server has sessions {sessions}")
    return ids[0]


class KernelProbe:
    """A second client of a notebook's kernel (like ``jupyter console --existing``) that evaluates
    expressions silently: as ``user_expressions`` of an empty, silent execute request, so nothing
    reaches a cell, the history or the log console. Used to read the Python side of a widget."""

    def __init__(self, server: LabServer, name: str):
        from jupyter_client import BlockingKernelClient

        connection = server.runtime / f"kernel-{notebook_kernel_id(server, name)}.json"
        self.client = BlockingKernelClient()
        self.client.load_connection_file(str(connection))
        self.client.start_channels()
        self.client.wait_for_ready(timeout=60)

    def eval(self, expression: str, timeout: float = 60.0):
        """The value of ``expression`` in the notebook's namespace; it must evaluate to a ``repr``
        that ``ast.literal_eval`` reads back (numbers, strings, lists, dicts)."""
        msg_id = self.client.execute("", silent=True, store_history=False, user_expressions={"value": expression})
        deadline = time.monotonic() + timeout
        while True:
            reply = self.client.get_shell_msg(timeout=max(deadline - time.monotonic(), 0.1))
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        result = reply["content"]["user_expressions"]["value"]
        if result["status"] != "ok":
            raise RuntimeError(f"{expression[:200]} raised {result.get('ename')}: {result.get('evalue')}")
        return ast.literal_eval(result["data"]["text/plain"])

    def run(self, source: str, result: str = "result"):
        """Execute ``source`` in a fresh namespace (the notebook's stays untouched) and return the
        value it leaves in ``result``."""
        return self.eval(f"(lambda ns: (exec({source!r}, ns), ns[{result!r}])[1])({{}})")

    def close(self) -> None:
        self.client.stop_channels()


def screenshot(page, name: str) -> Path | None:
    """Save a full-page screenshot to ``$LABKIT_ARTIFACTS/<name>.png`` when that variable is set (the
    widget tests photograph each widget themselves: ``widget_checks.check_widget``)."""
    folder = os.environ.get("LABKIT_ARTIFACTS") or os.environ.get("LABKIT_SCREENSHOTS")
    if not folder:
        return None
    path = Path(folder) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    return path
