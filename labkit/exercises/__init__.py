"""Self-checking exercises: the checkers that the notebooks call after each exercise.

The convention, in every notebook:

1. A code cell tagged ``solution`` holds the worked answer. The student edition
   (``make student``, ``scripts/student_edition.py``) replaces its source by a stub that assigns the
   placeholder ``...`` to every name the checker reads (``fp32_bytes = ...``); lines ending in
   ``# keep`` (given data) survive in the stub.
2. The next cell calls a checker from the chapter's module, for instance
   ``ch00.check_fp32_bytes(fp32_bytes)`` with ``from labkit.exercises import ch00``.

A checker is a function decorated with :func:`checker`. It computes the expected answer
*independently* — from labkit, from torch, or from first principles — never from the learner's value,
and compares with the helpers below. On a wrong answer it raises :class:`ExerciseError` (an
``AssertionError``, so the cell fails loudly and a test runner counts it) whose message says what
was expected, what was got, and a hint. On a right answer it returns (and prints) a line starting
with ``✓`` (U+2713, which DejaVu Sans has: an emoji such as ✅ shows as an empty box where no emoji
font is installed). An answer still equal to the placeholder ``...`` is *not attempted*: the checker
prints a line saying so and returns, so that Run All goes on through the rest of a student's notebook.
Nothing here prints "failed" and carries on.

Chapter modules are named ``labkit/exercises/chNN.py`` after ``notebooks/NN_….ipynb``.
"""
from __future__ import annotations

import functools
import inspect
import math
from decimal import Decimal
from numbers import Integral, Number, Real

import numpy as np

__all__ = ["ExerciseError", "float_array", "expect_close_or_known_mistake", "expect_answered", "expect_type", "expect_equal", "expect_close",
           "expect_count", "expect_shape", "passed", "Passed", "whole_number", "checker", "NotAttempted",
           "PASS_MARK", "PLACEHOLDER"]

PASS_MARK = "\u2713"   # ✓, in DejaVu Sans and DejaVu Sans Mono (JupyterLab's output font on Linux)
PLACEHOLDER = ...      # what the student edition's stubs assign: the exercise is not attempted yet


class ExerciseError(AssertionError):
    """A wrong answer to an exercise; ``hint`` (may be ``None``) says where to look next."""

    def __init__(self, message: str, hint: str | None = None):
        self.message = message
        self.hint = hint
        super().__init__(message if not hint else f"{message}\nHint: {hint}")


def expect_answered(name: str, got, hint: str | None = None):
    """Fail if the learner left the placeholder (``None``, ``...`` or ``NotImplemented``) in place."""
    if got is None or got is Ellipsis or got is NotImplemented:
        raise ExerciseError(f"`{name}` has no answer yet (it is {got!r}).",
                            hint or f"Assign your answer to `{name}` in the cell above, then run it.")
    return got


def expect_type(name: str, got, types, hint: str | None = None):
    """Fail unless ``got`` is an instance of ``types`` (a type or tuple of types); return ``got``.

    ``bool`` is never accepted where a number is expected, although Python treats it as an int.
    """
    expect_answered(name, got, hint)
    types = types if isinstance(types, tuple) else (types,)
    if isinstance(got, bool) and bool not in types:
        ok = False
    else:
        ok = isinstance(got, types)
    if not ok:
        wanted = " or ".join(_type_name(t) for t in types)
        raise ExerciseError(f"`{name}` should be {wanted}, got {type(got).__name__} {_short(got)}.", hint)
    return got


def expect_equal(name: str, got, expected, hint: str | None = None):
    """Fail unless ``got == expected`` exactly (element-wise, with equal shapes, for arrays)."""
    _refuse_self_comparison(got, expected)
    expect_answered(name, got, hint)
    if _is_array_like(got) or _is_array_like(expected):
        got_a, exp_a = _as_array(name, got, hint), _as_array(name, expected)
        _same_shape(name, got_a, exp_a, hint)
        wrong = got_a != exp_a
        if np.any(wrong):
            first = tuple(int(i) for i in np.argwhere(wrong)[0])
            raise ExerciseError(
                f"`{name}` differs from the expected value at {int(wrong.sum())} of {wrong.size} "
                f"positions; first at index {first}: expected {exp_a[first].item()!r}, got {got_a[first].item()!r}.", hint)
        return got
    if isinstance(expected, Number) and not isinstance(got, Number):
        raise ExerciseError(f"`{name}` should be a number like {expected!r}, got "
                            f"{type(got).__name__} {_short(got)}.", hint)
    if got != expected:
        raise ExerciseError(f"`{name}` is {_short(got)}, expected {_short(expected)}.", hint)
    return got


