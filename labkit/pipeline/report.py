"""Reading results: the Pareto front of a trade-off, records for the explorer, the step-by-step size table.

A compressed model is worth considering only if no other is at least as good on every axis and better
on one: smaller file *and* higher accuracy. Those are the **Pareto-optimal** points; together they
draw the trade-off curve. With points sorted by size (ascending, ties by accuracy descending), a point
is on the front exactly when its accuracy beats every smaller point's — one pass, ``O(n log n)``.

Explained in notebooks/14_pipeline_tradeoffs_export.ipynb
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from labkit.validate import require_choice

__all__ = ["AXES", "pareto_front", "record", "step_table"]

AXES = ("bytes", "latency_ms", "macs")


def pareto_front(points: Sequence[Mapping], x: str = "bytes", y: str = "accuracy") -> list[int]:
    """Indices of the points that no other point dominates (``x`` no larger and ``y`` no smaller, one of
    them strictly), ordered by increasing ``x``. Points whose ``x`` or ``y`` is missing or not finite are
    ignored. Explained in notebooks/14_pipeline_tradeoffs_export.ipynb
    """
    if not isinstance(points, Sequence) or isinstance(points, (str, bytes)):
        raise TypeError(f"points must be a sequence of records, got {type(points).__name__}")
    for key, name in ((x, "x"), (y, "y")):
        if not isinstance(key, str):
            raise TypeError(f"{name} must be the name of a field, got {key!r}")
    usable = [i for i, p in enumerate(points) if _finite(p.get(x)) and _finite(p.get(y))]
    order = sorted(usable, key=lambda i: (points[i][x], -points[i][y]))
    front, best = [], -math.inf
    for i in order:
        if points[i][y] > best:
            front.append(i)
            best = points[i][y]
    return front


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def record(result, label: str, model: str, family: str = "your runs") -> dict:
    """A ``PipelineResult`` as the plain record sweeps store (``label``, ``model``, ``family`` and
    ``summary()``), for ``TradeoffExplorer.add_run``. Explained in notebooks/14_pipeline_tradeoffs_export.ipynb
    """
    summary = getattr(result, "summary", None)
    if not callable(summary):
        raise TypeError(f"result must be a PipelineResult (from Pipeline.run), got {type(result).__name__}")
    for name, value in (("label", label), ("model", model), ("family", family)):
        if not isinstance(value, str) or not value:
            raise TypeError(f"{name} must be a non-empty str, got {value!r}")
    return {**summary(), "label": label, "model": model, "family": family}


def step_table(rows: Sequence[Mapping], baseline_bytes: int | None = None) -> str:
    """The rows of ``Pipeline.run(..., measure_steps=True)`` as a text table: step, stage, bytes on disk
    (the compressed file after that step), ratio to the first row, accuracy (%) and what
    ``sys.getsizeof`` says about the same model. Explained in notebooks/14_pipeline_tradeoffs_export.ipynb
    """
    if not rows or "bytes" not in rows[0]:
        raise ValueError("rows must come from Pipeline.run(..., measure_steps=True) (each with 'bytes')")
    base = baseline_bytes or rows[0]["bytes"]
    width = max(len(r["step"]) for r in rows)
    lines = [f"{'step':<{width}}  {'stage':<10} {'file bytes':>11} {'× smaller':>9} {'accuracy':>9} "
             f"{'sys.getsizeof':>13}"]
    for r in rows:
        size = "—" if r["bytes"] is None else f"{r['bytes']:,}"
        ratio = "—" if r["bytes"] is None else f"{base / r['bytes']:.1f}"
        acc = "—" if r["accuracy"] is None else f"{100 * r['accuracy']:.2f} %"
        lines.append(f"{r['step']:<{width}}  {r['stage']:<10} {size:>11} {ratio:>9} {acc:>9} {r['getsizeof']:>11} B")
    return "\n".join(lines)


def check_axis(x: str) -> str:
    """``x`` if it is one of ``AXES``."""
    return require_choice("x", x, AXES)
