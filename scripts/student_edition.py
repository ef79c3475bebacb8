#!/usr/bin/env python3
"""Build the student edition: the same notebooks with every exercise's solution replaced by a stub.

    python scripts/student_edition.py notebooks student/notebooks     (what `make student` runs)
    python scripts/student_edition.py notebooks/00_why_compress.ipynb /tmp/out

Each code cell tagged ``solution`` becomes

    <the lines of the solution that end in "# keep", marker removed>
    # YOUR CODE HERE
    raise NotImplementedError("Exercise: <title>")

where the title is the nearest markdown heading above the solution (e.g. "Exercise 1 — ...").
The checker cell that follows is left alone, so the learner's answer is checked as soon as the stub
is filled in. Outputs, execution counts and widget state are stripped from every copy.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))
from strip_outputs import strip_notebook  # noqa: E402  (a sibling script, not a package)

SOLUTION_TAG = "solution"
KEEP_MARKER = re.compile(r"\s*#\s*keep\s*$")
STUB_LINE = "# YOUR CODE HERE"


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


def stub_source(source: str, title: str) -> str:
    """The stub that replaces a solution: kept lines, the placeholder comment and the raise."""
    kept = [KEEP_MARKER.sub("", line) for line in source.splitlines() if KEEP_MARKER.search(line)]
    message = title if title.lower().startswith("exercise") else f"Exercise: {title}"
    return "\n".join(kept + [STUB_LINE, f"raise NotImplementedError({message!r})"])


def make_student_notebook(nb) -> int:
    """Replace every solution cell of ``nb`` in place by its stub and strip outputs; return the count."""
    count = 0
    for index, cell in enumerate(nb.cells):
        if is_solution(cell):
            cell.source = stub_source(cell.source, exercise_title(nb.cells, index))
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