def expect_close(name: str, got, expected, rtol: float = 1e-6, atol: float = 0.0,
                 hint: str | None = None):
    """Fail unless ``|got - expected| <= atol + rtol * |expected|`` everywhere (numbers or arrays).

    NaN never matches. For arrays the shapes must be equal, and the message names the worst entry.
    """
    _refuse_self_comparison(got, expected)
    expect_answered(name, got, hint)
    if _is_array_like(got) or _is_array_like(expected):
        got_a = _as_array(name, got, hint).astype(np.float64)
        exp_a = _as_array(name, expected).astype(np.float64)
        _same_shape(name, got_a, exp_a, hint)
        err = np.abs(got_a - exp_a)
        bad = ~(err <= atol + rtol * np.abs(exp_a))  # NaN compares False, so it counts as bad
        if np.any(bad):
            err = np.where(np.isnan(err), np.inf, err)
            worst = tuple(int(i) for i in np.unravel_index(int(np.argmax(err)), err.shape)) if err.ndim else ()
            raise ExerciseError(
                f"`{name}` is off at {int(bad.sum())} of {bad.size} positions; worst at index {worst}: "
                f"expected {exp_a[worst]:.6g}, got {got_a[worst]:.6g} (tolerance rtol={rtol:g}, atol={atol:g}).",
                hint)
        return got
    if isinstance(got, bool) or not isinstance(got, Real):
        raise ExerciseError(f"`{name}` should be a number close to {expected:.6g}, got "
                            f"{type(got).__name__} {_short(got)}.", hint)
    try:
        got_f = float(got)
    except OverflowError:  # an int beyond float range (e.g. 10**400) is certainly not close
        got_f = math.inf if got > 0 else -math.inf
    exp_f = float(expected)
    if not (abs(got_f - exp_f) <= atol + rtol * abs(exp_f)):
        raise ExerciseError(f"`{name}` is {got_f:.6g}, expected {exp_f:.6g} "
                            f"(tolerance rtol={rtol:g}, atol={atol:g}).", hint)
    return got


def expect_count(name: str, got, expected: int, hint: str | None = None) -> int:
    """Fail unless ``got`` is a whole number (an int, or a float such as ``266_610 * 4.0``) equal to
    ``expected``; return it as an int. Used for counts: parameters, bytes, MACs."""
    expect_answered(name, got, hint)
    whole = whole_number(got)
    if whole is None:
        raise ExerciseError(f"`{name}` should be a whole number, got {type(got).__name__} {_short(got)}.", hint)
    if whole != int(expected):
        raise ExerciseError(f"`{name}` is {_short_int(whole)}, expected {int(expected):,} "
                            f"(yours is {_ratio_text(whole, int(expected))} that).", hint)
    return whole


def whole_number(value) -> int | None:
    """``value`` as an int if it is an integer or a whole finite float (Python, numpy or a 0-d torch
    tensor), else ``None``. Integers are taken as they are: ``float(10**400)`` would overflow, and a
    learner's huge answer deserves a hint, not an ``OverflowError``.
    """
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:  # numpy / torch scalars
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, Real):
        return None
    if isinstance(value, Integral):
        return int(value)
    try:
        number = float(value)
    except OverflowError:  # e.g. Fraction(10**400, 3)
        return None
    return int(number) if math.isfinite(number) and number.is_integer() else None


def expect_shape(name: str, got, shape, hint: str | None = None):
    """Fail unless ``got`` (a tensor or array) has exactly the shape ``shape``; return ``got``."""
    expect_answered(name, got, hint)
    if not hasattr(got, "shape"):
        raise ExerciseError(f"`{name}` should be a tensor or array of shape {tuple(shape)}, "
                            f"got {type(got).__name__} {_short(got)}.", hint)
    if tuple(got.shape) != tuple(shape):
        raise ExerciseError(f"`{name}` has shape {tuple(got.shape)}, expected {tuple(shape)}.", hint)
    return got


class Passed(str):
    """The success line a checker returns. It is printed once already, so Jupyter shows no ``Out[]``."""

    def _ipython_display_(self):
        pass


