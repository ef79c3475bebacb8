"""Checkers of notebook 05: each passes the solution and fails wrong answers with a pointed hint."""
import math

import numpy as np
import pytest
import torch

from labkit.exercises import ExerciseError, ch05
from labkit.quant import LSQQuantizer, QParams, fake_quantize_ste

# Solutions worked out by hand, as in the notebook.
# Exercise 1: codes round(x/0.25) + 2 = [-1, 0, 0, 2, 4, 7, 7, 8, 10]; the grid is [0, 7].
MASK = [0, 1, 1, 1, 1, 1, 1, 0, 0]
GRAD_X = [0.0, -2.0, 0.5, 1.5, -1.0, 3.0, 0.25, 0.0, 0.0]
# Exercise 2: v/s = [-5.2, -2.2, -0.4, 0.6, 1.8, 2.8, 4.4] on the grid [-4, 3].
DVHAT_DS = [-4.0, 0.2, 0.4, 0.4, 0.2, 0.2, 3.0]
GRAD_STEP = 3.6 / math.sqrt(21)
# Exercise 3: fc1 has 400 inputs per output channel (Q_P = 7); conv1's output is 6×28×28 (Q_P = 15).
G_FC1, G_CONV1 = 1 / math.sqrt(400 * 7), 1 / math.sqrt(4704 * 15)


def test_solutions_pass():
    assert ch05.check_ste_mask(MASK, GRAD_X).startswith("✓ 6 of 9 inputs")
    assert ch05.check_lsq_step_gradient(DVHAT_DS, GRAD_STEP).startswith("✓ ∂v̂/∂s = [-4.0, 0.2")
    assert ch05.check_lsq_grad_scales(G_FC1, G_CONV1).startswith("✓ g = 1/√(400·7)")


def test_solutions_pass_as_torch_tensors_computed_in_float32():
    """What a learner typically writes: torch float32 arithmetic, bool masks, 0-d tensors."""
    x = torch.tensor(ch05.STE_X)
    codes = torch.round(x / ch05.STE_SCALE) + ch05.STE_ZERO_POINT
    mask = (codes >= 0) & (codes <= 7)
    assert ch05.check_ste_mask(mask, torch.tensor(ch05.STE_UPSTREAM) * mask).startswith("✓")
    v = torch.tensor(ch05.LSQ_V)
    u = v / ch05.LSQ_STEP
    d = torch.where(u <= -4, torch.tensor(-4.0), torch.where(u >= 3, torch.tensor(3.0), -u + torch.round(u)))
    grad = (torch.tensor(ch05.LSQ_UPSTREAM) * d).sum() / torch.sqrt(torch.tensor(7.0 * 3))
    assert ch05.check_lsq_step_gradient(d, grad).startswith("✓")
    assert ch05.check_lsq_grad_scales(torch.tensor(G_FC1), np.float32(G_CONV1)).startswith("✓")


def test_ste_reference_agrees_with_labkit_and_torch():
    """The checker's float64 mask equals the gradient of labkit's clipped STE and of torch's fake quant."""
    mask, grad = ch05.ste_reference()
    upstream = torch.tensor(ch05.STE_UPSTREAM)
    x = torch.tensor(ch05.STE_X, requires_grad=True)
    qp = QParams(torch.tensor(ch05.STE_SCALE), torch.tensor(ch05.STE_ZERO_POINT, dtype=torch.int32), 3, False, False)
    fake_quantize_ste(x, qp, "clipped").backward(upstream)
    assert np.allclose(x.grad.numpy(), grad)
    x_torch = torch.tensor(ch05.STE_X, requires_grad=True)
    torch.fake_quantize_per_tensor_affine(x_torch, ch05.STE_SCALE, ch05.STE_ZERO_POINT, 0, 7).backward(upstream)
    assert np.allclose(x_torch.grad.numpy(), grad)
    assert mask.tolist() == MASK


def test_lsq_reference_agrees_with_labkit():
    """labkit's LSQQuantizer gives the same step gradient (g included) as the checker's formula."""
    d, grad = ch05.lsq_reference()
    q = LSQQuantizer(bits=ch05.LSQ_BITS, signed=True, step=ch05.LSQ_STEP)
    q(torch.tensor(ch05.LSQ_V)).backward(torch.tensor(ch05.LSQ_UPSTREAM))
    assert math.isclose(q.step.grad.item(), grad, rel_tol=1e-5)
    assert np.allclose(d, DVHAT_DS)


@pytest.mark.parametrize("wrong_mask, hint", [
    ([1] * 9, "identity STE"),
    ([0, 0, 0, 1, 1, 0, 0, 0, 0], "rounded code"),
    ([1, 0, 0, 0, 0, 0, 0, 1, 1], "inverted"),
    ([0, 0, 0, 1, 1, 1, 1, 1, 0], "zero point is *added*"),
    ([0, 1, 1, 1, 1, 1, 0, 0, 0], "the gradient passes where 0 ≤ c ≤ 7"),
])
def test_ste_wrong_mask(wrong_mask, hint):
    with pytest.raises(ExerciseError, match="`mask` is off") as info:
        ch05.check_ste_mask(wrong_mask, GRAD_X)
    assert hint in info.value.hint


