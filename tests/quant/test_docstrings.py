"""Every "Explained in notebooks/…" line under labkit/quant points at a notebook that exists and,
for the non-uniform quantizers, at the one that actually teaches them."""
import inspect
import json
import re
from pathlib import Path

import pytest

import labkit.quant
from labkit.quant import nonuniform

ROOT = Path(__file__).resolve().parents[2]
POINTER = re.compile(r"Explained in\s+notebooks/(\S+?\.ipynb)")


def _notebook_text(name: str) -> str:
    cells = json.loads((ROOT / "notebooks" / name).read_text(encoding="utf-8"))["cells"]
    return "\n".join("".join(cell["source"]) for cell in cells)


@pytest.mark.parametrize("path", sorted(Path(labkit.quant.__file__).parent.glob("*.py")), ids=lambda p: p.name)
def test_every_pointer_names_an_existing_notebook(path):
    for name in POINTER.findall(path.read_text(encoding="utf-8")):
        assert (ROOT / "notebooks" / name).is_file(), f"{path.name} points at missing notebooks/{name}"


def test_nonuniform_quantizers_point_at_the_notebook_that_uses_them():
    for name in nonuniform.__all__:
        pointers = POINTER.findall(inspect.getdoc(getattr(nonuniform, name)))
        assert len(pointers) == 1, name
        mentioned = re.search(rf"\b{name}\b", _notebook_text(pointers[0]))
        # quantization_error is not called by name: it is what compare_quantizers reports
        assert mentioned or name == "quantization_error", f"{name}: notebooks/{pointers[0]} never uses it"
