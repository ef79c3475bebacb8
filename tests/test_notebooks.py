"""The notebooks: committed clean, structured as CONTRIBUTING.md says, and runnable top to bottom.

Execution uses nbclient with a ``python3`` kernel that runs *this* interpreter (a kernelspec written
to a temporary JUPYTER_PATH, so a user-wide ``python3`` kernel can never be picked up instead), with
the notebooks folder as working directory. Each notebook is its own test; the measured wall time is
printed, attached to the JUnit report (``record_property``) and kept in the pytest cache under
``labkit/notebook_wall_time_s``. The executed copies are written, without widget state (plotly's
FigureWidget puts its 5 MB plotly.js bundle there), to ``executed/`` in ``$LABKIT_ARTIFACTS`` or
pytest's temporary folder.

Memory: DESIGN.md's budget is 1.2 GB *above a bare ``import torch``* in the same environment (the CUDA
build of torch maps ~300 MB more than the CPU build). A kernel that only imports torch is measured
once per session; each notebook's peak RSS is reported beside it and bounded above it.

The student edition (``scripts/student_edition.py``) must run top to bottom too: its stubs give
``...`` for every answer and each checker then says "Not attempted yet" instead of failing.
"""
import copy
import importlib
import importlib.util
import json
import os
import re
import sys
import time
import warnings
from pathlib import Path

import nbformat
import pytest

from labkit.exercises import PASS_MARK

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
IDS = [path.stem for path in NOTEBOOKS]
CELL_TIMEOUT_S = 300
BUDGET_S = 90  # CONTRIBUTING.md: each notebook <= 90 s on digits, 2 cores (reported, never asserted)
RSS_LIMIT_MB = 1200  # DESIGN.md: a notebook kernel stays under 1.2 GB RSS above a bare `import torch`
EXECUTED_LIMIT_BYTES = 3_000_000  # an executed copy holds outputs and figures, never a JavaScript bundle
# Appended to the executed copy (never to the committed notebook): the kernel's peak resident set.
# VmHWM, not getrusage's ru_maxrss: Linux keeps ru_maxrss across execve, so a kernel started by
# this (large) pytest process would report pytest's peak instead of its own.
# It also prints the kernel's CPU time (its own and its finished children's, user + system): on a
# shared machine the wall time says little, the CPU time says what the notebook costs.
PEAK_RSS_CELL = ("import os as _os, re as _re\n"
                 "_status = open('/proc/self/status').read()\n"
                 "print('labkit-peak-rss-kb', _re.search(r'VmHWM:\\s*(\\d+) kB', _status).group(1))\n"
                 "print('labkit-cpu-s', sum(_os.times()[:4]))")
MEASURED: dict[str, tuple[float, float, float, float]] = {}  # notebook -> (wall s, CPU s, peak RSS MB, MB above torch)
BASELINE: dict[str, float] = {}  # "torch": peak RSS MB of a kernel that only imported torch
CHECKER_CALL = re.compile(r"\b(?:labkit\.exercises\.)?(ch\d\d)\.(check_\w+)\s*\(")


