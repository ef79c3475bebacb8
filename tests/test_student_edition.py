"""scripts/student_edition.py and scripts/strip_outputs.py on small hand-made notebooks."""
import copy
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
                      outputs=[new_output("stream", name="stdout", text="✓ right\n")]),
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
    assert first == ("import math\n# YOUR CODE HERE (Exercise 1 — bytes of a layer)\n"
                     "# replace each ... with your answer\nanswer = ...")
    assert "784" not in first and "n = " not in first        # no line of the solution leaks
    assert second == ("# YOUR CODE HERE (Exercise 2: a \"quoted\" title)\n"
                      "# replace each ... with your answer\nmacs = ...")
    assert nb.cells[4].source == "ch00.check_fp32_bytes(answer)"  # checkers untouched
    assert nb.cells[3].metadata["tags"] == ["solution"]            # tags kept
    assert strip.unstripped_reasons(nb) == []


def test_placeholders_are_the_answers_the_checker_reads_not_the_given_data():
    solution = ("x = torch.tensor([1.0, 2.0])  # keep\nscale = x.max() / 127\ncodes, extra = (x / scale).round(), 1\n"
                "def helper():\n    return 0")
    checker = "ch01.check_quantized_vector(codes, x * scale)\nprint(helper())"
    assert student.answer_names(solution, checker) == ["codes", "scale", "helper"]   # not x: it is given
    stub = student.stub_source(solution, "Exercise 2 — codes", checker)
    assert stub.splitlines() == ["x = torch.tensor([1.0, 2.0])", "# YOUR CODE HERE (Exercise 2 — codes)",
                                 "# replace each ... with your answer", "codes = ...", "scale = ...",
                                 "helper = ..."]
    assert student.stub_source("y = 1", "a title") == "# YOUR CODE HERE (Exercise: a title)"


def test_a_stubbed_exercise_runs_says_not_attempted_and_still_fails_a_wrong_answer(capsys):
    from labkit.exercises import ExerciseError, ch00

    nb = executed_notebook()
    nb.cells[4].source = "line = ch00.check_fp32_bytes(answer)"
    student.make_student_notebook(nb)
    namespace = {"ch00": ch00}
    for cell in (nb.cells[3], nb.cells[4]):                 # the stub, then its checker: no exception
        exec(compile(cell.source, "<cell>", "exec"), namespace)
    assert "math" in namespace and namespace["answer"] is ...   # the kept import ran
    assert namespace["line"].startswith("Not attempted yet") and "Not attempted yet" in capsys.readouterr().out
    namespace["answer"] = 266_610                           # forgot the 4 bytes of a float32
    with pytest.raises(ExerciseError, match="expected 1,066,440"):
        exec(compile(nb.cells[4].source, "<cell>", "exec"), namespace)
    namespace["answer"] = 266_610 * 4
    exec(compile(nb.cells[4].source, "<cell>", "exec"), namespace)
    assert namespace["line"].startswith("✓")


def test_title_falls_back_to_cell_index_without_a_heading():
    nb = new_notebook(cells=[new_code_cell("x = 1", metadata={"tags": ["solution"]}), new_code_cell("check(x)")])
    student.make_student_notebook(nb)
    assert nb.cells[0].source.splitlines()[0] == "# YOUR CODE HERE (Exercise: cell 0)"
    assert nb.cells[0].source.splitlines()[-1] == "x = ..."


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
    assert out.cells[3].source.endswith("answer = ...")
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


def git(repo, *args) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


def test_git_filter_hides_autosaved_outputs_and_never_commits_them(tmp_path):
    """The clean filter `make setup` configures: outputs JupyterLab's autosave writes into a notebook
    never show in `git diff` and never reach a commit; a real edit still does, stripped. (`git status`
    lists a notebook whose file size changed until it is `git add`ed: git skips the filter there.)"""
    root = Path(__file__).resolve().parents[1]
    assert "filter=labkit-strip" in (root / ".gitattributes").read_text()
    assert "scripts/strip_outputs.py --clean" in (root / "Makefile").read_text()
    repo = tmp_path / "repo"
    (repo / "notebooks").mkdir(parents=True)
    git(repo, "init", "-q")
    git(repo, "config", "user.email", "t@example.org")
    git(repo, "config", "user.name", "t")
    git(repo, "config", "filter.labkit-strip.clean", f"{sys.executable} {SCRIPTS / 'strip_outputs.py'} --clean")
    git(repo, "config", "filter.labkit-strip.smudge", "cat")
    (repo / ".gitattributes").write_text((root / ".gitattributes").read_text())
    path = repo / "notebooks" / "00_toy.ipynb"
    executed = executed_notebook()
    clean = copy.deepcopy(executed)
    strip.strip_notebook(clean)
    nbformat.write(clean, path)
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "clean notebook")
    nbformat.write(executed, path)                             # what autosave writes: outputs, counts, widgets
    assert "✓ right" in path.read_text()
    assert git(repo, "diff") == ""                             # nothing to review, nothing to commit
    git(repo, "add", "notebooks")                              # git status lists a file whose size changed
    assert git(repo, "status", "--porcelain") == ""            # until it is added: then it is clean
    edited = copy.deepcopy(executed)
    edited.cells[0].source = "# Toy chapter, revised"
    nbformat.write(edited, path)
    assert git(repo, "status", "--porcelain").split() == ["M", "notebooks/00_toy.ipynb"]
    git(repo, "commit", "-q", "-am", "edit")
    committed = nbformat.reads(git(repo, "show", "HEAD:notebooks/00_toy.ipynb"), as_version=4)
    assert committed.cells[0].source == "# Toy chapter, revised" and strip.unstripped_reasons(committed) == []
    assert "✓ right" in path.read_text()                       # the learner's file keeps its outputs


def test_clean_filter_passes_anything_else_through_unchanged():
    assert strip.clean_text("not json {") == "not json {"
    nb = executed_notebook()
    strip.strip_notebook(nb)
    text = nbformat.writes(nb)
    assert strip.clean_text(text) == text                      # nothing to strip: byte for byte
    assert strip.unstripped_reasons(nbformat.reads(strip.clean_text(nbformat.writes(executed_notebook())),
                                                   as_version=4)) == []
