"""FGSM and PGD against a hand-computed gradient-sign step, their constraints, and their refusals."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from labkit import quant, robust, train
from labkit.quant import integer


def tiny_linear():
    """f(x) = W·flatten(x) + b on 1×1×3 'images', 2 classes, weights chosen by hand."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(3, 2))
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([[1.0, -2.0, 0.5], [-1.0, 1.0, 0.0]]))
        model[1].bias.copy_(torch.tensor([0.1, -0.2]))
    return model


X = torch.tensor([[[[0.2, 0.5, 0.9]]]])   # [1, 1, 1, 3]
Y = torch.tensor([0])


def test_input_gradient_is_w_transpose_times_p_minus_onehot():
    # by hand: z = W x + b = [0.2 - 1.0 + 0.45 + 0.1, -0.2 + 0.5 + 0 - 0.2] = [-0.25, 0.1]
    z = torch.tensor([-0.25, 0.1])
    p = torch.softmax(z, 0)
    expected = torch.tensor([[1.0, -2.0, 0.5], [-1.0, 1.0, 0.0]]).T @ (p - torch.tensor([1.0, 0.0]))
    grad = robust.input_gradient(tiny_linear(), X, Y)
    torch.testing.assert_close(grad.reshape(3), expected)
    # signs by hand: p0 - 1 < 0, p1 > 0 -> column sums: x0: 1·(p0-1) - 1·p1 < 0, x1: -2(p0-1) + p1 > 0, x2: 0.5(p0-1) < 0
    assert grad.reshape(3).sign().tolist() == [-1.0, 1.0, -1.0]


def test_fgsm_moves_every_pixel_by_eps_in_the_gradient_sign_direction():
    adv = robust.fgsm(tiny_linear(), X, Y, 0.1)
    torch.testing.assert_close(adv.reshape(3), torch.tensor([0.1, 0.6, 0.8]))
    loss = lambda x: F.cross_entropy(tiny_linear()(x), Y).item()   # noqa: E731
    assert loss(adv) > loss(X)


def test_fgsm_clips_to_the_pixel_range_and_eps_zero_is_the_identity():
    adv = robust.fgsm(tiny_linear(), X, Y, 0.95)
    assert adv.reshape(3).tolist() == [0.0, 1.0, 0.0]
    assert torch.equal(robust.fgsm(tiny_linear(), X, Y, 0.0), X)


def test_one_pgd_step_of_size_eps_without_random_start_is_fgsm(lenet300, digits):
    x, y = digits[1].tensors[0][:64], digits[1].tensors[1][:64]
    torch.testing.assert_close(robust.pgd(lenet300, x, y, 0.1, steps=1, step_size=0.1, random_start=False),
                               robust.fgsm(lenet300, x, y, 0.1), rtol=0, atol=0)


def test_pgd_stays_in_the_ball_and_the_pixel_range_and_repeats_with_its_seed(lenet300, digits):
    x, y = digits[1].tensors[0][:128], digits[1].tensors[1][:128]
    adv = robust.pgd(lenet300, x, y, 0.05, steps=5, seed=3)
    assert float((adv - x).abs().max()) <= 0.05 + 1e-6
    assert float(adv.min()) >= 0.0 and float(adv.max()) <= 1.0
    assert torch.equal(adv, robust.pgd(lenet300, x, y, 0.05, steps=5, seed=3))
    assert not torch.equal(adv, robust.pgd(lenet300, x, y, 0.05, steps=5, seed=4))


def test_pgd_is_at_least_as_strong_as_fgsm_and_both_hurt_a_real_model(lenet300, digits):
    test = digits[1]
    clean = train.correct(lenet300, test).float().mean()
    fgsm = robust.robust_correct(lenet300, test, 0.1, attack="fgsm").float().mean()
    pgd = robust.robust_correct(lenet300, test, 0.1, attack="pgd", steps=10).float().mean()
    assert clean > 0.95
    assert pgd <= fgsm < clean - 0.3
    assert robust.robust_correct(lenet300, test, 0.0).float().mean() == clean


def test_parameters_get_no_gradient_and_the_mode_is_restored(lenet300, digits):
    lenet300.train()
    robust.pgd(lenet300, digits[1].tensors[0][:8], digits[1].tensors[1][:8], 0.1, steps=2)
    assert lenet300.training
    assert all(p.grad is None and p.requires_grad for p in lenet300.parameters())


def test_transfer_scores_examples_of_one_model_on_another(lenet300, digits):
    test = digits[1]
    other = quant.apply_bit_allocation(lenet300, {"fc1": 4, "fc2": 4, "fc3": 4})   # weight-only: attackable
    transfer = robust.robust_correct(other, test, 0.1, source=lenet300)
    examples = robust.adversarial_examples(lenet300, test, 0.1)
    assert torch.equal(transfer, train.correct(other, examples))


@pytest.mark.parametrize("eps", [-0.1, math.nan, math.inf, 1.5])
def test_eps_outside_0_1_or_not_finite_is_refused(eps):
    with pytest.raises(ValueError, match="eps"):
        robust.fgsm(tiny_linear(), X, Y, eps)
    with pytest.raises(ValueError, match="eps"):
        robust.pgd(tiny_linear(), X, Y, eps)


def test_other_bad_arguments_are_named():
    with pytest.raises(TypeError, match="eps"):
        robust.fgsm(tiny_linear(), X, Y, "0.1")
    with pytest.raises(ValueError, match="steps"):
        robust.pgd(tiny_linear(), X, Y, 0.1, steps=0)
    with pytest.raises(ValueError, match="step_size"):
        robust.pgd(tiny_linear(), X, Y, 0.1, step_size=0.0)
    with pytest.raises(ValueError, match="attack"):
        robust.adversarial_examples(tiny_linear(), (X, Y), 0.1, attack="cw")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        robust.fgsm(tiny_linear(), X * 255, Y, 0.1)
    with pytest.raises(TypeError, match="y must be an int64"):
        robust.fgsm(tiny_linear(), X, Y.float(), 0.1)
    with pytest.raises(TypeError, match="data"):
        robust.adversarial_examples(tiny_linear(), X, 0.1)


def test_models_whose_rounding_masks_the_gradient_are_refused_with_the_way_out(lenet300, digits):
    calib = digits[0].tensors[0][:256]
    static = quant.quantize_static(lenet300, calib)
    with pytest.raises(TypeError, match="straight_through_twin"):
        robust.fgsm(static, X.new_zeros(1, 1, 28, 28), Y, 0.1)
    with pytest.raises(TypeError, match="DynamicQuantLinear"):
        robust.check_attackable(quant.quantize_dynamic(lenet300))
    with pytest.raises(TypeError, match="IntegerModel.*fake-quantized twin"):
        robust.robust_correct(integer.convert_to_integer(lenet300, calib), digits[1], 0.1)
    # weight-only quantization keeps float activations: a real gradient, accepted
    assert robust.check_attackable(quant.apply_bit_allocation(lenet300, {"fc1": 8})) is not None


def test_a_gradient_that_is_zero_everywhere_is_refused_not_reported_as_robustness():
    constant = nn.Sequential(nn.Flatten(), nn.Linear(3, 2))
    with torch.no_grad():
        constant[1].weight.zero_()
    with pytest.raises(ValueError, match="exactly 0"):
        robust.fgsm(constant, X, Y, 0.1)
