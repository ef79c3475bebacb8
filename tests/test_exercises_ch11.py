"""Checkers of notebook 11: each passes the solution and fails wrong answers (every seed bug) with a pointed hint."""
import numpy as np
import pytest
import torch
from torch.nn import functional as F

from labkit import distill
from labkit.exercises import ExerciseError, ch11

S, T_ = torch.tensor(ch11.STUDENT, dtype=torch.float64), torch.tensor(ch11.TEACHER, dtype=torch.float64)
T = ch11.T_KD
Z = torch.tensor(ch11.LOGITS, dtype=torch.float64)


def kd_torch(reduction="batchmean", t_squared=True):
    value = F.kl_div(F.log_softmax(S / T, 1), F.softmax(T_ / T, 1), reduction=reduction)
    return value * T * T if t_squared else value


def grad_torch(t_squared=True):
    s = S.clone().requires_grad_(True)
    loss = F.kl_div(F.log_softmax(s / T, 1), F.softmax(T_ / T, 1), reduction="batchmean")
    (loss * T * T if t_squared else loss).backward()
    return s.grad


def test_solutions_pass():
    assert ch11.check_soft_targets(torch.softmax(Z / ch11.T_SOFT, 0)).startswith("✓ softmax(z / 4)")
    assert ch11.check_kd_loss(kd_torch()).startswith("✓ KD loss = 0.5934")
    assert ch11.check_kd_gradient(grad_torch()).startswith("✓ ∂KD/∂s")


def test_solutions_pass_as_numpy_lists_and_float32():
    assert ch11.check_soft_targets(torch.softmax(Z / 4, 0).float()[None]).startswith("✓")   # [1, 4] accepted
    e = np.exp(np.array(ch11.LOGITS) / 4)
    assert ch11.check_soft_targets(e / e.sum()).startswith("✓")
    assert ch11.check_kd_loss(float(kd_torch())).startswith("✓")
    assert ch11.check_kd_gradient(grad_torch().float().tolist()).startswith("✓")


def test_independent_references_agree_with_labkit_distill():
    assert ch11.kd_reference() == pytest.approx(distill.kd_loss(S, T_, T).item(), rel=1e-12)
    assert np.allclose(ch11.gradient_reference(), distill.kd_logit_gradient(S, T_, T).numpy())
    assert np.allclose(ch11.softmax(ch11.LOGITS, 4.0), distill.soft_targets(Z[None], 4.0)[0].numpy())


@pytest.mark.parametrize("wrong, hint", [
    (torch.softmax(Z, 0), "ordinary softmax (T = 1)"),
    (torch.softmax(Z * 4, 0), "*divides*"),
    (Z / 4, "still logits"),
    (torch.softmax(Z / 4, 0).flip(0), "exp(z_i / T)"),
    ([0.25, 0.25, 0.25, 0.25], "exp(z_i / T)"),
])
def test_soft_targets_wrong(wrong, hint):
    with pytest.raises(ExerciseError) as info:
        ch11.check_soft_targets(wrong)
    assert hint in info.value.hint


def test_soft_targets_unanswered_and_wrong_shape():
    with pytest.raises(ExerciseError, match="no answer"):
        ch11.check_soft_targets(None)
    with pytest.raises(ExerciseError):
        ch11.check_soft_targets([0.5, 0.5])


@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides:UserWarning")    # torch warns about the seed's bug
@pytest.mark.parametrize("wrong, hint", [
    (lambda: kd_torch("mean"), "reduction='mean' (seed 003"),                       # the seed's default
    (lambda: kd_torch("mean", t_squared=False), "no T²"),
    (lambda: kd_torch(t_squared=False), "T² factor is missing"),
    (lambda: kd_torch("sum"), "sum over the batch"),
    (lambda: F.kl_div(F.log_softmax(T_ / T, 1), F.softmax(S / T, 1), reduction="batchmean") * T * T,
     "wrong way round"),
    (lambda: -(F.softmax(T_ / T, 1) * F.log_softmax(S / T, 1)).sum(1).mean() * T * T, "cross-entropy H(p_t, p_s)"),
    (lambda: F.kl_div(F.softmax(S / T, 1), F.softmax(T_ / T, 1), reduction="batchmean") * T * T,
     "*log*-probabilities"),
    (lambda: 0.6, "T² · (1/N)"),
])
def test_kd_loss_wrong(wrong, hint):
    with pytest.raises(ExerciseError) as info:
        ch11.check_kd_loss(wrong())
    assert hint in info.value.hint


def test_kd_loss_needs_a_scalar():
    with pytest.raises(ExerciseError, match="one number"):
        ch11.check_kd_loss(torch.tensor([0.59, 0.59]))


@pytest.mark.parametrize("wrong, hint", [
    (lambda: grad_torch(t_squared=False), "*without* the T² factor"),
    (lambda: -grad_torch(), "Wrong sign"),
    (lambda: grad_torch() * 2, "batch mean"),
    (lambda: grad_torch() / T, "Chain rule"),
    (lambda: torch.zeros(2, 4), "(T / N)(p_s − p_t)"),
])
def test_kd_gradient_wrong(wrong, hint):
    with pytest.raises(ExerciseError) as info:
        ch11.check_kd_gradient(wrong())
    assert hint in info.value.hint


def test_kd_gradient_wrong_shape():
    with pytest.raises(ExerciseError, match="shape"):
        ch11.check_kd_gradient(grad_torch().T)
