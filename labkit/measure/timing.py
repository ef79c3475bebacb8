"""Latency of a model, and of several models measured together (for benchmarks and notebooks —
never for timed asserts in tests).

Explained in notebooks/00_why_compress.ipynb and notebooks/09_structured_pruning.ipynb.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from labkit.measure.compute import eval_no_grad
from labkit.validate import require_choice, require_float, require_int, require_module


def latency(model: nn.Module, example_input: torch.Tensor, *, warmup: int = 5, repeats: int = 30,
            threads: int | None = None) -> dict:
    """Wall-clock time of ``model(example_input)``: ``median_ms``, ``p10_ms``, ``p90_ms``, ``repeats``.

    Runs ``warmup`` untimed calls, then ``repeats`` timed ones (``time.perf_counter``), in eval mode
    under ``no_grad``; the model's modes are restored afterwards. ``threads`` sets
    ``torch.set_num_threads`` for the measurement only. An ``example_input`` the model cannot take
    (wrong shape or dtype) raises ``ValueError`` naming it. Timings depend on the machine and its
    load: use them in notebooks and ``benchmarks/``, never in a test assert.
    Explained in notebooks/00_why_compress.ipynb.
    """
    require_module("model", model)
    if not isinstance(example_input, torch.Tensor):
        raise TypeError(f"example_input must be a torch.Tensor, got {type(example_input).__name__}")
    warmup = require_int("warmup", warmup, 0)
    repeats = require_int("repeats", repeats, 1)
    if threads is not None:
        threads = require_int("threads", threads, 1)
    with _torch_threads(threads):
        times_ms = _call_times(model, example_input, warmup, repeats)
    p10, median, p90 = np.percentile(times_ms, [10, 50, 90])
    return {"median_ms": float(median), "p10_ms": float(p10), "p90_ms": float(p90), "repeats": repeats}


def _call_times(model: nn.Module, example_input: torch.Tensor, warmup: int, repeats: int) -> list[float]:
    """Milliseconds of ``repeats`` timed calls after ``warmup`` untimed ones (eval mode, no_grad)."""
    times_ms = []
    try:
        with eval_no_grad(model):
            for _ in range(warmup):
                model(example_input)
            for _ in range(repeats):
                start = time.perf_counter()
                model(example_input)
                times_ms.append((time.perf_counter() - start) * 1e3)
    except (RuntimeError, IndexError) as error:  # a shape or dtype the model's layers refuse
        raise ValueError(f"example_input (shape {list(example_input.shape)}, {example_input.dtype}) does not fit "
                         f"the model: {str(error).splitlines()[0]}") from error
    return times_ms


def compare_latency(models: Mapping, example_input: torch.Tensor, *, rounds: int = 10, repeats: int = 3,
                    warmup: int = 2, reference: str | None = None, threads: int | None = None,
                    noise_limit: float = 0.25) -> dict:
    """Latency of several models measured *together*: interleaved rounds, each model's spread, speed-ups.

    ``models`` maps names to modules that all take ``example_input``. After ``warmup`` untimed calls
    each, every one of ``rounds`` rounds times ``repeats`` calls of each model, in an order rotated
    from round to round — so a busy moment of the machine hits every model alike instead of the one
    that happened to be measured then. Per model: ``median_ms``, ``p10_ms``, ``p90_ms`` over its
    ``rounds·repeats`` calls, ``spread = (p90 − p10)/median``, and against ``reference`` (default: the
    first model) the per-round speed-ups ``t_ref/t_model`` (round medians), summarised as ``speedup``
    (their median) and ``speedup_p10``/``speedup_p90``. ``noisy`` is True when the model's spread or
    the relative width ``(speedup_p90 − speedup_p10)/speedup`` exceeds ``noise_limit``: report such a
    number as a noisy measurement, not as a fact. Returns ``{name: {...}}`` in the order of ``models``.
    Never assert on timings in tests. Explained in notebooks/09_structured_pruning.ipynb.
    """
    if not isinstance(models, Mapping) or not models:
        raise TypeError("models must be a non-empty dict {name: nn.Module}")
    for model in models.values():
        require_module("model", model)
    if not isinstance(example_input, torch.Tensor):
        raise TypeError(f"example_input must be a torch.Tensor, got {type(example_input).__name__}")
    rounds, repeats = require_int("rounds", rounds, 2), require_int("repeats", repeats, 1)
    warmup = require_int("warmup", warmup, 0)
    names = list(models)
    reference = names[0] if reference is None else require_choice("reference", reference, tuple(names))
    noise_limit = require_float("noise_limit", noise_limit, 0.0, low_open=True)
    times = {name: [] for name in names}
    with _torch_threads(None if threads is None else require_int("threads", threads, 1)):
        for name in names:
            _call_times(models[name], example_input, warmup, 0)
        for r in range(rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:   # rotate who goes first
                times[name].append(_call_times(models[name], example_input, 0, repeats))
    return {name: _latency_summary(times[name], times[reference], noise_limit) for name in names}


def _latency_summary(rounds_ms: list, reference_ms: list, noise_limit: float) -> dict:
    """Percentiles of one model's calls and its per-round speed-ups over the reference's rounds."""
    flat = np.concatenate(rounds_ms)
    p10, median, p90 = np.percentile(flat, [10, 50, 90])
    speedups = np.array([np.median(r) for r in reference_ms]) / np.array([np.median(r) for r in rounds_ms])
    s10, speedup, s90 = np.percentile(speedups, [10, 50, 90])
    spread = float((p90 - p10) / median)
    return {"median_ms": float(median), "p10_ms": float(p10), "p90_ms": float(p90), "spread": spread,
            "speedup": float(speedup), "speedup_p10": float(s10), "speedup_p90": float(s90),
            "noisy": bool(spread > noise_limit or (s90 - s10) / speedup > noise_limit), "calls": int(flat.size)}


@contextmanager
def _torch_threads(threads: int | None):
    """Temporarily ``torch.set_num_threads(threads)`` (no-op for None)."""
    if threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
