"""Issue 9: low-rank factorisation keeps the layer's dtype and names weights it cannot factorise."""
import pytest
import torch
from torch import nn

from labkit import models, train
from labkit.lowrank import cp_conv, decompose_model, svd_linear, tucker2_conv


def layers(dtype):
    torch.manual_seed(0)
    return nn.Linear(12, 8).to(dtype), nn.Conv2d(4, 6, 3, padding=1).to(dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16])
def test_factors_keep_the_layer_dtype(dtype):
    linear, conv = layers(dtype)
    for factorised in (svd_linear(linear, 3), tucker2_conv(conv, 2), cp_conv(conv, 3, iters=2)):
        assert {p.dtype for p in factorised.parameters()} == {dtype}  # before: float32 factors


def test_float64_factors_at_full_rank_reproduce_the_layer_to_float64_precision():
    linear, conv = layers(torch.float64)
    x, img = torch.randn(5, 12, dtype=torch.float64), torch.randn(2, 4, 7, 7, dtype=torch.float64)
    # before: the float32 factors failed on float64 input ("mat1 and mat2 must have the same dtype")
    torch.testing.assert_close(svd_linear(linear, 8)(x), linear(x), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(tucker2_conv(conv, (4, 6))(img), conv(img), rtol=1e-12, atol=1e-12)


def test_a_float64_model_decomposes_and_evaluates():
    train.set_seed(0)
    model = models.build("lenet5").double()
    rows = decompose_model(model, energy=0.9)
    assert rows and {p.dtype for p in model.parameters()} == {torch.float64}
    x, y = torch.rand(8, 1, 28, 28), torch.randint(0, 10, (8,))
    assert 0.0 <= train.evaluate(model, (x, y)) <= 1.0


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nan_or_inf_weights_are_named(bad):
    linear, conv = layers(torch.float32)
    with torch.no_grad():
        linear.weight[0, 0] = bad
        conv.weight[0, 0, 0, 0] = bad
    with pytest.raises(ValueError, match=r"^layer.weight must contain only finite values"):
        svd_linear(linear, 3)  # before: torch's "linalg.svd: The algorithm failed to converge"
    for call in (lambda: tucker2_conv(conv, 2), lambda: cp_conv(conv, 2)):
        with pytest.raises(ValueError, match=r"^layer.weight must contain only finite values"):
            call()


def test_meta_layers_and_models_are_named():
    linear, conv = layers(torch.float32)
    with pytest.raises(ValueError, match="^layer.weight is on the meta device"):
        svd_linear(linear.to("meta"), 2)
    with pytest.raises(ValueError, match="^layer.weight is on the meta device"):
        tucker2_conv(conv.to("meta"), 2)
    with pytest.raises(ValueError, match="^model is on the meta device"):
        decompose_model(models.build("lenet5").to("meta"), energy=0.9)  # before: "Tensor.item() ... meta"
