"""The checker helpers of labkit.exercises: they pass right answers and fail wrong ones loudly."""
import numpy as np
import pytest
import torch
from fractions import Fraction
from numbers import Integral, Real

import importlib
import inspect
import pkgutil

import labkit.exercises
from labkit.exercises import (PASS_MARK, ExerciseError, NotAttempted, checker, expect_answered, expect_close,
                              expect_count, expect_equal, expect_shape, expect_type, passed, whole_number)


def test_exercise_error_is_an_assertion_error_with_a_hint():
    err = ExerciseError("`x` is 3, expected 4.", hint="count the bias too")
    assert isinstance(err, AssertionError)
    assert err.hint == "count the bias too"
    assert "Hint: count the bias too" in str(err)
    assert str(ExerciseError("plain")) == "plain"


@pytest.mark.parametrize("placeholder", [None, ..., NotImplemented])
def test_placeholders_are_reported_as_unanswered(placeholder):
    with pytest.raises(ExerciseError, match="no answer yet"):
        expect_answered("answer", placeholder)
    with pytest.raises(ExerciseError, match="no answer yet"):
        expect_close("answer", placeholder, 1.0)


def test_expect_close_scalars():
    assert expect_close("x", 1.0 + 1e-9, 1.0) == 1.0 + 1e-9
    with pytest.raises(ExerciseError, match=r"`x` is 1\.1, expected 1 .*rtol") as info:
        expect_close("x", 1.1, 1.0, hint="look again")
    assert info.value.hint == "look again"
    assert expect_close("x", 1.05, 1.0, atol=0.1) == 1.05
    with pytest.raises(ExerciseError):
        expect_close("x", float("nan"), 1.0, atol=1e9)
    with pytest.raises(ExerciseError, match="should be a number"):
        expect_close("x", "1.0", 1.0)
    with pytest.raises(ExerciseError, match="should be a number"):
        expect_close("x", True, 1.0)


def test_expect_close_arrays_and_tensors():
    expected = np.array([[1.0, 2.0], [3.0, 4.0]])
    expect_close("w", torch.tensor(expected, dtype=torch.float32), expected, rtol=1e-6)
    expect_close("w", expected.tolist(), expected)
    wrong = expected.copy()
    wrong[1, 0] = 3.5
    with pytest.raises(ExerciseError, match=r"1 of 4 positions; worst at index \(1, 0\): expected 3, got 3\.5"):
        expect_close("w", wrong, expected)
    with pytest.raises(ExerciseError, match=r"shape \(4,\), expected \(2, 2\)"):
        expect_close("w", expected.ravel(), expected)
    nan = expected.copy()
    nan[0, 1] = np.nan
    with pytest.raises(ExerciseError, match=r"index \(0, 1\)"):
        expect_close("w", nan, expected, atol=10.0)


def test_expect_close_refuses_to_compare_an_array_with_itself():
    answer = np.ones(3)
    with pytest.raises(RuntimeError, match="checker bug"):
        expect_close("w", answer, answer)
    with pytest.raises(RuntimeError, match="checker bug"):
        expect_equal("w", answer, answer)


def test_expect_equal():
    assert expect_equal("n", 7, 7) == 7
    with pytest.raises(ExerciseError, match="`n` is 8, expected 7"):
        expect_equal("n", 8, 7)
    with pytest.raises(ExerciseError, match="should be a number"):
        expect_equal("n", "7", 7)
    expect_equal("codes", torch.tensor([1, 2, 3]), np.array([1, 2, 3]))
    with pytest.raises(ExerciseError, match=r"1 of 3 positions; first at index \(2,\): expected 3, got 4"):
        expect_equal("codes", [1, 2, 4], np.array([1, 2, 3]))
    with pytest.raises(ExerciseError, match="is 'b', expected 'a'"):
        expect_equal("name", "b", "a")


def test_expect_count_accepts_whole_numbers_in_any_form():
    assert expect_count("bytes", 1_066_440, 1_066_440) == 1_066_440
    assert expect_count("bytes", 266_610 * 4.0, 1_066_440) == 1_066_440
    assert expect_count("bytes", np.int64(1_066_440), 1_066_440) == 1_066_440
    assert expect_count("bytes", torch.tensor(1_066_440), 1_066_440) == 1_066_440
    with pytest.raises(ExerciseError, match=r"`bytes` is 266,610, expected 1,066,440 \(yours is 0\.25× that\)"):
        expect_count("bytes", 266_610, 1_066_440)
    with pytest.raises(ExerciseError, match="whole number"):
        expect_count("bytes", 10.5, 10)
    with pytest.raises(ExerciseError, match="whole number"):
        expect_count("bytes", "10", 10)
    with pytest.raises(ExerciseError, match="whole number"):
        expect_count("bytes", True, 1)