def float_array(name: str, value, hint: str | None = None) -> np.ndarray:
    """``value`` (a number, list, numpy array or torch tensor) as a float64 array, after checking it
    was answered; ``ExerciseError`` if it does not hold numbers."""
    expect_answered(name, value, hint)
    array = _as_array(name, value, hint)
    try:
        return array.astype(np.float64)
    except (TypeError, ValueError):  # e.g. strings
        raise ExerciseError(f"`{name}` should be numbers, got {_short(value)}.", hint) from None


def expect_close_or_known_mistake(name: str, got: np.ndarray, expected, mistakes, rtol: float = 1e-4,
                                  atol: float = 1e-7) -> None:
    """Fail unless ``got`` is close to ``expected``. ``mistakes`` lists ``(wrong_value, hint)`` pairs
    (a ``None`` value is skipped): an answer equal to one of them fails with that mistake's hint,
    anything else with the last hint. Used where a seed's bug gives a recognisable wrong number."""
    def matches(candidate) -> bool:
        candidate = np.asarray(candidate, dtype=np.float64)
        return got.shape == candidate.shape and bool(np.allclose(got, candidate, rtol=rtol, atol=atol))

    if not matches(expected):
        for candidate, hint in mistakes:
            if candidate is not None and matches(candidate):
                raise ExerciseError(f"`{name}` is not the expected value, but it is a known mistake.", hint)
    expect_close(name, got, np.asarray(expected, dtype=np.float64), rtol=rtol, atol=atol,
                 hint=mistakes[-1][1] if mistakes else None)


def passed(message: str) -> Passed:
    """Print the success line ``✓ message`` and return it (a ``str``)."""
    line = Passed(f"{PASS_MARK} {message}")
    print(line)
    return line


class NotAttempted(str):
    """The line a checker returns for an answer still equal to ``...``; printed once, like ``Passed``."""

    def _ipython_display_(self):
        pass


def checker(function):
    """Decorate a ``check_...`` function: if any argument is still the placeholder ``...`` (the
    student edition's stub), print and return a ``NotAttempted`` line naming those arguments instead
    of checking, so a student's Run All continues; any other answer goes to ``function``, which
    passes it or raises ``ExerciseError``."""
    signature = inspect.signature(function)

    @functools.wraps(function)
    def check(*args, **kwargs):
        arguments = signature.bind(*args, **kwargs).arguments
        missing = [name for name, value in arguments.items() if value is PLACEHOLDER]
        if not missing:
            return function(*args, **kwargs)
        line = NotAttempted(f"Not attempted yet: the cell above still gives `...` for {', '.join(missing)}. "
                            "Replace each `...` with your answer and run both cells.")
        print(line)
        return line

    check.is_checker = True
    return check


# -- internals ---------------------------------------------------------------------------------

def _refuse_self_comparison(got, expected) -> None:
    # A checker that passes the learner's own array as the "expected" value always succeeds;
    # that is a bug in the checker, not a right answer, so say so loudly.
    if got is expected and _is_array_like(got):
        raise RuntimeError("checker bug: the expected value is the learner's own object; "
                           "compute the expected answer independently")


def _is_array_like(value) -> bool:
    return isinstance(value, (np.ndarray, list, tuple)) or hasattr(value, "detach")


def _as_array(name: str, value, hint: str | None = None) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor, converted without importing torch here
        value = value.detach().cpu().numpy()
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as err:
        raise ExerciseError(f"`{name}` cannot be read as an array: {err}.", hint) from None
    if array.dtype == object:
        raise ExerciseError(f"`{name}` should hold numbers, got {_short(value)}.", hint)
    return array


def _same_shape(name: str, got: np.ndarray, expected: np.ndarray, hint: str | None) -> None:
    if got.shape != expected.shape:
        raise ExerciseError(f"`{name}` has shape {got.shape}, expected {expected.shape}.", hint)


def _short_int(value: int) -> str:
    """``1,066,440``; beyond 15 digits ``1.00e+400``, so a runaway answer keeps the message short."""
    return f"{value:,}" if abs(value) < 10**15 else f"{Decimal(value):.2e}"


def _ratio_text(got: int, expected: int) -> str:
    """``got / expected`` as ``0.25×``, in exact decimal arithmetic (a float overflows past 1e308)."""
    if expected == 0:
        return "inf×"
    return f"{Decimal(got) / Decimal(expected):.3g}×"


def _type_name(t) -> str:
    if t is Integral:
        return "an integer"
    if t is Real:
        return "a real number"
    return f"a {t.__name__}"


def _short(value, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."

