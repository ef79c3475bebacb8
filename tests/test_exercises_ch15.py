"""Checkers of notebook 15: each passes the solution and fails wrong answers with a pointed hint."""
import numpy as np
import pytest
import torch
from torch import nn

from labkit import federated, robust
from labkit.exercises import ExerciseError, ch15

# By hand: z = Wx + b = [-1.5, 1.3, -0.7] → p ≈ [0.056, 0.918, 0.026]; g = Wᵀ(p − e_0) has signs [-, +, -, +];
# x + 0.1·sign(g) = [-0.05, 1.05, 0.4, 0.4] → clipped [0, 1, 0.4, 0.4].
X_ADV = [0.0, 1.0, 0.4, 0.4]
# 10 clients · 20 rounds · 79,510 parameters: 4 B each; 2 bits each + a 4-byte scale per tensor; 1 % × 8 B.
FLOAT32, TWO_BIT, TOPK = 63_608_000, 3_978_800, 1_273_600


def test_solutions_pass():
    assert ch15.check_fgsm_step(X_ADV).startswith("✓ x_adv = [0.0, 1.0, 0.4, 0.4]")
    assert ch15.check_fgsm_step(torch.tensor(X_ADV)).startswith("✓")
    assert "16.0× fewer" in ch15.check_uplink_bytes(FLOAT32, TWO_BIT, TOPK)
    assert ch15.check_uplink_bytes(np.int64(FLOAT32), float(TWO_BIT), TOPK).startswith("✓")


def test_references_agree_with_labkit():
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor(ch15.W))
        model[1].bias.copy_(torch.tensor(ch15.B))
    x = torch.tensor(ch15.X).reshape(1, 1, 1, 4)
    adv = robust.fgsm(model, x, torch.tensor([ch15.Y]), ch15.EPS)
    np.testing.assert_allclose(adv.reshape(4).numpy(), ch15.fgsm_reference(), atol=1e-6)
    np.testing.assert_allclose(adv.reshape(4).numpy(), X_ADV, atol=1e-6)
    update = {name: torch.randn(n) for name, n in ch15.TENSORS.items()}
    g = torch.Generator().manual_seed(0)
    per_client = [len(c.encode(update, g)) for c in (federated.UpdateCodec(),
                                                      federated.UpdateCodec("quantize", bits=ch15.BITS),
                                                      federated.UpdateCodec("topk", keep_fraction=ch15.KEEP))]
    assert tuple(ch15.CLIENTS * ch15.ROUNDS * b for b in per_client) == ch15.bytes_reference() == (FLOAT32, TWO_BIT, TOPK)


@pytest.mark.parametrize("wrong, hint", [
    ([0.15, 0.85, 0.6, 0.2], "stepped *down*"),
    ([-0.05, 1.05, 0.4, 0.4], "clip the result"),
    ([0.0, 1.0, 0.45, 0.3], "Wᵀ(p − e_y)"),
    ([0.1, 0.9, 0.5, 0.3], "compute z = W x + b"),
    ([0.0, 1.0, 0.4], "compute z = W x + b"),
])
def test_fgsm_wrong_answers(wrong, hint):
    with pytest.raises(ExerciseError) as info:
        ch15.check_fgsm_step(wrong)
    assert hint in str(info.value)


@pytest.mark.parametrize("answers, hint", [
    ((FLOAT32 // 200, TWO_BIT, TOPK), "every one of the 10 clients"),
    ((FLOAT32 // 4, TWO_BIT, TOPK), "a float32 is 4 bytes"),
    ((FLOAT32, TWO_BIT - 200 * 16, TOPK), "float32 scale"),
    ((FLOAT32, 200 * 79_510 * 2, TOPK), "divide by 8"),
    ((FLOAT32, TWO_BIT + 1, TOPK), "4 + ⌈n·bits/8⌉"),
    ((FLOAT32, TWO_BIT, TOPK // 2), "a 4-byte index and a 4-byte value"),
    ((FLOAT32, TWO_BIT, TOPK + 8), "max(1, round(0.01·n))"),
])
def test_uplink_wrong_answers(answers, hint):
    with pytest.raises(ExerciseError) as info:
        ch15.check_uplink_bytes(*answers)
    assert hint in str(info.value)


def test_placeholders_are_not_attempted_and_none_fails():
    assert "Not attempted" in ch15.check_fgsm_step(...)
    assert "Not attempted" in ch15.check_uplink_bytes(FLOAT32, ..., TOPK)
    with pytest.raises(ExerciseError):
        ch15.check_fgsm_step(None)
