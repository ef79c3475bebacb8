"""Fixtures for the real-browser tests: a throw-away JupyterLab server and a headless Debian Chromium.

- ``lab_server`` (session): ``browser_helpers.start_lab`` — ``python -m jupyterlab`` from this
  interpreter's environment on 127.0.0.1, a free port and a random token, serving a temporary copy of
  ``notebooks/`` (plus ``tests/browser/fixtures/`` as ``_browser_fixtures/``) so the repository is never
  written. Its config, data, runtime, settings and workspace folders are temporary too, with a
  ``python3`` kernelspec that runs this interpreter, and it reads the lab's own settings overrides
  (``binder/overrides.json``: no news pop-up), as ``make lab`` and Binder do. Stopped at the end.
- ``browser`` (session): a Playwright persistent context on ``/usr/bin/chromium``
  (never a browser downloaded by ``playwright install``).
- ``artifacts`` (session): the folder for screenshots (``$LABKIT_ARTIFACTS``, else
  ``browser-artifacts`` under pytest's temporary folder); printed at the end of the run.
- ``page`` (per test): a fresh tab; on failure a screenshot goes to ``artifacts``; afterwards every
  kernel the test started is shut down.
- ``run_notebook(name)``: opens a notebook, runs all cells, waits for idle, asserts no error, no
  visible warning and no news pop-up, and returns the page.
- ``check_widget(case)``: ``widget_checks.check_widget`` with these fixtures (one call per widget test).

Chromium missing → the tests FAIL saying that ``make test`` installs it, unless
``LABKIT_SKIP_BROWSER=1`` is set, which skips every browser test explicitly — on a developer's
machine only: where ``CI`` is set (CI services set ``CI=true``) that request is a usage error.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

import browser_helpers as lab
import widget_checks

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
LAB_OVERRIDES = ROOT / "binder" / "overrides.json"   # the lab's own settings (make lab, Binder)
CHROMIUM = Path(os.environ.get("LABKIT_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# User settings for reproducible tests only: every cell rendered (no windowing), so that every
# output is in the DOM. The news pop-up is NOT switched off here: the lab's overrides must do it.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}
_ARTIFACTS: list[Path] = []


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
    if _ARTIFACTS and _ARTIFACTS[0].is_dir():
        count = sum(1 for _ in _ARTIFACTS[0].rglob("*.png"))
        terminalreporter.write_line(f"labkit browser artefacts: {count} screenshot(s) in {_ARTIFACTS[0]}")


@pytest.fixture(scope="session")
def chromium_path() -> str:
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(f"{CHROMIUM} not found: the browser tests need Debian's Chromium, which `make test` "
                    "installs (`make chromium`); set LABKIT_SKIP_BROWSER=1 to skip them explicitly",
                    pytrace=False)
    return str(CHROMIUM)


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("LABKIT_ARTIFACTS") or tmp_path_factory.getbasetemp() / "browser-artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    _ARTIFACTS[:] = [folder]
    return folder


@pytest.fixture(scope="session")
def lab_server(tmp_path_factory, chromium_path) -> lab.LabServer:
    server = lab.start_lab(tmp_path_factory.mktemp("jupyterlab"), NOTEBOOKS, fixtures=FIXTURES,
                           user_settings=LAB_SETTINGS, overrides=LAB_OVERRIDES)
    try:
        yield server
    finally:
        lab.stop_lab(server)


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
def page(request, browser, lab_server, artifacts):
    page = browser.new_page()
    console_errors = []
    page.on("pageerror", lambda error: console_errors.append(str(error)))
    page.labkit_console_errors = console_errors
    yield page
    if getattr(request.node, "labkit_failed", False):
        shot = artifacts / f"{request.node.name}-failure.png"
        page.screenshot(path=str(shot), full_page=True)
        print(f"screenshot of the failure: {shot}\nserver log: {lab_server.log}\n"
              f"page errors: {console_errors}")
    page.close()
    lab.shutdown_kernels(lab_server)


@pytest.fixture
def run_notebook(page, lab_server):
    """``run_notebook("01_x.ipynb")``: open it, Run All Cells, wait for idle; assert no error output,
    no visible warning and no news pop-up."""

    def run(name: str, timeout: float = 600.0):
        lab.open_notebook(page, lab_server, name)
        lab.run_all_cells(page)
        seconds = lab.wait_kernel_idle(page, timeout=timeout)
        lab.report(f"{name}: Run All Cells → idle in {seconds:.1f} s")
        lab.assert_no_errors(page)
        lab.assert_no_warnings(page)
        assert not lab.news_popups(page), f"JupyterLab asks about news: {lab.news_popups(page)}"
        return page

    return run


@pytest.fixture
def check_widget(run_notebook, lab_server, artifacts):
    """``check_widget(case)``: run ``case.notebook``, then ``widget_checks.check_widget`` (every move,
    every check, screenshots before/after each move); returns its ``WidgetRun``."""

    def check(case: widget_checks.WidgetCase) -> widget_checks.WidgetRun:
        page = run_notebook(case.notebook)
        return widget_checks.check_widget(page, lab_server, case, artifacts)

    return check

