"""Fixtures for the real-browser tests: a throw-away JupyterLab server and a headless Debian Chromium.

- ``lab_server`` (session): ``python -m jupyterlab`` from this interpreter's environment on
  127.0.0.1, a free port and a random token, serving a temporary copy of ``notebooks/`` (plus
  ``tests/browser/fixtures/`` as ``_browser_fixtures/``) so the repository is never written. Its
  config, data, runtime, settings and workspace folders are temporary too, with a ``python3``
  kernelspec that runs this interpreter. Killed (process group) at the end of the session.
- ``browser`` (session): a Playwright persistent context on ``/usr/bin/chromium``
  (never a browser downloaded by ``playwright install``).
- ``page`` (per test): a fresh tab; on failure a screenshot goes to the pytest temp folder (and to
  ``$LABKIT_SCREENSHOTS`` when set); afterwards every kernel the test started is shut down.
- ``run_notebook(name)``: opens a notebook, runs all cells, waits for idle, asserts no errors and
  returns the page.

Chromium missing → the tests FAIL saying that ``make test`` installs it, unless
``LABKIT_SKIP_BROWSER=1`` is set, which skips every browser test explicitly — on a developer's
machine only: where ``CI`` is set (CI services set ``CI=true``) that request is a usage error.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import browser_helpers as lab

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
CHROMIUM = Path(os.environ.get("LABKIT_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SERVER_START_TIMEOUT_S = 120
# JupyterLab user settings for reproducible tests: every cell rendered (no windowing), no news.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"checkForUpdates": False,
                                                                         "fetchNews": "false"},
}


def _skip_requested() -> bool:
    """``LABKIT_SKIP_BROWSER=1``, refused under CI: a skipped harness there would pass unseen."""
    if os.environ.get("LABKIT_SKIP_BROWSER") != "1":
        return False
    if os.environ.get("CI", "").lower() not in ("", "0", "false"):
        raise pytest.UsageError("LABKIT_SKIP_BROWSER=1 is not allowed when CI is set: the real-browser "
                                "tests must run in CI (`make test` installs Chromium); unset it")
    return True


def pytest_collection_modifyitems(items):
    skip = _skip_requested()
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.browser)
            if skip:
                item.add_marker(pytest.mark.skip(reason="LABKIT_SKIP_BROWSER=1: real-browser tests skipped"))


def pytest_terminal_summary(terminalreporter):
    if lab.REPORT:
        terminalreporter.section("labkit browser measurements")
        for line in lab.REPORT:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(f"{CHROMIUM} not found: the browser tests need Debian's Chromium, which `make test` "
                    "installs (`make chromium`); set LABKIT_SKIP_BROWSER=1 to skip them explicitly",
                    pytrace=False)
    return str(CHROMIUM)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _write_lab_home(home: Path) -> dict:
    """Temporary Jupyter folders, the python3 kernelspec and the settings; returns the server's env."""
    kernel = home / "path" / "kernels" / "python3"
    kernel.mkdir(parents=True)
    (kernel / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (ipykernel)", "language": "python"}))
    for name, values in LAB_SETTINGS.items():
        target = home / "settings" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(values))
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
    return env


def _wait_until_up(url: str, token: str, process, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"jupyter lab did not answer in {SERVER_START_TIMEOUT_S} s:\n{log.read_text()[-4000:]}")


def _stop(process) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@pytest.fixture(scope="session")
def lab_server(tmp_path_factory, chromium_path) -> lab.LabServer:
    base = tmp_path_factory.mktemp("jupyterlab")
    root = base / "notebooks"
    shutil.copytree(NOTEBOOKS, root, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    if FIXTURES.is_dir():
        shutil.copytree(FIXTURES, root / "_browser_fixtures")
    env = _write_lab_home(base / "home")
    port, token = _free_port(), secrets.token_hex(16)
    log = base / "jupyterlab.log"
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ip=127.0.0.1",
               f"--port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
               f"--ServerApp.root_dir={root}"]
    with open(log, "wb") as sink:
        process = subprocess.Popen(command, cwd=root, env=env, stdout=sink, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    server = lab.LabServer(url=f"http://127.0.0.1:{port}", token=token, root=root, log=log)
    try:
        _wait_until_up(server.url, token, process, log)
        yield server
    finally:
        try:
            lab.shutdown_kernels(server)
        except OSError:
            pass
        _stop(process)


@pytest.fixture(scope="session")
def browser(tmp_path_factory, chromium_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            user_data_dir=str(tmp_path_factory.mktemp("chromium-profile")), executable_path=chromium_path,
            headless=True, args=CHROMIUM_ARGS, viewport={"width": 1400, "height": 1000})
        context.set_default_timeout(60_000)
        try:
            yield context
        finally:
            context.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.labkit_failed = report.failed


@pytest.fixture
def page(request, browser, lab_server, tmp_path):
    page = browser.new_page()
    console_errors = []
    page.on("pageerror", lambda error: console_errors.append(str(error)))
    page.labkit_console_errors = console_errors
    yield page
    if getattr(request.node, "labkit_failed", False):
        shots = [tmp_path / "failure.png"]
        if os.environ.get("LABKIT_SCREENSHOTS"):
            shots.append(Path(os.environ["LABKIT_SCREENSHOTS"]) / f"{request.node.name}-failure.png")
        for shot in shots:
            shot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(shot), full_page=True)
        print(f"screenshot of the failure: {shots[-1]}\nserver log: {lab_server.log}\n"
              f"page errors: {console_errors}")
    page.close()
    lab.shutdown_kernels(lab_server)


@pytest.fixture
def run_notebook(page, lab_server):
    """``run_notebook("01_x.ipynb")``: open it, Run All Cells, wait for idle, assert no error outputs."""

    def run(name: str, timeout: float = 300.0):
        lab.open_notebook(page, lab_server, name)
        lab.run_all_cells(page)
        seconds = lab.wait_kernel_idle(page, timeout=timeout)
        lab.report(f"{name}: Run All Cells → idle in {seconds:.1f} s")
        lab.assert_no_errors(page)
        return page

    return run

