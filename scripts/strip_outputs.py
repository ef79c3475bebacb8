#!/usr/bin/env python3
"""Remove outputs, execution counts and widget state from notebooks, so they are committed clean.

    python scripts/strip_outputs.py notebooks/*.ipynb          # rewrite the ones that changed
    python scripts/strip_outputs.py --check notebooks/*.ipynb  # exit 1 if any would change
    python scripts/strip_outputs.py --clean < nb.ipynb > out   # a git "clean" filter: stdin → stdout

Idempotent: a notebook is rewritten only if stripping changes it. Cell tags (``parameters``,
``solution``) and the rest of the metadata are kept; only what execution adds is removed.

The git filter (``make setup`` configures it in the checkout; ``.gitattributes`` applies it to
``notebooks/*.ipynb``) means JupyterLab's autosave, which writes outputs into the notebook you have
open, never shows up in ``git status``/``git diff`` and is never committed; the file on disk keeps
its outputs. Text that is not a notebook passes through unchanged, so the filter cannot break git.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

# Cell metadata that execution or the Jupyter UI adds and that has no place in git.
VOLATILE_CELL_METADATA = ("execution", "collapsed", "scrolled", "ExecuteTime")
# Notebook metadata holding the state of every widget that was displayed (can be megabytes).
VOLATILE_NOTEBOOK_METADATA = ("widgets",)


def strip_notebook(nb) -> bool:
    """Strip ``nb`` (a ``nbformat.NotebookNode``) in place; return True if anything was removed."""
    changed = False
    for key in VOLATILE_NOTEBOOK_METADATA:
        if key in nb.metadata:
            del nb.metadata[key]
            changed = True
    for cell in nb.cells:
        for key in VOLATILE_CELL_METADATA:
            if key in cell.metadata:
                del cell.metadata[key]
                changed = True
        if cell.cell_type == "code":
            if cell.get("outputs"):
                cell.outputs = []
                changed = True
            if cell.get("execution_count") is not None:
                cell.execution_count = None
                changed = True
    return changed


def unstripped_reasons(nb) -> list[str]:
    """What still needs stripping in ``nb`` (empty when it is clean); used by the tests."""
    reasons = []
    if any(key in nb.metadata for key in VOLATILE_NOTEBOOK_METADATA):
        reasons.append("widget state in notebook metadata")
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and cell.get("outputs"):
            reasons.append(f"cell {index} has outputs")
        if cell.cell_type == "code" and cell.get("execution_count") is not None:
            reasons.append(f"cell {index} has an execution count")
        if any(key in cell.metadata for key in VOLATILE_CELL_METADATA):
            reasons.append(f"cell {index} has execution metadata")
    return reasons


def strip_file(path: Path, check: bool = False) -> bool:
    """Strip the notebook at ``path``; write it back only if it changed. Return whether it changed."""
    text = path.read_text(encoding="utf-8")
    nb = nbformat.reads(text, as_version=nbformat.NO_CONVERT)
    if not strip_notebook(nb):
        return False
    if not check:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(notebook_text(nb), encoding="utf-8")
        tmp.replace(path)
    return True


def notebook_text(nb) -> str:
    """``nb`` as ``nbformat.write`` puts it in a file (ending in a newline, as JupyterLab saves it)."""
    text = nbformat.writes(nb)
    return text if text.endswith("\n") else text + "\n"


def clean_text(text: str) -> str:
    """The stripped notebook for git's clean filter: ``text`` itself when there is nothing to strip
    (byte for byte, so git sees no change) or when it is not a readable notebook."""
    try:
        nb = nbformat.reads(text, as_version=nbformat.NO_CONVERT)
    except Exception:   # a half-written file, or not a notebook at all: let git store it as it is
        return text
    return notebook_text(nb) if strip_notebook(nb) else text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--check", action="store_true", help="report, do not write; exit 1 if any is dirty")
    parser.add_argument("--clean", action="store_true", help="git clean filter: read stdin, write stdout")
    args = parser.parse_args(argv)
    if args.clean:
        sys.stdout.reconfigure(encoding="utf-8", newline="")
        sys.stdout.write(clean_text(sys.stdin.buffer.read().decode("utf-8")))
        return 0
    if not args.notebooks:
        parser.error("give the notebooks to strip (or --clean for the git filter)")
    # An unmatched shell glob arrives literally (`notebooks/*.ipynb` when there are none yet).
    args.notebooks = [path for path in args.notebooks if not ("*" in str(path) and not path.exists())]
    changed = [path for path in args.notebooks if strip_file(path, check=args.check)]
    verb = "would strip" if args.check else "stripped"
    for path in changed:
        print(f"{verb} {path}")
    print(f"{len(changed)} of {len(args.notebooks)} notebook(s) {verb}; the rest were already clean.")
    return 1 if (args.check and changed) else 0


if __name__ == "__main__":
    sys.exit(main())
