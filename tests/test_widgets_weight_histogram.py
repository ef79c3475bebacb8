"""The weight-histogram explorer and the numbers it shows (``labkit.measure.weight_statistics`` and
``weight_tensors``), without a browser.

The statistics are checked against torch / scipy as oracles; the explorer through its plain-Python
API (``set``, ``figure.data``, ``stats``) and by changing control values as the browser would.
"""
import math

import numpy as np
import pytest
import scipy.stats
import torch
import torch.nn.utils.prune as prune
from torch import nn

from labkit.measure import weight_statistics, weight_tensors
from labkit.widgets import WeightHistogramExplorer


def lenet5():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))


class LeNet300(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.fc1, self.fc2, self.fc3 = nn.Linear(784, 300), nn.Linear(300, 100), nn.Linear(100, 10)
        self.bn = nn.BatchNorm1d(300)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.fc3(self.relu(self.fc2(self.relu(self.bn(self.fc1(x.flatten(1)))))))


# --- weight_statistics ---------------------------------------------------------------------------

def test_weight_statistics_match_torch_and_scipy():
    torch.manual_seed(2)
    w = torch.randn(64, 32) * 0.05
    w[0, :10] = 0.0
    s = weight_statistics(w)
    assert s["shape"] == (64, 32) and s["numel"] == 2048
    assert s["min"] == pytest.approx(w.min().item()) and s["max"] == pytest.approx(w.max().item())
    assert s["mean"] == pytest.approx(w.double().mean().item(), abs=1e-12)
    assert s["std"] == pytest.approx(w.double().std(correction=0).item(), rel=1e-12)
    assert s["zeros"] == pytest.approx(10 / 2048)
    assert s["near_zero"] == pytest.approx((w.abs() <= 0.01).double().mean().item())
    assert s["kurtosis"] == pytest.approx(scipy.stats.kurtosis(w.double().numpy().ravel(), fisher=True), rel=1e-9)


def test_weight_statistics_on_numpy_and_constant_tensor():
    s = weight_statistics(np.zeros((3, 3), dtype=np.float32))
    assert s["zeros"] == 1.0 and s["near_zero"] == 1.0 and s["std"] == 0.0
    assert math.isnan(s["kurtosis"])
    assert weight_statistics(torch.tensor([0.005, -0.02]), near_zero=0.05)["near_zero"] == 1.0


def test_weight_statistics_errors():
    with pytest.raises(TypeError, match="tensor"):
        weight_statistics([1.0, 2.0])
    with pytest.raises(ValueError, match="tensor holds 2 NaN or Inf value"):
        weight_statistics(torch.tensor([1.0, float("nan"), float("inf")]))
    with pytest.raises(ValueError, match="at least one element"):
        weight_statistics(torch.empty(0, 3))
    with pytest.raises(ValueError, match="near_zero"):
        weight_statistics(torch.ones(2), near_zero=-1.0)


# --- weight_tensors ------------------------------------------------------------------------------

def test_weight_tensors_lists_conv_and_linear_weights_only():
    assert list(weight_tensors(lenet5())) == ["0.weight", "3.weight", "7.weight", "9.weight", "11.weight"]
    # BatchNorm's 1-D scale is not a conv/linear weight
    assert list(weight_tensors(LeNet300())) == ["fc1.weight", "fc2.weight", "fc3.weight"]


def test_weight_tensors_falls_back_to_1d_weights_and_sees_pruning():
    assert list(weight_tensors(nn.LayerNorm(4))) == ["weight"]
    model = lenet5()
    prune.l1_unstructured(model[9], "weight", amount=0.5)  # weight_orig + mask
    weights = weight_tensors(model)
    assert "9.weight" in weights
    assert (weights["9.weight"]() == 0).float().mean().item() == pytest.approx(0.5, abs=1e-3)


def test_weight_tensors_errors():
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        weight_tensors({"w": torch.ones(2, 2)})
    with pytest.raises(ValueError, match="no weight tensors"):
        weight_tensors(nn.Sequential(nn.ReLU(), nn.Flatten()))


# --- the explorer --------------------------------------------------------------------------------

def test_explorer_builds_on_lenet5():
    model = lenet5()
    explorer = WeightHistogramExplorer(model)
    assert [value for _, value in explorer.controls["layer"].options] == list(weight_tensors(model))
    bar = explorer.figure.data[0]
    assert bar.type == "bar" and len(bar.x) == len(bar.y) == 80
    assert sum(bar.y) == 6 * 1 * 5 * 5  # every weight of the first conv counted once
    assert "0.weight" in explorer.figure.layout.title.text
    assert explorer.stats["layer"] == "0.weight" and explorer.stats["numel"] == 150
    assert explorer.stats["std"] == pytest.approx(weight_statistics(model[0].weight)["std"])
    assert "0.weight" in explorer.readout.value and "150" in explorer.readout.value
    assert explorer.update_count == 1


def test_changing_layer_changes_figure_and_stats():
    model = LeNet300()
    explorer = WeightHistogramExplorer(model, bins=40)
    x0, y0, stats0 = explorer.figure.data[0].x, explorer.figure.data[0].y, dict(explorer.stats)
    explorer.set(layer="fc3.weight")
    assert not np.array_equal(explorer.figure.data[0].x, x0) and not np.array_equal(explorer.figure.data[0].y, y0)
    assert explorer.stats["numel"] == 1000 != stats0["numel"]
    assert explorer.stats["max"] == pytest.approx(model.fc3.weight.max().item())
    assert sum(explorer.figure.data[0].y) == 1000
    assert explorer.figure.layout.title.text.startswith("fc3.weight")


def test_log_toggle_and_bins():
    explorer = WeightHistogramExplorer(lenet5())
    assert explorer.figure.layout.yaxis.type == "linear"
    explorer.set(log=True, bins=20)
    assert explorer.figure.layout.yaxis.type == "log"
    assert explorer.figure.layout.yaxis.dtick is None  # dtick="D2" made Chromium spend ~10 s going back to linear
    assert len(explorer.figure.data[0].y) == 20 and explorer.stats["bins"] == 20
    explorer.set(log=False)
    assert explorer.figure.layout.yaxis.type == "linear" and explorer.figure.layout.yaxis.dtick is None


def test_set_redraws_once_and_browser_style_changes_redraw():
    explorer = WeightHistogramExplorer(lenet5())
    explorer.set(layer="7.weight", bins=30, log=True)
    assert explorer.update_count == 2  # one for the constructor, one for the whole set()
    explorer.controls["layer"].value = "9.weight"  # what a change in the browser does
    assert explorer.update_count == 3 and explorer.stats["layer"] == "9.weight"


def test_update_rereads_the_model_after_pruning():
    model = lenet5()
    explorer = WeightHistogramExplorer(model, layer="9.weight")
    assert explorer.stats["zeros"] == 0.0
    prune.l1_unstructured(model[9], "weight", amount=0.8)
    explorer.update()
    assert explorer.stats["zeros"] == pytest.approx(0.8, abs=1e-3)


def test_controls_follow_the_conventions():
    explorer = WeightHistogramExplorer(lenet5())
    for name, control in explorer.controls.items():
        assert f"labkit-weight-histogram-{name}" in control._dom_classes
    assert explorer.controls["bins"].continuous_update is False
    assert "labkit-weight-histogram" in explorer.widget._dom_classes
    assert "labkit-weight-histogram-figure" in explorer.figure._dom_classes
    assert "labkit-weight-histogram-readout" in explorer.readout._dom_classes
    bundle = explorer._repr_mimebundle_()
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == explorer.widget.model_id


def test_explorer_names_the_layer_with_non_finite_weights():
    model = lenet5()
    with torch.no_grad():
        model[9].weight[0, 0] = float("nan")  # a diverged layer
    explorer = WeightHistogramExplorer(model)  # the first layer is fine
    with pytest.raises(ValueError, match="layer '9.weight' holds 1 NaN or Inf value"):
        explorer.set(layer="9.weight")
    with torch.no_grad():
        model[0].weight[0, 0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match="layer '0.weight' holds 1 NaN or Inf value"):
        WeightHistogramExplorer(model)


def test_explorer_errors():
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        WeightHistogramExplorer("lenet5")
    with pytest.raises(ValueError, match="no weight tensors"):
        WeightHistogramExplorer(nn.ReLU())
    with pytest.raises(ValueError, match="bins"):
        WeightHistogramExplorer(lenet5(), bins=1)
    with pytest.raises(TypeError, match="bins"):
        WeightHistogramExplorer(lenet5(), bins=20.5)
    with pytest.raises(ValueError, match="layer must be one of"):
        WeightHistogramExplorer(lenet5(), layer="nope")
    with pytest.raises(TypeError, match="log"):
        WeightHistogramExplorer(lenet5(), log="yes")
    explorer = WeightHistogramExplorer(lenet5())
    with pytest.raises(ValueError, match="unknown control"):
        explorer.set(colour="red")
    with pytest.raises(ValueError, match="layer='nope'"):
        explorer.set(layer="nope")
