"""Binary / ternary weights: levels, scales, thresholds, STE, and a binarized CNN that trains."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from labkit.quant import binary as B




def tiny_cnn():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(),
        nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(8 * 6 * 6, 16), nn.ReLU(),
        nn.Linear(16, 3),
    )


def test_deterministic_binarization_has_two_levels_and_zero_goes_to_plus_one():
    w = torch.tensor([-0.3, 0.0, 0.2, -2.0, 5.0])
    assert B.binarize_deterministic(w).tolist() == [-1.0, 1.0, 1.0, -1.0, 1.0]
    assert B.count_levels(B.binarize_deterministic(torch.randn(50, 20))) == 2


def test_stochastic_binarization_mean_matches_hard_sigmoid():
    w = torch.tensor([-1.5, -0.6, 0.0, 0.3, 0.8])
    g = torch.Generator().manual_seed(0)
    draws = torch.stack([B.binarize_stochastic(w, g) for _ in range(4000)])
    p_plus = (draws == 1).float().mean(0)
    expected = B.hard_sigmoid(w)                     # [0, 0.2, 0.5, 0.65, 0.9]
    assert torch.allclose(expected, torch.tensor([0.0, 0.2, 0.5, 0.65, 0.9]))
    assert torch.allclose(p_plus, expected, atol=0.03)
    assert set(draws.unique().tolist()) == {-1.0, 1.0}


def test_xnor_alpha_per_tensor_and_per_channel():
    w = torch.tensor([[0.5, -0.1, 0.3], [-2.0, 1.0, 0.0]])
    per_tensor = B.xnor_binarize(w)
    assert torch.allclose(per_tensor.abs(), torch.full_like(w, 3.9 / 6))
    per_ch = B.xnor_binarize(w, per_channel=True)
    assert torch.allclose(per_ch[0], torch.tensor([0.3, -0.3, 0.3]))     # mean|W_0| = 0.9/3
    assert torch.allclose(per_ch[1], torch.tensor([-1.0, 1.0, 1.0]))     # mean|W_1| = 3/3, sign(0) -> +1
    conv = torch.randn(6, 3, 3, 3)
    alpha = B.xnor_binarize(conv, per_channel=True).abs().amax(dim=(1, 2, 3))
    assert torch.allclose(alpha, conv.abs().mean(dim=(1, 2, 3)))


def test_ternary_threshold_and_scale_by_hand():
    w = torch.tensor([0.5, -0.1, 0.05, -0.9, 0.2, 0.3, -0.02, 0.0])
    # E|W| = 2.07 / 8 = 0.25875, Δ = 0.7 · 0.25875 = 0.181125
    assert B.ternary_threshold(w).item() == pytest.approx(0.181125)
    # kept: 0.5, -0.9, 0.2, 0.3 -> α = 1.9 / 4 = 0.475
    q = B.ternarize(w)
    assert torch.allclose(q, torch.tensor([0.475, 0, 0, -0.475, 0.475, 0.475, 0, 0]))
    assert B.count_levels(q) == 3 and (q == 0).any()


def test_ternary_per_channel():
    w = torch.tensor([[1.0, -1.0, 0.1, 0.0], [0.02, -0.4, 0.5, 0.01]])
    q = B.ternarize(w, per_channel=True)
    # row 0: E|W| = 0.525, Δ = 0.3675, kept ±1 -> α = 1;  row 1: E|W| = 0.2325, Δ = 0.16275, kept 0.4, 0.5 -> α = 0.45
    assert torch.allclose(q, torch.tensor([[1.0, -1.0, 0, 0], [0, -0.45, 0.45, 0]]))
    assert B.count_levels(q, per_channel=True).tolist() == [3, 3]


def test_seed_ternary_is_binary_and_real_ternary_is_not():
    w = torch.randn(1000)
    w[:100] = 0.0
    seed = B.seed_ternary_quantize(w)
    assert not (seed == 0).any()
    assert set(seed.unique().tolist()) == {-1.0, 1.0}
    assert B.count_levels(B.ternarize(w)) == 3


def test_hard_tanh_ste_gradient_mask():
    w = torch.tensor([-1.5, -1.0, -0.2, 0.0, 0.7, 1.0, 3.0], requires_grad=True)
    for method in B.METHODS:
        w.grad = None
        (B.quantize_weight(w, method) * torch.arange(7.0)).sum().backward()
        assert w.grad.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 0.0]
    w.grad = None
    B.seed_ternary_quantize(w).sum().backward()
    assert w.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0]


def test_binarize_model_levels_and_skip_first_last():
    model = tiny_cnn()
    binary = B.binarize_model(model, "binaryconnect")
    assert isinstance(binary[0], nn.Conv2d) and not isinstance(binary[0], B.BinaryConv2d)
    assert isinstance(binary[2], B.BinaryConv2d) and isinstance(binary[5], B.BinaryLinear)
    assert not isinstance(binary[7], B.BinaryLinear)
    assert isinstance(model[2], nn.Conv2d) and not isinstance(model[2], B.BinaryConv2d)   # original untouched
    levels = B.weight_levels(binary)
    assert levels["2"] == 2 and levels["5"] == 2 and levels["0"] > 3

    ternary = B.binarize_model(model, "ternary", skip_first_last=False)
    assert all(n == 3 for n in B.weight_levels(ternary).values())
    xnor = B.binarize_model(model, "xnor", per_channel=True, skip_first_last=False)
    assert all(n == 2 for n in B.weight_levels(xnor, per_channel=True).values())
    x = torch.rand(2, 1, 6, 6)
    assert torch.equal(binary[2].weight, model[2].weight)        # latent weights copied
    assert binary(x).shape == (2, 3)


def test_binarized_cnn_trains_and_latent_weights_stay_clipped():
    torch.manual_seed(0)
    x = torch.rand(64, 1, 6, 6)
    y = (x[:, 0, :3].mean((1, 2)) > x[:, 0, 3:].mean((1, 2))).long() + (x.mean((1, 2, 3)) > 0.5).long()
    model = B.binarize_model(tiny_cnn(), "binaryconnect", skip_first_last=True)
    with torch.no_grad():
        model[2].weight.mul_(10)                                   # push latent weights beyond [-1, 1]
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < losses[0] - 0.1
    B.clip_latent_weights(model)
    assert model[2].weight.abs().max() <= 1.0 and model[5].weight.abs().max() <= 1.0


def test_stochastic_layer_is_deterministic_in_eval():
    layer = B.BinaryLinear(5, 4, method="binaryconnect", stochastic=True)
    x = torch.randn(3, 5)
    layer.eval()
    assert torch.equal(layer(x), layer(x))
    assert torch.equal(layer.quantized_weight(), B.binarize_deterministic(layer.weight))


def test_bad_inputs():
    with pytest.raises(ValueError, match="method"):
        B.quantize_weight(torch.randn(3), "quaternary")
    with pytest.raises(ValueError, match="w must contain only finite"):
        B.ternarize(torch.tensor([1.0, float("nan")]))
    with pytest.raises(ValueError, match="w must not be empty"):
        B.xnor_binarize(torch.empty(0))
    with pytest.raises(TypeError, match="w must be a torch.Tensor"):
        B.binarize_deterministic([1.0, -1.0])
    with pytest.raises(TypeError, match="floating-point"):
        B.ternarize(torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="per_channel"):
        B.xnor_binarize(torch.randn(4), per_channel=True)
    with pytest.raises(ValueError, match="stochastic"):
        B.quantize_weight(torch.randn(3), "xnor", stochastic=True)
    with pytest.raises(TypeError, match="module must be an nn.Linear"):
        B.BinaryLinear.from_float(nn.Conv2d(1, 1, 1))
    with pytest.raises(TypeError, match="model must be"):
        B.binarize_model("lenet")
    with pytest.raises(ValueError, match="no nn.Linear"):
        B.binarize_model(nn.ReLU())
    with pytest.warns(UserWarning, match="skip_first_last"):
        B.binarize_model(nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2)))
