"""Argument checks shared by every public labkit function.

Each check raises a ``TypeError`` (wrong kind of value) or ``ValueError`` (right kind, wrong value)
whose message names the argument and the accepted range, so that a learner who passes ``bits=0``
reads ``bits must be an integer in [1, 16], got 0`` instead of a stack trace from deep inside torch.
Only the standard library is imported at module level, so every module (the kernels too) may import
it; ``require_float_tensor`` imports torch when it is called.
"""
from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Iterable


def require_int(name: str, value, low: int | None = None, high: int | None = None) -> int:
    """Return ``value`` as an int if it is an integer in [low, high] (either bound may be None)."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an integer{_range_text(low, high)}, got {type(value).__name__} {value!r}")
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name} must be an integer{_range_text(low, high)}, got {value}")
    return value


def require_float(name: str, value, low: float | None = None, high: float | None = None,
                  *, low_open: bool = False, high_open: bool = False) -> float:
    """Return ``value`` as a finite float in the interval given (bounds closed unless *_open)."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number{_interval_text(low, high, low_open, high_open)}, "
                        f"got {type(value).__name__} {value!r}")
    value = float(value)
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if not math.isfinite(value) or too_low or too_high:
        raise ValueError(f"{name} must be a finite number{_interval_text(low, high, low_open, high_open)}, got {value}")
    return value


def require_pair(name: str, value, low: int | None = None, high: int | None = None) -> tuple[int, int]:
    """``(h, w)`` from an int or a pair of ints (a kernel size, stride, padding), each in [low, high]."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
        return require_int(name, value[0], low, high), require_int(name, value[1], low, high)
    value = require_int(name, value, low, high)
    return value, value


def require_bool(name: str, value) -> bool:
    """Return ``value`` if it is ``True`` or ``False`` (not 0/1, not a string)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
    return value


def require_choice(name: str, value, choices: Iterable):
    """Return ``value`` if it is one of ``choices``; otherwise list the valid ones."""
    choices = tuple(choices)
    if value not in choices:
        valid = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {valid}; got {value!r}")
    return value


def require_float_tensor(name: str, x, *, allow_empty: bool = True):
    """Return ``x`` if it is a finite floating-point ``torch.Tensor`` (non-empty unless allowed)."""
    import torch

    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if not allow_empty and x.numel() == 0:
        raise ValueError(f"{name} must not be empty, got shape {tuple(x.shape)}")
    if x.is_meta:
        raise ValueError(f"{name} is on the meta device: it has a shape {tuple(x.shape)} but no values")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} must contain only finite values (found NaN or Inf)")
    return x


def require_finite(what: str, values) -> None:
    """Raise ``ValueError`` naming ``what`` and the count if the numpy array ``values`` holds a NaN or Inf
    (weights of a diverged training run: a histogram or a statistic of them would be meaningless)."""
    import numpy as np
    bad = int(values.size - np.isfinite(values).sum())
    if bad:
        raise ValueError(f"{what} holds {bad} NaN or Inf value(s) of {values.size}; "
                         "finite weights are needed (did training diverge?)")


def nonfinite_parameters(model) -> dict[str, int]:
    """``{parameter name: number of NaN/Inf values}`` for every floating-point parameter of the
    ``nn.Module`` ``model`` that holds one (empty when all are finite): what a refusal names."""
    import torch
    counts = {name: int((~torch.isfinite(p.detach())).sum()) for name, p in model.named_parameters()
              if p.is_floating_point()}
    return {name: n for name, n in counts.items() if n}


def require_module(name: str, model, *, dtypes: Iterable | None = None, allow_meta: bool = False):
    """Return ``model`` if it is a ``torch.nn.Module`` whose tensors hold data, in an accepted dtype.

    A model moved to the ``meta`` device has shapes but no values, so every number computed from it
    would be made up; it is refused (``ValueError``) unless ``allow_meta`` (a count of parameters
    needs only shapes). With ``dtypes`` (e.g. ``(torch.float32,)``),
    every floating-point parameter and buffer must have one of them (``TypeError`` otherwise), so a
    float64 or float16 model gets a sentence naming the dtype instead of torch's "Input type (float)
    and bias type (double) should be the same" from the middle of a forward pass.
    """
    import torch

    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"{name} must be a torch.nn.Module, got {type(model).__name__}")
    tensors = [*model.parameters(), *model.buffers()]
    if not allow_meta and any(t.is_meta for t in tensors):
        raise ValueError(f"{name} is on the meta device: its tensors have shapes but no values; build it "
                         f"on the CPU (or load its weights with load_state_dict(..., assign=True)) first")
    if dtypes is not None:
        dtypes = tuple(dtypes)
        found = sorted({str(t.dtype) for t in tensors if t.is_floating_point() and t.dtype not in dtypes})
        if found:
            accepted = ", ".join(str(d) for d in dtypes)
            raise TypeError(f"{name} must hold {accepted} parameters and buffers, got {', '.join(found)}; "
                            f"convert it first (e.g. model.float())")
    return model


def _range_text(low, high) -> str:
    if low is not None and high is not None:
        return f" in [{low}, {high}]"
    if low is not None:
        return f" >= {low}"
    if high is not None:
        return f" <= {high}"
    return ""


def _interval_text(low, high, low_open, high_open) -> str:
    if low is None and high is None:
        return ""
    left = "(" if low_open or low is None else "["
    right = ")" if high_open or high is None else "]"
    lo = "-inf" if low is None else low
    hi = "inf" if high is None else high
    return f" in {left}{lo}, {hi}{right}"
