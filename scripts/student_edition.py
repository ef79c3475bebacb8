#!/usr/bin/env python3
"""Build the student edition: the same notebooks with every exercise's solution replaced by a stub.

    python scripts/student_edition.py notebooks student/notebooks     (what `make student` runs)
    python scripts/student_edition.py notebooks/00_why_compress.ipynb /tmp/out

Each code cell tagged ``solution`` becomes

    <the lines of the solution that end in "# keep", marker removed: the exercise's given data>
    # YOUR CODE HERE (<title>)
    # replace each ... with your answer
    fp32_bytes = ...

with one ``name = ...`` line for every name the solution assigns and the checker cell after it
reads; the title is the nearest markdown heading above the solution (e.g. "Exercise 1 — ...").
The checker cell is left alone: a checker given ``...`` prints "Not attempted yet" instead of
failing (``labkit.exercises.checker``), so Run All goes through the whole student notebook, and the
learner's answer is checked as soon as the ``...`` is replaced. Outputs, execution counts and widget
state are stripped from every copy.
"""
from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))
from strip_outputs import strip_notebook  # noqa: E402  (a sibling script, not a package)

SOLUTION_TAG = "solution"
KEEP_MARKER = re.compile(r"\s*#\s*keep\s*$")
STUB_LINE = "# YOUR CODE HERE"
PLACEHOLDER = "..."


def is_solution(cell) -> bool:
    return cell.cell_type == "code" and SOLUTION_TAG in cell.metadata.get("tags", [])


def exercise_title(cells, index: int) -> str:
    """A short title for the exercise whose solution is ``cells[index]``: the nearest markdown
    heading above it (the solution's own comments could give the answer away)."""
    for cell in reversed(cells[:index]):
        if cell.cell_type == "markdown":
            for line in reversed(cell.source.splitlines()):  # the heading closest to the solution
                if line.lstrip().startswith("#"):
                    return line.strip().lstrip("#").strip()
    return f"cell {index}"


def assigned_names(source: str) -> list[str]:
    """Names a cell binds at its top level (assignments, ``def``, ``class``, ``for``/``with``
    targets, imports), in order of first appearance; [] if the cell is not valid Python."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    names: list[str] = []
    for statement in tree.body:
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            found = [statement.name]
        elif isinstance(statement, (ast.Import, ast.ImportFrom)):
            found = [(alias.asname or alias.name).split(".")[0] for alias in statement.names]
        else:
            found = [node.id for node in ast.walk(statement) if isinstance(node, ast.Name)
                     and isinstance(node.ctx, ast.Store)]
        names += [name for name in found if name not in names]
    return names


def read_names(source: str) -> list[str]:
    """Names a cell reads, in order of first appearance; [] if the cell is not valid Python."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    loads = sorted((node.lineno, node.col_offset, node.id) for node in ast.walk(tree)
                   if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load))
    return list(dict.fromkeys(name for *_, name in loads))


def kept_lines(source: str) -> list[str]:
    return [KEEP_MARKER.sub("", line) for line in source.splitlines() if KEEP_MARKER.search(line)]


def answer_names(source: str, checker_source: str) -> list[str]:
    """The answers: names the solution assigns (not in its kept lines) that the checker cell reads,
    in the order the checker reads them."""
    given = set(assigned_names("\n".join(kept_lines(source))))
    answers = set(assigned_names(source)) - given
    return [name for name in read_names(checker_source) if name in answers]


def stub_source(source: str, title: str, checker_source: str = "") -> str:
    """The stub that replaces a solution: kept lines, the placeholder comment, ``name = ...`` lines."""
    title = title if title.lower().startswith("exercise") else f"Exercise: {title}"
    answers = [f"{name} = {PLACEHOLDER}" for name in answer_names(source, checker_source)]
    header = [f"{STUB_LINE} ({title})"] + (["# replace each ... with your answer"] if answers else [])
    return "\n".join(kept_lines(source) + header + answers)


def checker_cell(cells, index: int):
    """The first code cell after ``cells[index]`` (the exercise's checker), or None."""
    return next((cell for cell in cells[index + 1:] if cell.cell_type == "code"), None)


def make_student_notebook(nb) -> int:
    """Replace every solution cell of ``nb`` in place by its stub and strip outputs; return the count."""
    count = 0
    for index, cell in enumerate(nb.cells):
        if is_solution(cell):
            checker = checker_cell(nb.cells, index)
            cell.source = stub_source(cell.source, exercise_title(nb.cells, index),
                                      checker.source if checker is not None else "")
            count += 1
    strip_notebook(nb)
    return count


def build(src: Path, dst: Path) -> list[tuple[Path, int]]:
    """Write the student edition of ``src`` (a notebook or a folder of them) into the folder ``dst``."""
    sources = sorted(src.glob("*.ipynb")) if src.is_dir() else [src]
    if not sources:
        raise SystemExit(f"no notebooks found in {src}")
    dst.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sources:
        nb = nbformat.read(path, as_version=4)
        count = make_student_notebook(nb)
        target = dst / path.name
        tmp = target.with_name(target.name + ".tmp")
        nbformat.write(nb, tmp)
        tmp.replace(target)
        written.append((target, count))
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path, help="a notebook, or a folder of notebooks")
    parser.add_argument("dst", type=Path, help="the folder to write the student edition into")
    args = parser.parse_args(argv)
    if not args.src.exists():
        parser.error(f"src {args.src} does not exist")
    if args.src.resolve() == args.dst.resolve() or (args.src.is_file() and args.src.parent.resolve() == args.dst.resolve()):
        parser.error("dst must differ from src: the student edition would overwrite the solutions")
    written = build(args.src, args.dst)
    for target, count in written:
        print(f"{target}: {count} exercise(s) stubbed")
    total = sum(count for _, count in written)
    print(f"student edition: {len(written)} notebook(s), {total} exercise(s) stubbed, in {args.dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