@pytest.mark.parametrize("wrong_grad, hint", [
    (list(ch05.STE_UPSTREAM), "upstream gradient unchanged"),
    (MASK, "mask itself"),
    ([g * 0.25 for g in GRAD_X], "scale does not appear"),
    ([0.0, -2.0, 0.5, 1.5, -1.0, 3.0, 0.25, 2.0, 0.0], "STE_UPSTREAM[i] · mask[i]"),
])
def test_ste_wrong_grad(wrong_grad, hint):
    with pytest.raises(ExerciseError, match="`grad_x` is off") as info:
        ch05.check_ste_mask(MASK, wrong_grad)
    assert hint in info.value.hint


def test_ste_wrong_length_and_placeholders():
    with pytest.raises(ExerciseError, match="should hold 9 numbers"):
        ch05.check_ste_mask(MASK[:5], GRAD_X)
    with pytest.raises(ExerciseError, match="no answer yet"):
        ch05.check_ste_mask(None, GRAD_X)
    assert ch05.check_ste_mask(MASK, ...).startswith("Not attempted yet")


@pytest.mark.parametrize("wrong_d, hint", [
    ([0.0, 0.2, 0.4, 0.4, 0.2, 0.2, 0.0], "clipped values do not get 0"),
    ([-4.0, -0.2, -0.4, -0.4, -0.2, -0.2, 3.0], "sign"),
    ([-5.2, 0.2, 0.4, 0.4, 0.2, 0.2, 4.4], "−Q_N = −4"),
    ([-4.0, 0.2, 0.4, 0.6, 0.2, 0.2, 3.0], "inside the grid use the STE"),
])
def test_lsq_wrong_derivatives(wrong_d, hint):
    with pytest.raises(ExerciseError, match="`dvhat_ds` is off") as info:
        ch05.check_lsq_step_gradient(wrong_d, GRAD_STEP)
    assert hint in info.value.hint


@pytest.mark.parametrize("wrong_grad, hint", [
    (3.6, "multiply by LSQ's gradient scale"),
    (3.6 * math.sqrt(21), "you multiplied"),
    (3.6 / math.sqrt(7 * 4), "Q_P for signed 3 bits"),
    (sum(DVHAT_DS) / math.sqrt(21), "upstream gradient"),
    (1.0, "grad_step = (1/sqrt(N·Q_P))"),
])
def test_lsq_wrong_step_gradient(wrong_grad, hint):
    with pytest.raises(ExerciseError, match="`grad_step` is") as info:
        ch05.check_lsq_step_gradient(DVHAT_DS, wrong_grad)
    assert hint in info.value.hint


def test_lsq_wrong_shapes_and_placeholders():
    with pytest.raises(ExerciseError, match="should hold 7 numbers"):
        ch05.check_lsq_step_gradient(DVHAT_DS[:3], GRAD_STEP)
    with pytest.raises(ExerciseError, match="should be one number"):
        ch05.check_lsq_step_gradient(DVHAT_DS, [GRAD_STEP, GRAD_STEP])
    with pytest.raises(ExerciseError, match="no answer yet"):
        ch05.check_lsq_step_gradient(DVHAT_DS, None)


@pytest.mark.parametrize("wrong_g, hint", [
    (1 / math.sqrt(48000 * 7), "per channel"),
    (1 / math.sqrt(400 * 8), "Q_P = 7"),
    (math.sqrt(400 * 7), "not sqrt(N·Q_P)"),
    (1 / math.sqrt(401 * 7), "no bias term"),
    (0.5, "one row of fc1"),
])
def test_grad_scale_wrong_weight(wrong_g, hint):
    with pytest.raises(ExerciseError, match="`g_fc1_weight` is") as info:
        ch05.check_lsq_grad_scales(wrong_g, G_CONV1)
    assert hint in info.value.hint


@pytest.mark.parametrize("wrong_g, hint", [
    (1 / math.sqrt(4704 * 7), "Q_P = 15"),
    (1 / math.sqrt(4704 * 64 * 15), "*one* sample"),
    (1 / math.sqrt(6 * 24 * 24 * 15), "pads by 2"),
    (1 / math.sqrt(28 * 28 * 15), "one channel is not enough"),
    (0.1, "Q_P = 2^b − 1"),
])
def test_grad_scale_wrong_activation(wrong_g, hint):
    with pytest.raises(ExerciseError, match="`g_conv1_output` is") as info:
        ch05.check_lsq_grad_scales(G_FC1, wrong_g)
    assert hint in info.value.hint


def test_grad_scale_reference_matches_labkit_lsq():
    """The N used by the checker is the one labkit's LSQQuantizer uses: compare scaled step gradients."""
    layer = torch.nn.Linear(400, 120)
    q = LSQQuantizer(bits=4, signed=True, granularity="channel", axis=0)
    q(layer.weight.detach()).sum().backward()            # initialises the 120 steps, then their gradients
    with torch.no_grad():                                # the unscaled ∂v̂/∂s of channel 0, summed
        v = layer.weight.detach()[0] / q.step.detach()[0]
        u = v.clamp(-8, 7)
        d = torch.where(v <= -8, -8.0, torch.where(v >= 7, 7.0, -v + torch.round(u)))
    assert math.isclose(q.step.grad[0].item(), G_FC1 * d.sum().item(), rel_tol=1e-4)
    with pytest.raises(ExerciseError, match="should be one number"):
        ch05.check_lsq_grad_scales([G_FC1, G_FC1], G_CONV1)