def test_expect_count_survives_answers_too_large_for_a_float():
    # float(10**400) raises OverflowError; the learner must get an ExerciseError with a hint instead
    with pytest.raises(ExerciseError, match=r"`bytes` is 1\.00e\+400, expected 10 \(yours is 1\.00e\+399× that\)") as info:
        expect_count("bytes", 10**400, 10, hint="count again")
    assert info.value.hint == "count again"
    with pytest.raises(ExerciseError, match="expected 10"):
        expect_count("bytes", -10**400, 10)
    with pytest.raises(ExerciseError, match="whole number"):
        expect_count("bytes", Fraction(10**400, 3), 10)
    assert expect_count("bytes", 10**400, 10**400) == 10**400


def test_whole_number():
    assert whole_number(10**400) == 10**400 and whole_number(np.int64(7)) == 7
    assert whole_number(4.0) == 4 and whole_number(torch.tensor(3.0)) == 3
    assert [whole_number(v) for v in (4.5, float("inf"), float("nan"), True, "4", None)] == [None] * 6


def test_expect_type():
    assert expect_type("n", 3, Integral) == 3
    assert expect_type("x", 3.5, (int, float)) == 3.5
    with pytest.raises(ExerciseError, match="should be an integer, got float 3.5"):
        expect_type("n", 3.5, Integral)
    with pytest.raises(ExerciseError, match="got bool"):
        expect_type("x", True, Real)
    with pytest.raises(ExerciseError, match="no answer yet"):
        expect_type("x", None, Real)


def test_expect_shape():
    t = torch.zeros(2, 3)
    assert expect_shape("t", t, (2, 3)) is t
    with pytest.raises(ExerciseError, match=r"shape \(2, 3\), expected \(3, 2\)"):
        expect_shape("t", t, [3, 2])
    with pytest.raises(ExerciseError, match="should be a tensor or array"):
        expect_shape("t", [[0, 0, 0]], (1, 3))


def test_passed_prints_and_returns_a_success_line(capsys):
    line = passed("LeNet-300-100 needs 1,066,440 bytes in fp32.")
    assert line == "✓ LeNet-300-100 needs 1,066,440 bytes in fp32."
    assert capsys.readouterr().out == line + "\n"


def test_the_pass_mark_is_plain_text_not_an_emoji():
    # U+2713 CHECK MARK is in DejaVu Sans / Sans Mono; ✅ (U+2705) needs an emoji font and shows as a box
    assert PASS_MARK == "\u2713" and ord(PASS_MARK) < 0x1F000


@checker
def check_bytes(answer, layer: str = "fc1") -> str:
    """A checker as the chapters write them: 784·300 + 300 parameters, 4 bytes each."""
    expect_count("answer", answer, (784 * 300 + 300) * 4)
    return passed(f"{layer}: {answer:,} bytes")


def test_checker_reports_a_placeholder_as_not_attempted_and_does_not_raise(capsys):
    line = check_bytes(...)
    assert isinstance(line, NotAttempted) and line.startswith("Not attempted yet")
    assert "`...` for answer" in line and capsys.readouterr().out == line + "\n"
    assert check_bytes(answer=..., layer="fc2").startswith("Not attempted yet")


def test_checker_still_fails_wrong_and_empty_answers_and_passes_right_ones():
    with pytest.raises(ExerciseError, match="expected 942,000"):
        check_bytes(235_500)                      # forgot the 4 bytes per parameter
    with pytest.raises(ExerciseError, match="no answer yet"):
        check_bytes(None)                         # e.g. a function that forgot to `return`
    assert check_bytes(942_000).startswith("✓ fc1: 942,000 bytes")
    with pytest.raises(TypeError):
        check_bytes()                             # a wrong call is still a wrong call
    assert check_bytes.__name__ == "check_bytes" and "784·300" in check_bytes.__doc__


def chapter_checkers():
    for info in pkgutil.iter_modules(labkit.exercises.__path__):
        module = importlib.import_module(f"labkit.exercises.{info.name}")
        for name, function in inspect.getmembers(module, inspect.isfunction):
            if name.startswith("check_") and function.__module__ == module.__name__:
                yield pytest.param(function, id=f"{info.name}.{name}")


@pytest.mark.parametrize("check", list(chapter_checkers()))
def test_every_chapter_checker_lets_a_students_run_all_go_on(check):
    """The student edition's stubs leave ``...`` in every answer: each checker must say "not attempted
    yet" instead of raising (wrong answers failing is tested in tests/test_exercises_chNN.py)."""
    assert getattr(check, "is_checker", False), f"{check.__name__} is not decorated with @checker"
    required = [p for p in inspect.signature(check).parameters.values() if p.default is inspect.Parameter.empty]
    assert check(*[...] * len(required)).startswith("Not attempted yet")
