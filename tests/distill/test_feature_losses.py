"""Chapter 12's feature losses: attention maps by hand, invariances of AT and RKD, hints, torch as the oracle."""
import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from labkit import distill


def feats(n=4, c=3, h=5, w=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, c, h, w, generator=g, dtype=torch.float64)


def test_attention_map_by_hand():
    f = torch.tensor([[[[1.0, -2.0], [0.0, 3.0]], [[2.0, 1.0], [-1.0, 0.0]]]])   # [1, 2, 2, 2]
    assert distill.attention_map(f, p=2).tolist() == [[[5.0, 5.0], [1.0, 9.0]]]
    assert distill.attention_map(f, p=1).tolist() == [[[3.0, 3.0], [1.0, 3.0]]]
    q = distill.normalized_attention(f, p=2)
    assert q.shape == (1, 4)
    assert q[0].tolist() == pytest.approx([5 / math.sqrt(132), 5 / math.sqrt(132), 1 / math.sqrt(132),
                                           9 / math.sqrt(132)])


def test_attention_transfer_zero_for_identical_and_scale_invariant():
    s, t = feats(c=3), feats(c=7, seed=1)
    assert distill.attention_transfer_loss(t, t).item() == pytest.approx(0.0, abs=1e-12)
    base = distill.attention_transfer_loss(s, t).item()
    assert base > 0.01
    assert distill.attention_transfer_loss(10 * s, 0.1 * t).item() == pytest.approx(base, rel=1e-9)
    assert 0 <= base <= 2.0                          # unit vectors with non-negative entries
    # oracle: Zagoruyko's reference code, at(x) = normalize(x.pow(2).mean(1).view(N, -1))
    at = lambda x: F.normalize(x.pow(2).mean(1).view(x.size(0), -1))
    assert base == pytest.approx((at(s) - at(t)).pow(2).sum(1).mean().item(), rel=1e-9)


def test_attention_p_changes_the_map():
    s = feats()
    assert not torch.allclose(distill.attention_map(s, 1), distill.attention_map(s, 4))
    assert torch.allclose(distill.attention_map(s, 4), s.abs().pow(4).sum(1))


def test_rkd_distance_matrix_and_invariances():
    e = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]], dtype=torch.float64)
    psi = distill.rkd_distance_matrix(e)
    mu = (3 + 4 + 5) / 3
    assert torch.allclose(psi, torch.tensor([[0, 3, 4], [3, 0, 5], [4, 5, 0]], dtype=torch.float64) / mu)
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(6, 5, generator=g, dtype=torch.float64), torch.randn(6, 3, generator=g, dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.randn(5, 5, generator=g, dtype=torch.float64))       # a rotation
    base = distill.rkd_distance_loss(s, t).item()
    assert base > 1e-3
    assert distill.rkd_distance_loss(7.5 * s @ q + 2.0, t).item() == pytest.approx(base, rel=1e-9)
    assert distill.rkd_distance_loss(t, t).item() == pytest.approx(0.0, abs=1e-12)
    assert distill.rkd_angle_loss(t, t).item() == pytest.approx(0.0, abs=1e-12)
    angle = distill.rkd_angle_loss(s, t).item()
    assert angle > 1e-3
    assert distill.rkd_angle_loss(0.01 * s, 3.0 * t).item() == pytest.approx(angle, rel=1e-9)
    assert distill.rkd_angle_loss(s @ q - 1.0, t).item() == pytest.approx(angle, rel=1e-9)


def test_rkd_angle_matrix_right_angle():
    e = torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]])
    a = distill.rkd_angle_matrix(e)
    assert a[0, 1, 2].item() == pytest.approx(0.0, abs=1e-7)        # angle at the origin is 90°
    assert a[0, 2, 1].item() == pytest.approx(math.cos(math.pi / 4), abs=1e-6)


