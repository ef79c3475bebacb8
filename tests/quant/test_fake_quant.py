"""labkit.quant.fake_quant: STE gradients, LSQ's step gradient on a hand example, PACT, FakeQuantize."""
import math

import pytest
import torch

from labkit.quant.affine import fake_quantize, qparams_from_range
from labkit.quant.fake_quant import (FakeQuantize, LSQQuantizer, PACTQuantizer, fake_quantize_ste, grad_scale,
                                     lsq_init_step, round_ste)
from labkit.quant.observers import MinMaxObserver, MovingAverageMinMaxObserver


def test_round_ste_passes_the_gradient_unchanged():
    x = torch.tensor([0.2, 1.7, -2.5], requires_grad=True)
    y = round_ste(x)
    y.sum().backward()
    assert y.tolist() == [0.0, 2.0, -2.0]
    assert x.grad.tolist() == [1.0, 1.0, 1.0]


def test_clipped_ste_is_identity_inside_the_range_and_zero_outside():
    qp = qparams_from_range(-1.0, 1.0, bits=4, symmetric=True, signed=True)  # codes -8..7, s = 2/15
    x = torch.linspace(-2, 2, 41, requires_grad=True)
    y = fake_quantize_ste(x, qp)
    assert torch.equal(y.detach(), fake_quantize(x.detach(), qp))
    y.backward(torch.full_like(x, 3.0))
    codes = torch.round(x.detach() / qp.scale)
    inside = (codes >= -8) & (codes <= 7)
    assert torch.equal(x.grad, 3.0 * inside.float())
    assert inside.any() and (~inside).any()


def test_identity_ste_passes_everything():
    qp = qparams_from_range(0.0, 1.0, bits=2)
    x = torch.tensor([-5.0, 0.3, 7.0], requires_grad=True)
    fake_quantize_ste(x, qp, ste="identity").sum().backward()
    assert x.grad.tolist() == [1.0, 1.0, 1.0]


def test_clipped_ste_per_channel_matches_torch_fake_quantize():
    w = torch.randn(4, 6, generator=torch.Generator().manual_seed(0)) * 3
    qp = qparams_from_range(torch.full((4,), -2.0), torch.full((4,), 2.0), bits=8, symmetric=True, signed=True, axis=0)
    ours = w.clone().requires_grad_(True)
    theirs = w.clone().requires_grad_(True)
    fake_quantize_ste(ours, qp).sum().backward()
    torch.fake_quantize_per_channel_affine(theirs, qp.scale, qp.zero_point, 0, -128, 127).sum().backward()
    assert torch.equal(ours.grad, theirs.grad)


def test_grad_scale_changes_only_the_gradient():
    s = torch.tensor(2.0, requires_grad=True)
    y = grad_scale(s, 0.25)
    (3 * y).backward()
    assert y.item() == 2.0 and s.grad.item() == 0.75


def test_lsq_step_gradient_matches_the_paper_on_a_hand_example():
    # 2-bit signed: Q_N = 2, Q_P = 1, s = 0.5. v/s = [-4, -1.2, 0.2, 0.7, 1.8, 6]
    lsq = LSQQuantizer(bits=2, signed=True, step=0.5)
    v = torch.tensor([-2.0, -0.6, 0.1, 0.35, 0.9, 3.0], requires_grad=True)
    out = lsq(v)
    assert out.tolist() == [-1.0, -0.5, 0.0, 0.5, 0.5, 0.5]
    out.sum().backward()
    # ∂v̂/∂s: -Q_N below, -v/s + round(v/s) inside, Q_P above  → -2 + 0.2 - 0.2 + 0.3 + 1 + 1 = 0.3
    g = 1 / math.sqrt(6 * 1)  # g = 1/sqrt(N·Q_P)
    assert lsq.step.grad.item() == pytest.approx(0.3 * g, rel=1e-5)
    assert v.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0, 0.0]  # STE inside the clipping range only


def test_lsq_initial_step_and_per_channel():
    w = torch.tensor([[1.0, -1.0], [4.0, -2.0]])
    assert lsq_init_step(w, 8, True).item() == pytest.approx(2 * 2.0 / math.sqrt(127))
    lsq = LSQQuantizer(bits=8, signed=True, granularity="channel", axis=0)
    lsq(w)
    assert torch.allclose(lsq.step.detach(), torch.tensor([2 * 1.0, 2 * 3.0]) / math.sqrt(127))
    qp = lsq.qparams()
    assert qp.axis == 0 and qp.qmin == -128 and qp.zero_point.eq(0).all()


def test_lsq_decides_signedness_from_the_first_batch_and_keeps_range_when_bits_change():
    act = LSQQuantizer(bits=4, is_activation=True)
    act(torch.rand(8, 5))
    assert act.signed is False
    clip_before = act.step.item() * 15
    act.set_bits(2)
    assert act.step.item() * 3 == pytest.approx(clip_before)


def test_pact_clips_quantizes_and_learns_alpha():
    pact = PACTQuantizer(bits=2, alpha=3.0)
    x = torch.tensor([-1.0, 0.4, 1.6, 2.9, 3.5, 10.0], requires_grad=True)
    y = pact(x)
    step = 3.0 / 3
    assert torch.allclose(y.detach(), torch.tensor([0.0, 0.0, 2.0, 3.0, 3.0, 3.0]) * step, atol=1e-6)
    y.sum().backward()
    assert pact.alpha.grad.item() == pytest.approx(2.0)  # ∂y/∂α = 1 for the two values x >= α
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0, 0.0]
    qp = pact.qparams()
    assert qp.scale.item() == pytest.approx(1.0, rel=1e-6) and qp.qmax == 3


