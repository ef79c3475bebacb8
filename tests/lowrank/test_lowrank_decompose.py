"""decompose_model: layers replaced in place under their names, report numbers, skip rules, errors."""
import pytest
import torch
from torch import nn

from labkit import lowrank, measure, models
from labkit.lowrank import decompose_model, factorisable_layers, factorised_copy, report_totals, svd_params


def lenet5(seed=0):
    torch.manual_seed(seed)
    return models.build("lenet5").eval()


def test_full_rank_model_gives_the_same_outputs():
    model = lenet5()
    x = torch.rand(4, 1, 28, 28)
    expected = model(x)
    rows = decompose_model(model, {"conv1": (1, 6), "conv2": (6, 16), "fc1": 120, "fc2": 84}, force=True)
    torch.testing.assert_close(model(x), expected, atol=1e-5, rtol=1e-5)
    assert [r["method"] for r in rows] == ["tucker2", "tucker2", "svd", "svd"]
    assert isinstance(model.fc1, nn.Sequential) and isinstance(model.conv2.core, nn.Conv2d)


def test_report_matches_measure_and_hand_formulas():
    model = lenet5()
    before_params, before_macs = measure.count_parameters(model), measure.total_macs(model, (1, 28, 28))
    rows = decompose_model(model, {"fc1": 10, "conv2": 3})
    fc1, conv2 = rows
    assert fc1["rank"] == 10 and fc1["params_before"] == 400 * 120 + 120
    assert fc1["params_after"] == svd_params(120, 400, 10) and fc1["macs_after"] == 10 * (400 + 120)
    assert conv2["rank"] == (3, 3)
    assert conv2["params_after"] == 6 * 3 + 3 * 3 * 25 + 3 * 16 + 16
    assert conv2["macs_before"] == 10 * 10 * 16 * 6 * 25
    assert conv2["macs_after"] == 14 * 14 * 6 * 3 + 10 * 10 * (3 * 3 * 25 + 3 * 16)
    totals = report_totals(rows)
    assert measure.count_parameters(model) == before_params - totals["params_before"] + totals["params_after"]
    assert measure.total_macs(model, (1, 28, 28)) == before_macs - totals["macs_before"] + totals["macs_after"]


def test_energy_skips_layers_that_would_grow_and_copy_leaves_the_original():
    model = lenet5()
    clone, rows = factorised_copy(model, energy=0.99)
    by_name = {r["layer"]: r for r in rows}
    assert set(by_name) == set(factorisable_layers(model))
    for row in rows:
        assert row["params_after"] <= row["params_before"]
        if row["method"] == "kept":
            assert isinstance(dict(clone.named_modules())[row["layer"]], (nn.Linear, nn.Conv2d))
    assert by_name["conv1"]["method"] == "kept"          # a 1-channel input cannot shrink
    assert all(isinstance(m, (nn.Linear, nn.Conv2d)) for n, m in model.named_children() if n.startswith(("fc", "conv")))


def test_cp_method_and_nested_names():
    torch.manual_seed(0)
    model = models.build("resnet").eval()
    rows = decompose_model(model, {"layer2.conv2": 4}, conv_method="cp")
    assert rows[0]["method"] == "cp" and rows[0]["rank"] == 4
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 10)


def test_bad_inputs():
    with pytest.raises(ValueError, match="exactly one"):
        decompose_model(lenet5())
    with pytest.raises(ValueError, match="exactly one"):
        decompose_model(lenet5(), {"fc1": 3}, energy=0.5)
    with pytest.raises(ValueError, match="no such layer"):
        decompose_model(lenet5(), {"fc9": 3})
    with pytest.raises(ValueError, match="unsupported layer type ReLU"):
        decompose_model(lenet5(), {"relu1": 3})
    torch.manual_seed(0)
    with pytest.raises(ValueError, match="grouped/dilated"):
        decompose_model(models.build("mobilenet"), {"block1.depthwise": 3})
    with pytest.raises(ValueError, match="rank"):
        decompose_model(lenet5(), {"fc1": 121})
    with pytest.raises(ValueError, match="energy"):
        decompose_model(lenet5(), energy=1.2)
    with pytest.raises(ValueError, match="conv_method"):
        decompose_model(lenet5(), {"conv2": 3}, conv_method="tt")
    with pytest.raises(ValueError, match="explicit integer rank"):
        decompose_model(lenet5(), energy=0.5, layers=["conv2"], conv_method="cp")
    with pytest.raises(ValueError, match="input_shape"):
        decompose_model(nn.Sequential(nn.Linear(4, 4)), {"0": 1})
    with pytest.raises(TypeError, match="model"):
        decompose_model("lenet5", {"fc1": 3})


def test_tucker2_weight_reads_back_the_kernel_a_tucker2_conv_computes():
    torch.manual_seed(0)
    layer = nn.Conv2d(6, 8, 3, padding=1)
    for ranks in ((6, 8), (3, 4)):
        seq = lowrank.tucker2_conv(layer, ranks)
        expected = lowrank.tucker2_reconstruct(*lowrank.tucker2_factors(layer.weight, ranks))
        torch.testing.assert_close(lowrank.tucker2_weight(seq), expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(TypeError, match="tucker2_conv result"):
        lowrank.tucker2_weight(nn.Sequential(nn.Linear(2, 2)))
