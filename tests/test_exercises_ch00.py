"""Checkers of notebook 00: each passes the solution and fails every wrong answer with a hint."""
import numpy as np
import pytest
import torch

from labkit.exercises import ExerciseError, ch00

# Solutions worked out by hand from the layer shapes (not from labkit), as the notebook does.
FP32_BYTES = (784 * 300 + 300 + 300 * 100 + 100 + 100 * 10 + 10) * 4            # 1,066,440
CONV2_MACS = 16 * 10 * 10 * 6 * 5 * 5                                          # 240,000
CONV1_MACS = 6 * 28 * 28 * 1 * 5 * 5                                           # 117,600
INT4_BYTES = (784 * 300 + 300 * 100 + 100 * 10) // 2 + 3 * (4 + 4) + 410 * 4   # 134,764


def test_solutions_pass():
    assert FP32_BYTES == 1_066_440 and CONV2_MACS == 240_000 and INT4_BYTES == 134_764
    assert ch00.check_fp32_bytes(FP32_BYTES).startswith("✓ LeNet-300-100 has 266,610 parameters")
    assert ch00.check_fp32_bytes(266_610 * 4.0).startswith("✓")        # a float that is whole is fine
    assert ch00.check_fp32_bytes(np.int64(FP32_BYTES)).startswith("✓")
    assert "240,000 MACs" in ch00.check_conv_macs(CONV2_MACS)
    assert "117,600 MACs" in ch00.check_conv_macs(CONV1_MACS, layer="conv1")
    assert "134,764 bytes" in ch00.check_int4_bytes(INT4_BYTES)
    assert ch00.check_int4_bytes(torch.tensor(INT4_BYTES)).startswith("✓")


@pytest.mark.parametrize("wrong, hint", [
    (266_610, "each float32 takes 4 bytes"),
    (8 * FP32_BYTES, "that is bits"),
    (4 * (784 * 300 + 300 * 100 + 100 * 10), "biases are parameters too"),
    (2 * 266_610, "2 would be float16"),
    (FP32_BYTES + 1, "fc1 784→300"),
    (FP32_BYTES + 0.5, "whole number"),
    ("1066440", "whole number"),
])
def test_fp32_bytes_fails_on_wrong_answers(wrong, hint):
    with pytest.raises(ExerciseError, match="expected 1,066,440|whole number") as info:
        ch00.check_fp32_bytes(wrong)
    assert hint in str(info.value)


@pytest.mark.parametrize("wrong, hint", [
    (16 * 14 * 14 * 6 * 25, "output size 10×10, not the input size 14×14"),
    (16 * 10 * 10 * 25, "all 6 input channels"),
    (16 * 10 * 10, "counts output values"),
    (16 * 6 * 25, "number of weights"),
    (2 * CONV2_MACS, "do not count them twice"),
    (123, "C_out · H_out · W_out · C_in · kh · kw"),
])
def test_conv_macs_fails_on_wrong_answers(wrong, hint):
    with pytest.raises(ExerciseError, match="expected 240,000") as info:
        ch00.check_conv_macs(wrong)
    assert hint in info.value.hint


def test_conv_macs_rejects_a_layer_that_is_not_a_conv():
    with pytest.raises(ValueError, match=r"layer must name a conv layer of LeNet-5, one of \['conv1', 'conv2'\]"):
        ch00.check_conv_macs(1, layer="fc1")


@pytest.mark.parametrize("wrong, hint", [
    (INT4_BYTES - 24, "scale and zero point"),
    (INT4_BYTES - 410 * 4 + 410 // 2, None),      # biases packed as int4 too: generic hint
    ((266_610 * 4 + 7) // 8, "only the weight matrices become 4-bit"),
    (266_200 + 24 + 1640, "one byte per weight"),
    (8 * INT4_BYTES, "that is bits"),
    (FP32_BYTES, "4-bit codes"),
])
def test_int4_bytes_fails_on_wrong_answers(wrong, hint):
    with pytest.raises(ExerciseError, match="expected 134,764") as info:
        ch00.check_int4_bytes(wrong)
    assert info.value.hint
    if hint:
        assert hint in info.value.hint


@pytest.mark.parametrize("check", [ch00.check_fp32_bytes, ch00.check_conv_macs, ch00.check_int4_bytes])
def test_a_huge_answer_fails_with_a_hint_not_an_overflow(check):
    with pytest.raises(ExerciseError, match=r"is 1\.00e\+400, expected") as info:
        check(10**400)  # float(10**400) raises OverflowError
    assert info.value.hint


@pytest.mark.parametrize("check", [ch00.check_fp32_bytes, ch00.check_conv_macs, ch00.check_int4_bytes])
def test_unanswered_exercises_say_so(check):
    with pytest.raises(ExerciseError, match="no answer yet"):
        check(None)
    assert check(...).startswith("Not attempted yet")   # the student edition's stub: Run All goes on


def test_int4_answer_matches_measured_payload():
    """The hand count is the int4 file of labkit.measure minus its headers (ties the exercise to the tool)."""
    from labkit import measure, models

    model = models.build("lenet300")
    headers = measure.FILE_HEADER_BYTES + sum(
        measure.tensor_header_bytes(name, "int4" if t.dim() >= 2 else "fp32", t.dim())
        for name, t in model.state_dict().items())
    assert measure.size_on_disk(model, "int4") == INT4_BYTES + headers