def test_pact_initialises_alpha_from_the_first_batch():
    pact = PACTQuantizer(bits=4)
    pact(torch.tensor([0.5, 2.5]))
    assert pact.alpha.item() == pytest.approx(2.5)


def test_fake_quantize_module_observes_in_training_and_freezes():
    fq = FakeQuantize(MovingAverageMinMaxObserver(1.0))
    fq.train()
    fq(torch.tensor([0.0, 1.0]))
    assert fq.qparams().scale.item() == pytest.approx(1 / 255)
    fq.eval()
    fq(torch.tensor([0.0, 9.0]))  # eval: no observation
    assert fq.qparams().scale.item() == pytest.approx(1 / 255)
    fq.train()
    fq.freeze()
    out = fq(torch.tensor([0.0, 5.0]))  # frozen: 5.0 is clipped to the old range
    assert out[1].item() == pytest.approx(1.0)
    fq.set_bits(2)
    assert fq.bits == 2 and fq.qparams().scale.item() == pytest.approx(1 / 3)


def test_fake_quantize_module_default_and_weight_mode():
    w = torch.randn(3, 4)
    fq = FakeQuantize(MinMaxObserver(symmetric=True, signed=True, granularity="channel"), always_observe=True).eval()
    assert torch.equal(fq(w), fake_quantize(w, fq.qparams()))
    assert FakeQuantize().bits == 8


# --------------------------------------------------------------------------- bad input
def test_bad_arguments_raise():
    qp = qparams_from_range(0.0, 1.0)
    with pytest.raises(ValueError, match="ste"):
        fake_quantize_ste(torch.zeros(2), qp, ste="hardtanh")
    with pytest.raises(TypeError, match="x"):
        fake_quantize_ste([0.0], qp)
    with pytest.raises(TypeError, match="qp"):
        fake_quantize_ste(torch.zeros(2), None)
    with pytest.raises(ValueError, match="bits"):
        LSQQuantizer(bits=0)
    with pytest.raises(ValueError, match="step"):
        LSQQuantizer(bits=4, signed=True, step=-1.0)
    with pytest.raises(ValueError, match="signed"):
        LSQQuantizer(bits=4, step=1.0)
    with pytest.raises(ValueError, match="alpha"):
        PACTQuantizer(bits=4, alpha=0.0)
    with pytest.raises(TypeError, match="observer"):
        FakeQuantize(observer="minmax")
    with pytest.raises(ValueError, match="not seen"):
        LSQQuantizer(bits=4).qparams()


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_inputs_are_rejected(bad):
    x = torch.tensor([0.5, bad, -0.25])
    with pytest.raises(ValueError, match="x must contain only finite"):
        fake_quantize_ste(x, qparams_from_range(-1.0, 1.0))
    with pytest.raises(ValueError, match="x must contain only finite"):
        LSQQuantizer(bits=4)(x)  # first tensor: would set the step to NaN/Inf
    with pytest.raises(ValueError, match="x must contain only finite"):
        LSQQuantizer(bits=4, signed=True, step=0.1)(x)
    with pytest.raises(ValueError, match="x must contain only finite"):
        PACTQuantizer(bits=4)(x)
    with pytest.raises(ValueError, match="x must contain only finite"):
        PACTQuantizer(bits=4, alpha=1.0)(x)


def test_lsq_axis_is_checked_against_the_input_and_may_count_from_the_end():
    w = torch.randn(4, 6)
    for bad in (2, -3):
        with pytest.raises(ValueError, match=r"axis must be an integer in \[-2, 1\]"):
            LSQQuantizer(bits=4, signed=True, granularity="channel", axis=bad)(w)
        with pytest.raises(ValueError, match=r"axis must be an integer in \[-2, 1\]"):
            lsq_init_step(w, 4, True, "channel", axis=bad)
    lsq = LSQQuantizer(bits=4, signed=True, granularity="channel", axis=-1)
    out = lsq(w)
    assert lsq.axis == 1 and lsq.step.shape == (6,) and lsq.qparams().axis == 1
    reference = LSQQuantizer(bits=4, signed=True, granularity="channel", axis=1)
    assert torch.equal(out, reference(w))
    with pytest.raises(ValueError, match=r"axis must be an integer in \[-1, 0\]"):
        lsq(torch.randn(6))  # a later tensor with fewer dimensions: no IndexError from deep inside torch


def test_lsq_refuses_an_axis_without_granularity_channel():
    """``LSQQuantizer(axis=0)`` used to mean per channel; it must not quietly become one step per tensor."""
    with pytest.raises(ValueError, match="granularity='channel'"):
        LSQQuantizer(4, signed=True, axis=0)
    with pytest.raises(ValueError, match="granularity='channel'"):
        lsq_init_step(torch.ones(2, 3), 4, True, axis=1)
    assert LSQQuantizer(4, signed=True).axis is None and LSQQuantizer(4, signed=True, granularity="channel").axis == 0
