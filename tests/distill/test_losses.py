"""labkit.distill.losses against torch (F.kl_div with batchmean as the oracle), and its gradients."""
import math

import pytest
import torch
from torch.nn import functional as F

from labkit.distill import (RESPONSE_LOSSES, distillation_loss, kd_logit_gradient, kd_loss, logit_matching_loss,
                            soft_targets)


def logits_pair(n=8, c=10, seed=0, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(n, c, generator=g, dtype=torch.float64), \
        scale * torch.randn(n, c, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("T", [0.5, 1.0, 2.0, 4.0, 20.0])
def test_soft_targets_is_softmax_of_logits_over_T(T):
    s, _ = logits_pair()
    p = soft_targets(s, T)
    assert torch.allclose(p, torch.softmax(s / T, dim=1))
    assert torch.allclose(p.sum(1), torch.ones(len(s), dtype=s.dtype))


def test_soft_targets_flatten_with_temperature():
    s, _ = logits_pair()
    entropy = [-(soft_targets(s, T) * soft_targets(s, T).log()).sum(1).mean().item() for T in (1, 2, 4, 8, 1000)]
    assert all(a < b for a, b in zip(entropy, entropy[1:]))
    assert entropy[-1] == pytest.approx(math.log(10), rel=1e-4)       # T → ∞: uniform


@pytest.mark.parametrize("T", [1.0, 2.0, 4.0, 8.0])
@pytest.mark.parametrize("shape", [(1, 2), (8, 10), (33, 5)])
def test_kd_loss_equals_torch_kl_div_batchmean_times_T_squared(T, shape):
    s, t = logits_pair(*shape)
    oracle = F.kl_div(F.log_softmax(s / T, dim=1), F.softmax(t / T, dim=1), reduction="batchmean") * T * T
    assert kd_loss(s, t, T).item() == pytest.approx(oracle.item(), rel=1e-10)


def test_kd_loss_is_zero_only_when_distributions_match_and_shift_invariant():
    s, t = logits_pair()
    assert kd_loss(t, t, 3.0).item() == pytest.approx(0.0, abs=1e-12)
    assert kd_loss(t + 5.0, t, 3.0).item() == pytest.approx(0.0, abs=1e-12)   # softmax ignores a shift
    assert kd_loss(s, t, 3.0).item() > 0.01


def test_seed_reduction_mean_is_C_times_smaller_than_batchmean():
    """Seed 003 §1's nn.KLDivLoss() defaults to reduction='mean': divides by N·C instead of N."""
    s, t = logits_pair(n=16, c=10)
    with pytest.warns(UserWarning, match="batchmean"):                  # torch itself warns about it
        seed = torch.nn.KLDivLoss()(F.log_softmax(s / 2, dim=1), F.softmax(t / 2, dim=1)) * 4
    assert seed.item() * 10 == pytest.approx(kd_loss(s, t, 2.0).item(), rel=1e-10)


def test_gradient_matches_closed_form_and_scales_as_one_over_T_without_T_squared():
    s, t = logits_pair(n=4, c=10)
    for T in (1.0, 2.0, 5.0, 10.0):
        x = s.clone().requires_grad_(True)
        kd_loss(x, t, T).backward()
        assert torch.allclose(x.grad, kd_logit_gradient(s, t, T))
        p_s, p_t = torch.softmax(s / T, 1), torch.softmax(t / T, 1)
        assert torch.allclose(x.grad, (T / len(s)) * (p_s - p_t))
        x2 = s.clone().requires_grad_(True)
        (kd_loss(x2, t, T) / T ** 2).backward()                        # the loss without T²
        assert torch.allclose(x2.grad, (p_s - p_t) / (len(s) * T))
        assert torch.allclose(x2.grad, kd_logit_gradient(s, t, T, t_squared=False))


def test_T_squared_keeps_the_gradient_size_roughly_constant_across_T():
    """Hinton §2: soft-target gradients scale as 1/T² at high T; the factor T² cancels that."""
    s, t = logits_pair(n=64, c=10, scale=1.0)
    with_factor = [kd_logit_gradient(s, t, T).abs().mean().item() for T in (5.0, 10.0, 20.0, 40.0)]
    without = [kd_logit_gradient(s, t, T, t_squared=False).abs().mean().item() for T in (5.0, 10.0, 20.0, 40.0)]
    assert max(with_factor) / min(with_factor) < 1.1                    # nearly constant
    for a, b in zip(without, without[1:]):                              # each doubling of T: ÷ 4
        assert a / b == pytest.approx(4.0, rel=0.05)


def test_high_temperature_limit_is_logit_matching():
    s, t = logits_pair(n=16, c=10, scale=1.0)
    target = logit_matching_loss(s, t).item()
    assert kd_loss(s, t, 200.0).item() == pytest.approx(target, rel=1e-3)
    s3, t3 = 3 * s, 3 * t                                              # logits comparable to T: far from it
    far = logit_matching_loss(s3, t3).item()
    assert abs(kd_loss(s3, t3, 1.0).item() - far) > 0.3 * far
    assert RESPONSE_LOSSES["kd"] is kd_loss


def test_no_gradient_reaches_the_teacher_logits():
    s, t = logits_pair()
    s.requires_grad_(True)
    t.requires_grad_(True)
    distillation_loss(s, t, torch.zeros(len(s), dtype=torch.long), 4.0, 0.7).backward()
    assert t.grad is None and s.grad is not None


def test_alpha_zero_is_cross_entropy_and_alpha_one_is_kd():
    s, t = logits_pair()
    y = torch.arange(len(s)) % 10
    assert distillation_loss(s, t, y, 4.0, 0.0).item() == pytest.approx(F.cross_entropy(s, y).item(), rel=1e-12)
    assert distillation_loss(s, t, y, 4.0, 1.0).item() == pytest.approx(kd_loss(s, t, 4.0).item(), rel=1e-12)
    mixed = 0.3 * kd_loss(s, t, 4.0) + 0.7 * F.cross_entropy(s, y)
    assert distillation_loss(s, t, y, 4.0, 0.3).item() == pytest.approx(mixed.item(), rel=1e-12)


@pytest.mark.parametrize("T", [0, -1.0, float("nan"), float("inf")])
def test_bad_temperature(T):
    s, t = logits_pair()
    with pytest.raises(ValueError, match=r"T must be a finite number in \(0"):
        kd_loss(s, t, T)
    with pytest.raises(ValueError, match="T must"):
        soft_targets(s, T)


def test_bad_inputs_name_the_argument():
    s, t = logits_pair()
    y = torch.zeros(len(s), dtype=torch.long)
    with pytest.raises(TypeError, match="T must be a real number"):
        kd_loss(s, t, "4")
    for alpha in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match=r"alpha must be a finite number in \[0.0, 1.0\]"):
            distillation_loss(s, t, y, 4.0, alpha)
    with pytest.raises(ValueError, match="same shape"):
        kd_loss(s, t[:, :5], 4.0)
    with pytest.raises(ValueError, match=r"student_logits must have shape \[N, C\]"):
        kd_loss(s[0], t[0], 4.0)
    bad = s.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="student_logits must contain only finite values"):
        kd_loss(bad, t, 4.0)
    with pytest.raises(ValueError, match="teacher_logits must contain only finite values"):
        kd_loss(s, bad, 4.0)
    with pytest.raises(TypeError, match="teacher_logits must be a torch.Tensor"):
        kd_loss(s, t.numpy(), 4.0)
    with pytest.raises(TypeError, match="floating-point"):
        kd_loss(s.long(), t, 4.0)
    with pytest.raises(TypeError, match="labels must be an integer tensor"):
        distillation_loss(s, t, y.float(), 4.0, 0.5)
    with pytest.raises(ValueError, match=r"labels must have shape \[N\]"):
        distillation_loss(s, t, y[:3], 4.0, 0.5)
    with pytest.raises(ValueError, match=r"labels must be class indices in \[0, 9\]"):
        distillation_loss(s, t, y + 10, 4.0, 0.5)
