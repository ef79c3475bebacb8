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


def energetic_last_inputs(seed):
    """A layer whose 8 last inputs carry 36× the energy: GPTQ in column order reaches them last."""
    w, x = correlated_layer(seed)
    x[:, -8:] *= 6
    return w, x


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gptq_act_order_processes_high_energy_inputs_first_and_lowers_the_error(seed):
    w, x = energetic_last_inputs(seed)
    h = hessian(x)
    in_order, act = gptq_quantize(w, h, 3, 32), gptq_quantize(w, h, 3, 32, act_order=True)
    assert output_error(x, w, act.weight()) < 0.6 * output_error(x, w, in_order.weight())   # measured ≈ 0.4
    rtn = rtn_quantize(w, 3, 32)                  # static groups: the scales of the unquantized weight
    torch.testing.assert_close(act.qparams.scale, rtn.qparams.scale, rtol=0, atol=0)
    assert torch.equal(act.qparams.zero_point, rtn.qparams.zero_point)
    assert act.codes.shape == w.shape and int(act.codes.max()) <= 7


def test_gptq_act_order_with_equal_hessian_diagonal_is_plain_gptq():
    w, x = correlated_layer()
    h = hessian(x)
    h = h + torch.diag(h.diag().max() * 1.5 - h.diag())          # same diagonal everywhere, still PD
    assert torch.equal(gptq_quantize(w, h, 4, None, act_order=True).codes, gptq_quantize(w, h, 4, None).codes)
    with pytest.raises(TypeError, match="act_order"):
        gptq_quantize(w, h, 4, None, act_order="yes")


@pytest.mark.parametrize("bits, group", [(3, 32), (4, 64), (3, 128)])
def test_awq_clip_search_lowers_the_output_error_and_clips_within_its_grid(bits, group):
    from labkit.llm.awq import clip_search, clip_weight
    w, x = correlated_layer()
    plain, clipped = awq_quantize(w, x, bits, group), awq_quantize(w, x, bits, group, clip=True)
    assert clipped.alpha == plain.alpha and clipped.clip_ratios.shape == (48, 128 // group)
    err = lambda r: float(((x @ w.T - x @ r.quantized.weight().T) ** 2).mean())
    assert err(clipped) < 0.95 * err(plain)                           # measured 0.70-0.92
    ratios = clipped.clip_ratios
    assert float(ratios.min()) >= 0.5 and float(ratios.max()) <= 1.0 and float(ratios.mean()) < 1.0
    s = clipped.quantized.input_scale
    again = rtn_quantize(clip_weight(w * s, ratios, group), bits, group)
    assert torch.equal(again.codes, clipped.quantized.codes)
    # ratio 1 is in the grid: the search never does worse than no clipping on each group's partial output
    ones = clip_search(w, x, bits, group, grid=1)
    assert torch.equal(ones, torch.ones_like(ones))
    with pytest.raises(ValueError, match="max_shrink"):
        clip_search(w, x, bits, group, max_shrink=1.0)
    with pytest.raises(TypeError, match="clip"):
        awq_quantize(w, x, bits, group, clip=1)