def test_hint_loss_identity_is_mse_and_regressor_maps_widths():
    s, t = feats(c=4), feats(c=4, seed=1)
    assert distill.hint_loss(s, t).item() == pytest.approx(F.mse_loss(s, t).item())
    identity = nn.Identity()
    assert distill.hint_loss(s, t, identity).item() == pytest.approx(F.mse_loss(s, t).item())
    wide = feats(c=9, seed=2).float()
    r = distill.regressor_for(s.float(), wide)
    assert isinstance(r, distill.Regressor) and r.map.kernel_size == (1, 1) and r.map.out_channels == 9
    assert distill.regressor_for(s, t) is None
    assert isinstance(distill.regressor_for(torch.zeros(2, 5), torch.zeros(2, 8)).map, nn.Linear)
    loss = distill.hint_loss(s.float(), wide, r)
    assert loss.item() == pytest.approx(F.mse_loss(r(s.float()), wide).item())
    with pytest.raises(ValueError, match="use a Regressor"):
        distill.hint_loss(s, feats(c=9))


def test_gradients_flow_to_student_never_to_teacher_target():
    s = feats().requires_grad_(True)
    t = feats(c=6, seed=1).requires_grad_(True)
    (distill.attention_transfer_loss(s, t) + distill.hint_loss(s, t[:, :3])).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0 and t.grad is None
    es, et = torch.randn(5, 3, requires_grad=True), torch.randn(5, 4, requires_grad=True)
    (distill.rkd_distance_loss(es, et) + distill.rkd_angle_loss(es, et)).backward()
    assert torch.isfinite(es.grad).all() and es.grad.abs().sum() > 0 and et.grad is None


@pytest.mark.parametrize("call, error, match", [
    (lambda: distill.attention_map(torch.zeros(2, 3, 4)), ValueError, r"features must have shape \[N, C, H, W\]"),
    (lambda: distill.attention_map(torch.zeros(1, 1, 2, 2), p=0), ValueError, "p must be"),
    (lambda: distill.attention_map(torch.zeros(1, 1, 2, 2, dtype=torch.int64)), TypeError, "features must be a floating"),
    (lambda: distill.attention_map([[1.0]]), TypeError, "features must be a torch.Tensor"),
    (lambda: distill.attention_transfer_loss(torch.zeros(2, 3, 4, 4), torch.zeros(2, 3, 5, 5)), ValueError,
     "same batch and spatial size"),
    (lambda: distill.rkd_distance_matrix(torch.zeros(1, 3)), ValueError, "at least N = 2"),
    (lambda: distill.rkd_distance_loss(torch.zeros(3, 2), torch.zeros(4, 2)), ValueError, "same N samples"),
    (lambda: distill.rkd_angle_loss(torch.zeros(3, 2, 1, 1), torch.zeros(3, 2)), ValueError,
     r"student_embeddings must have shape \[N, D\]"),
    (lambda: distill.hint_loss(torch.zeros(2, 3), torch.zeros(2, 3), regressor=3), TypeError, "regressor"),
    (lambda: distill.hint_loss(torch.full((2, 3), float("nan")), torch.zeros(2, 3)), ValueError, "finite"),
    (lambda: distill.Regressor(0, 3), ValueError, "in_channels"),
    (lambda: distill.Regressor(2, 3, kind="mlp"), ValueError, "kind"),
])
def test_bad_inputs(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_rkd_matrices_from_the_gram_matrix_equal_the_explicit_differences(dtype, tol):
    """Park et al.'s definitions, written with an [N, N, D] tensor of differences, as the oracle."""
    g = torch.Generator().manual_seed(3)
    e = (torch.randn(9, 5, generator=g, dtype=dtype) * 3 + 5)             # far from the origin: centring matters
    e[4] = e[2]                                                            # a repeated point: degenerate triplets
    unit = F.normalize(e[:, None, :] - e[None, :, :], p=2.0, dim=2)
    torch.testing.assert_close(distill.rkd_angle_matrix(e), torch.einsum("ijd,kjd->ijk", unit, unit),
                               atol=tol, rtol=0)
    d = torch.cdist(e, e)
    torch.testing.assert_close(distill.rkd_distance_matrix(e), d / (d.sum() / (9 * 8)), atol=tol, rtol=0)
    student = e.clone().requires_grad_(True)                               # coinciding points: finite gradients
    (distill.rkd_distance_loss(student, e.flip(0)) + distill.rkd_angle_loss(student, e.flip(0))).backward()
    assert torch.isfinite(student.grad).all() and student.grad.abs().sum() > 0
