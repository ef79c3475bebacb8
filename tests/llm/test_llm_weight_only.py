"""RTN, GPTQ and AWQ on single layers: each beats or matches what it must, and refuses bad input."""
import pytest
import torch

from labkit.llm.awq import awq_quantize
from labkit.llm.gptq import gptq_quantize, hessian, inverse_hessian_factor
from labkit.llm.rtn import rtn_quantize
from labkit.quant.affine import fake_quantize


def correlated_layer(seed=0, out=48, inp=128, n=2048):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(out, inp, generator=g)
    mix = torch.randn(inp, inp, generator=g) / 8
    x = torch.randn(n, inp, generator=g) @ mix + 0.3 * torch.randn(n, inp, generator=g)
    return w, x


def output_error(x, w, w_hat):
    return float(((x @ w.T - x @ w_hat.T) ** 2).sum())


def test_rtn_is_affine_group_fake_quantization():
    w, _ = correlated_layer()
    q = rtn_quantize(w, 4, 32)
    assert q.codes.dtype == torch.uint8 and int(q.codes.max()) <= 15
    assert q.qparams.scale.shape == (48, 4)
    torch.testing.assert_close(q.weight(), fake_quantize(w, q.qparams), rtol=0, atol=0)
    err = (q.weight() - w).abs().view(48, 4, 32)
    assert bool((err <= q.qparams.scale.unsqueeze(-1) / 2 + 1e-6).all())           # at most half a step
    assert q.nbytes() == 48 * 128 // 2 + 5 * 48 * 4


@pytest.mark.parametrize("bits, group", [(3, 32), (4, 64), (4, None), (8, 128)])
def test_gptq_output_error_is_below_rtn(bits, group):
    w, x = correlated_layer()
    h = hessian(x)
    gptq, rtn = gptq_quantize(w, h, bits, group), rtn_quantize(w, bits, group)
    assert output_error(x, w, gptq.weight()) < 0.8 * output_error(x, w, rtn.weight())


def naive_obq(w, h, bits, damp=0.01):
    """Optimal Brain Quantization one column at a time with an explicit inverse, no Cholesky, no batches
    (one group per row): the reference GPTQ must reproduce."""
    from labkit.llm.gptq import _group_qparams
    w = w.double().clone()
    h = h + damp * torch.diag(h).mean() * torch.eye(h.shape[0], dtype=h.dtype)
    hinv = torch.linalg.inv(h)
    qp = _group_qparams(w.float(), bits)
    out = torch.zeros_like(w)
    for j in range(w.shape[1]):
        q = fake_quantize(w[:, j:j + 1].float(), qp).double()[:, 0]
        out[:, j] = q
        err = (w[:, j] - q) / hinv[j, j]
        w[:, j:] -= err.unsqueeze(1) * hinv[j, j:].unsqueeze(0)
        hinv = hinv - hinv[:, j:j + 1] @ hinv[j:j + 1, :] / hinv[j, j]    # remove column j (Gaussian elimination)
    return out.float()


@pytest.mark.parametrize("block_size", [1, 16, 128])
def test_gptq_equals_optimal_brain_quantization_for_any_block_size(block_size):
    w, x = correlated_layer(out=16, inp=64, n=512)
    h = hessian(x)
    ref = naive_obq(w, h, 4)
    got = gptq_quantize(w, h, 4, None, block_size=block_size).weight()
    same = (got - ref).abs() < 1e-4
    assert same.float().mean() > 0.995          # a code may differ where rounding sits on a tie
    torch.testing.assert_close(got, ref, rtol=0, atol=float(ref.abs().max()) * 0.2)


def test_gptq_refuses_bad_hessians_and_arguments():
    w, x = correlated_layer(out=8, inp=32, n=64)
    with pytest.raises(ValueError, match="negative diagonal"):
        gptq_quantize(w, -torch.eye(32, dtype=torch.float64), 4, 32)
    indefinite = torch.eye(32, dtype=torch.float64) + 5 * (torch.ones(32, 32, dtype=torch.float64) - torch.eye(32))
    with pytest.raises(ValueError, match="not positive definite even with dampening"):
        gptq_quantize(w, indefinite, 4, 32)
    with pytest.raises(ValueError, match="NaN"):
        inverse_hessian_factor(torch.full((4, 4), float("nan")))
    with pytest.raises(ValueError, match=r"bits must be an integer in \[2, 8\]"):
        gptq_quantize(w, hessian(x), 9, 32)
    with pytest.raises(ValueError, match="group_size must divide the input width 32"):
        gptq_quantize(w, hessian(x), 4, 12)
    with pytest.raises(ValueError, match=r"\[in, in\]"):
        gptq_quantize(w, hessian(x)[:4, :4], 4, 32)
    with pytest.raises(ValueError, match="must not be empty"):
        hessian(torch.zeros(0, 32))


def test_gptq_dampening_rescues_a_singular_hessian():
    w, _ = correlated_layer(out=8, inp=32)
    x = torch.randn(8, 32, generator=torch.Generator().manual_seed(0))   # 8 tokens: rank 8 < 32
    q = gptq_quantize(w, hessian(x), 4, 32)
    assert torch.isfinite(q.weight()).all()
    dead = torch.randn(100, 32)
    dead[:, 5] = 0
    q = gptq_quantize(w, hessian(dead), 4, 32)
    assert bool((q.weight()[:, 5].abs() <= q.qparams.scale[:, 0] / 2 + 1e-6).all())   # a dead input goes to ~0


def salient_layer(seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(64, 128, generator=g)
    gain = torch.ones(128)
    gain[torch.randperm(128, generator=g)[:4]] = 20.0           # 3 % salient channels, as AWQ observed
    calib = torch.randn(1024, 128, generator=g) * gain
    test = torch.randn(2048, 128, generator=g) * gain
    return w, calib, test


@pytest.mark.parametrize("bits", [3, 4])
def test_awq_beats_rtn_on_held_out_inputs_with_salient_channels(bits):
    w, calib, test = salient_layer()
    awq = awq_quantize(w, calib, bits, 64)
    rtn = rtn_quantize(w, bits, 64)
    assert awq.alpha > 0
    assert output_error(test, w, awq.quantized.weight()) < 0.6 * output_error(test, w, rtn.weight())


def test_awq_with_alpha_zero_is_rtn_and_refuses_bad_input():
    w, calib, _ = salient_layer()
    only_zero = awq_quantize(w, calib, 4, 64, grid=1)
    assert only_zero.alpha == 0.0
    torch.testing.assert_close(only_zero.quantized.weight(), rtn_quantize(w, 4, 64).weight(), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="inputs must be"):
        awq_quantize(w, calib[:, :64], 4, 64)
    with pytest.raises(ValueError, match="bits"):
        awq_quantize(w, calib, 1, 64)
