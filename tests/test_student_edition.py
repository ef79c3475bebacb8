"""scripts/student_edition.py and scripts/strip_outputs.py on small hand-made notebooks."""
import importlib.util
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def load_script(name):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


student = load_script("student_edition")
strip = load_script("strip_outputs")


def executed_notebook():
    """A notebook as it looks after running: outputs, counts, timing metadata, widget state."""
    nb = new_notebook(cells=[
        new_markdown_cell("# Toy chapter\nGoals..."),
        new_code_cell("dataset = 'digits'", metadata={"tags": ["parameters"]}, execution_count=1),
        new_markdown_cell("## 4. A section\nSome text.\n### Exercise 1 — bytes of a layer\nCompute..."),
        new_code_cell("import math  # keep\nn = 784 * 300 + 300\nanswer = n * 4",
                      metadata={"tags": ["solution"], "execution": {"iopub.status.busy": "x"}},
                      execution_count=2),
        new_code_cell("ch00.check_fp32_bytes(answer)", execution_count=3,
                      outputs=[new_output("stream", name="stdout", text="✅ right\n")]),
        new_markdown_cell("## Exercise 2: a \"quoted\" title"),
        new_code_cell("macs = 1", metadata={"tags": ["solution", "other"]}),
        new_code_cell("ch00.check_conv_macs(macs)"),
    ])
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    return nb


def test_stub_replaces_solutions_keeps_marked_lines_and_strips_outputs():
    nb = executed_notebook()
    assert student.make_student_notebook(nb) == 2
    first, second = nb.cells[3].source, nb.cells[6].source
    assert first == "import math\n# YOUR CODE HERE\nraise NotImplementedError('Exercise 1 — bytes of a layer')"
    assert "784" not in first and "answer" not in first
    assert second.splitlines()[-1] == "raise NotImplementedError('Exercise 2: a \"quoted\" title')"
    assert nb.cells[4].source == "ch00.check_fp32_bytes(answer)"  # checkers untouched
    assert nb.cells[3].metadata["tags"] == ["solution"]            # tags kept
    assert strip.unstripped_reasons(nb) == []


def test_stub_raises_not_implemented_error():
    nb = executed_notebook()
    student.make_student_notebook(nb)
    namespace = {}
    with pytest.raises(NotImplementedError, match="Exercise 1"):
        exec(compile(nb.cells[3].source, "<stub>", "exec"), namespace)
    assert "math" in namespace  # the kept import ran before the raise


def test_title_falls_back_to_cell_index_without_a_heading():
    nb = new_notebook(cells=[new_code_cell("x = 1", metadata={"tags": ["solution"]})])
    student.make_student_notebook(nb)
    assert nb.cells[0].source.endswith("raise NotImplementedError('Exercise: cell 0')")


def test_strip_is_idempotent_and_writes_only_when_changed(tmp_path):
    path = tmp_path / "nb.ipynb"
    nbformat.write(executed_notebook(), path)
    reasons = strip.unstripped_reasons(nbformat.read(path, as_version=4))
    assert "widget state in notebook metadata" in reasons and "cell 4 has outputs" in reasons
    assert strip.strip_file(path, check=True) is True   # --check reports but does not write
    assert strip.unstripped_reasons(nbformat.read(path, as_version=4)) == reasons
    assert strip.strip_file(path) is True
    stripped = path.read_text()
    mtime = path.stat().st_mtime_ns
    assert strip.strip_file(path) is False
    assert path.read_text() == stripped and path.stat().st_mtime_ns == mtime
    nb = nbformat.read(path, as_version=4)
    assert strip.unstripped_reasons(nb) == []
    assert nb.cells[3].metadata == {"tags": ["solution"]}
    assert nb.cells[3].source.startswith("import math  # keep")  # solutions untouched by stripping


def test_command_lines(tmp_path):
    src, dst = tmp_path / "notebooks", tmp_path / "student"
    src.mkdir()
    nbformat.write(executed_notebook(), src / "00_toy.ipynb")
    run = subprocess.run([sys.executable, str(SCRIPTS / "student_edition.py"), str(src), str(dst)],
                         capture_output=True, text=True, check=True)
    assert "1 notebook(s), 2 exercise(s) stubbed" in run.stdout
    out = nbformat.read(dst / "00_toy.ipynb", as_version=4)
    assert "NotImplementedError" in out.cells[3].source
    assert "784" in (src / "00_toy.ipynb").read_text()  # the source is never modified

    refused = subprocess.run([sys.executable, str(SCRIPTS / "student_edition.py"), str(src), str(src)],
                             capture_output=True, text=True)
    assert refused.returncode != 0 and "dst must differ" in refused.stderr

    check = subprocess.run([sys.executable, str(SCRIPTS / "strip_outputs.py"), "--check",
                            str(src / "00_toy.ipynb")], capture_output=True, text=True)
    assert check.returncode == 1 and "would strip" in check.stdout
    subprocess.run([sys.executable, str(SCRIPTS / "strip_outputs.py"), str(src / "00_toy.ipynb")], check=True)
    again = subprocess.run([sys.executable, str(SCRIPTS / "strip_outputs.py"), "--check",
                            str(src / "00_toy.ipynb")], capture_output=True, text=True)
    assert again.returncode == 0 and "0 of 1" in again.stdout