def load_script(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


strip = load_script("strip_outputs")
student = load_script("student_edition")


def read(path):
    return nbformat.read(path, as_version=4)


def tags(cell):
    return cell.metadata.get("tags", [])


def test_there_are_notebooks():
    assert NOTEBOOKS, f"no NN_topic.ipynb notebooks in {NOTEBOOK_DIR}"


def test_committed_notebooks_have_no_outputs():
    offenders = {path.name: strip.unstripped_reasons(read(path)) for path in NOTEBOOKS}
    offenders = {name: reasons for name, reasons in offenders.items() if reasons}
    assert not offenders, ("notebooks must be committed without outputs; run `make strip`:\n"
                           + "\n".join(f"  {name}: {', '.join(reasons[:5])}" for name, reasons in offenders.items()))


# -- structure ---------------------------------------------------------------------------------

@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_first_cell_states_goals_run_time_and_results(path):
    first = read(path).cells[0]
    assert first.cell_type == "markdown", "the first cell must be markdown (title, goals, run time, results)"
    text = first.source.lower()
    assert first.source.lstrip().startswith("# "), "the first cell must start with a '# Title'"
    assert "goal" in text, "the first cell must list the learning goals"
    assert "expected run time" in text, "the first cell must say 'Expected run time'"
    assert "expected result" in text, "the first cell must say 'Expected results'"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_second_cell_is_the_parameters_cell(path):
    second = read(path).cells[1]
    assert second.cell_type == "code" and "parameters" in tags(second), \
        "the second cell must be a code cell tagged 'parameters' (papermill convention)"
    assert "seed" in second.source, "the parameters cell must fix the seed"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_exercises_are_solutions_followed_by_checkers(path):
    cells = read(path).cells
    chapter = f"ch{path.name[:2]}"
    solutions = [i for i, cell in enumerate(cells) if cell.cell_type == "code" and "solution" in tags(cell)]
    assert len(solutions) >= 2, f"at least two exercises (cells tagged 'solution'), found {len(solutions)}"
    module = importlib.import_module(f"labkit.exercises.{chapter}")
    for index in solutions:
        following = [cell for cell in cells[index + 1:] if cell.cell_type == "code"][:1]
        assert following, f"solution cell {index} is not followed by a checker cell"
        calls = CHECKER_CALL.findall(following[0].source)
        assert calls, (f"the code cell after solution cell {index} must call a checker "
                       f"`{chapter}.check_...(...)`, found:\n{following[0].source}")
        for module_name, function in calls:
            assert module_name == chapter, f"{path.name} must use labkit.exercises.{chapter}, not {module_name}"
            assert callable(getattr(module, function, None)), f"labkit.exercises.{chapter} has no {function}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_student_edition_stubs_every_solution(path):
    nb = read(path)
    edition = copy.deepcopy(nb)
    count = student.make_student_notebook(edition)
    assert count >= 2
    for index, (original, stub) in enumerate(zip(nb.cells, edition.cells)):
        if "solution" not in tags(original):
            assert stub.source == original.source
            continue
        assert stub.source.splitlines()[-1].endswith(" = ..."), (
            f"cell {index}: the checker after this solution reads none of the names it assigns, so the "
            f"student's stub cannot give it `...`:\n{original.source}")
        leaked = [line for line in original.source.splitlines()
                  if line.strip() and not student.KEEP_MARKER.search(line) and line in stub.source.splitlines()]
        assert not leaked, f"solution lines left in the student edition: {leaked}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_student_edition_cells_read_nothing_only_a_solution_defined(path):
    """After a stub, no cell but the checker may read an answer (it is `...` there) or a name that only
    the removed solution defined: the student's Run All would stop there. (Static: names a cell
    reads that no earlier kept code binds; a cell that binds a name itself is trusted.)"""
    cells = read(path).cells
    edition = copy.deepcopy(read(path))
    student.make_student_notebook(edition)
    bound, only_in_solutions, answers, problems = set(), set(), set(), []
    for index, (original, cell) in enumerate(zip(cells, edition.cells)):
        if cell.cell_type != "code":
            continue
        if "solution" in tags(original):
            kept = set(student.assigned_names(cell.source))
            answers |= {name for name in kept if cell.source.count(f"{name} = ...")}
            only_in_solutions |= set(student.assigned_names(original.source)) - kept - bound
            bound |= kept
            continue
        is_checker = bool(CHECKER_CALL.search(cell.source))
        reads = set(student.read_names(cell.source)) - set(student.assigned_names(cell.source))
        if not is_checker:
            problems += [f"cell {index} reads `{name}`, which the student edition leaves as `...`"
                         for name in sorted(reads & answers)]
        problems += [f"cell {index} reads `{name}`, which only a solution defines"
                     for name in sorted(reads & (only_in_solutions - bound))]
        bound |= set(student.assigned_names(cell.source))
        answers -= set(student.assigned_names(cell.source))
    assert not problems, "the student edition would stop here:\n" + "\n".join(problems)


# -- execution ---------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def kernel_name(tmp_path_factory):
    """A ``python3`` kernelspec running this interpreter, first on JUPYTER_PATH for the session."""
    root = tmp_path_factory.mktemp("jupyter")
    spec_dir = root / "kernels" / "python3"
    spec_dir.mkdir(parents=True)
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Python 3 (labkit tests)", "language": "python"}
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    saved = os.environ.get("JUPYTER_PATH")
    os.environ["JUPYTER_PATH"] = os.pathsep.join([str(root)] + ([saved] if saved else []))
    yield "python3"
    if saved is None:
        os.environ.pop("JUPYTER_PATH", None)
    else:
        os.environ["JUPYTER_PATH"] = saved


@pytest.fixture(scope="session")
def executed_dir(tmp_path_factory):
    """Where executed copies go: ``$LABKIT_ARTIFACTS/executed`` or pytest's temporary folder."""
    folder = Path(os.environ.get("LABKIT_ARTIFACTS") or tmp_path_factory.getbasetemp()) / "executed"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def torch_baseline_mb(kernel_name):
    """Peak RSS (MB) of a kernel of this environment that only ran ``import torch``: the floor the
    notebooks' memory budget sits on (measured once per session, printed in the summary)."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import torch"),
                                         nbformat.v4.new_code_cell(PEAK_RSS_CELL)])
    execute(nb, kernel_name)
    BASELINE["torch"] = peak_rss_mb(nb)
    return BASELINE["torch"]


def execute(nb, kernel_name):
    """Run ``nb`` in place in a fresh kernel, cwd = notebooks/; return the wall time in seconds.
    Widget state is not stored in the notebook: plotly's FigureWidget would put its 5 MB plotly.js
    bundle there."""
    from nbclient import NotebookClient

    client = NotebookClient(nb, kernel_name=kernel_name, timeout=CELL_TIMEOUT_S, startup_timeout=180,
                            store_widget_state=False, resources={"metadata": {"path": str(NOTEBOOK_DIR)}})
    start = time.perf_counter()
    client.execute()
    return time.perf_counter() - start


def peak_rss_mb(nb):
    """The kernel's peak RSS in MB, printed by the PEAK_RSS_CELL appended to ``nb`` (Linux: kB)."""
    text = "".join(o.get("text", "") for o in nb.cells[-1].get("outputs", []) if o.get("output_type") == "stream")
    match = re.search(r"labkit-peak-rss-kb (\d+)", text)
    assert match, f"the peak-RSS cell printed nothing usable: {text!r}"
    return int(match.group(1)) / 1024


def kernel_cpu_s(nb) -> float:
    """The kernel's CPU seconds (user + system, children included), printed by PEAK_RSS_CELL."""
    text = "".join(o.get("text", "") for o in nb.cells[-1].get("outputs", []) if o.get("output_type") == "stream")
    return float(re.search(r"labkit-cpu-s ([\d.]+)", text).group(1))


def failing_cell(nb):
    """(index, source, error output) of the first cell whose outputs hold an error, else None."""
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                return index, cell.source, output
    return None


def run_or_fail(nb, kernel_name, name: str) -> float:
    """Execute ``nb``; on an error, fail naming the cell, its source and the error. Returns wall s."""
    from nbclient.exceptions import CellExecutionError

    try:
        return execute(nb, kernel_name)
    except CellExecutionError as err:
        where = failing_cell(nb)
        header = f"{name} failed at cell {where[0]}:\n{where[1]}\n" if where else f"{name} failed:\n"
        pytest.fail(header + "-" * 60 + f"\n{err}", pytrace=False)


def stream_lines(nb, text: str) -> list[str]:
    return [line for cell in nb.cells for o in cell.get("outputs", []) if o.get("output_type") == "stream"
            for line in o.get("text", "").splitlines() if text in line]


def save_executed(nb, folder: Path, name: str) -> int:
    """Write the executed copy (widget state stripped, outputs kept); return its size in bytes."""
    for key in strip.VOLATILE_NOTEBOOK_METADATA:
        nb.metadata.pop(key, None)
    target = folder / name
    nbformat.write(nb, target)
    return target.stat().st_size


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_executes_top_to_bottom(path, kernel_name, torch_baseline_mb, executed_dir, record_property,
                                         request):
    nb = read(path)
    nb.cells.append(nbformat.v4.new_code_cell(PEAK_RSS_CELL))
    wall = run_or_fail(nb, kernel_name, path.name)
    rss, cpu = peak_rss_mb(nb), kernel_cpu_s(nb)
    above = rss - torch_baseline_mb
    size = save_executed(nb, executed_dir, path.name)
    print(f"{path.name}: executed in {wall:.1f} s ({cpu:.1f} s of kernel CPU), kernel peak RSS {rss:.0f} MB "
          f"({above:.0f} MB above a bare `import torch` kernel, {torch_baseline_mb:.0f} MB); executed copy "
          f"{size / 1e6:.2f} MB")
    record_property("wall_time_s", round(wall, 1))
    record_property("kernel_cpu_s", round(cpu, 1))
    record_property("peak_rss_mb", round(rss))
    record_property("peak_rss_above_torch_mb", round(above))
    cache = getattr(request.config, "cache", None)   # None under `-p no:cacheprovider`
    if cache is not None:
        times = cache.get("labkit/notebook_wall_time_s", {})
        times[path.name] = round(wall, 1)
        cache.set("labkit/notebook_wall_time_s", times)
    MEASURED[path.name] = (wall, cpu, rss, above)
    if wall > BUDGET_S:
        warnings.warn(f"{path.name} took {wall:.0f} s, over the {BUDGET_S} s budget of CONTRIBUTING.md")
    errors = [(i, o) for i, cell in enumerate(nb.cells) for o in cell.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors, f"cells with error outputs: {[i for i, _ in errors]}"
    assert len(stream_lines(nb, PASS_MARK)) >= 2, f"every exercise checker should print a {PASS_MARK} line"
    assert above < RSS_LIMIT_MB, (f"{path.name}: the kernel peaked at {rss:.0f} MB, {above:.0f} MB above a bare "
                                  f"`import torch` ({torch_baseline_mb:.0f} MB): over the {RSS_LIMIT_MB} MB budget")
    assert size < EXECUTED_LIMIT_BYTES, f"the executed copy of {path.name} is {size:,} bytes"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_student_edition_runs_top_to_bottom(path, kernel_name):
    """Run All on the student edition: no error anywhere, and every checker says "Not attempted yet"."""
    nb = read(path)
    count = student.make_student_notebook(nb)
    run_or_fail(nb, kernel_name, f"the student edition of {path.name}")
    assert len(stream_lines(nb, "Not attempted yet")) == count, stream_lines(nb, "Not attempted yet")
    assert not stream_lines(nb, PASS_MARK), "a stub passed its checker"
