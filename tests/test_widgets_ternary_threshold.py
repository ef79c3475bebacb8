"""The TWN threshold explorer (labkit.widgets.ternary_threshold) without a browser: numbers, controls, redraws."""
import numpy as np
import pytest
import torch
from torch import nn

from labkit.quant import binary
from labkit.quant.binary import ternary_error
from labkit.widgets import TernaryThresholdExplorer


def small_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 32), nn.ReLU(),
                         nn.Linear(32, 3))


def test_ternary_error_matches_hand_computation():
    w = torch.tensor([[1.2, -0.2, 0.6, 0.0], [-1.0, 0.3, -0.6, 0.1]])
    r = ternary_error(w, 0.7)
    assert r["delta"] == pytest.approx(0.35) and r["alpha"] == pytest.approx(0.85)
    assert r["sparsity"] == pytest.approx(0.5)
    w_hat = binary.ternarize(w)
    assert r["rel_error"] == pytest.approx(float(((w - w_hat) ** 2).sum() / (w ** 2).sum()), rel=1e-6)


def test_error_and_sparsity_move_with_the_factor():
    w = torch.randn(64, 50, generator=torch.Generator().manual_seed(1))
    low, high = ternary_error(w, 0.3), ternary_error(w, 1.2)
    assert low["sparsity"] < high["sparsity"]
    assert ternary_error(w, 0.7)["rel_error"] < high["rel_error"]
    per_ch = ternary_error(w, 0.7, per_channel=True)
    assert per_ch["rel_error"] <= ternary_error(w, 0.7)["rel_error"] + 1e-3


def test_explorer_defaults_to_the_largest_layer_and_redraws_on_set():
    explorer = TernaryThresholdExplorer(small_model())
    assert explorer.stats["layer"] == "3" and explorer.stats["levels"] == 3
    assert explorer.stats["factor"] == pytest.approx(0.7)
    first = explorer.stats["sparsity"]
    count = explorer.update_count
    explorer.set(factor=1.1)
    assert explorer.update_count == count + 1
    assert explorer.stats["sparsity"] > first
    assert list(explorer.figure.data[5].x) == [1.1, 1.1]          # the marker follows the slider
    assert 0.3 <= explorer.stats["best_factor"] <= 1.2
    explorer.set(layer="0", per_channel=True)
    assert explorer.stats["levels"] == 3 and "per channel" in explorer.figure.layout.title.text
    assert len(explorer.figure.data[3].x) == len(np.arange(0.3, 1.2 + 1e-9, 0.05))


def test_explorer_css_classes_and_argument_checks():
    explorer = TernaryThresholdExplorer(small_model(), layer="5", factor=0.5)
    assert "labkit-ternary-threshold-factor" in explorer.controls["factor"]._dom_classes
    assert "labkit-ternary-threshold-per-channel" in explorer.controls["per_channel"]._dom_classes
    assert "labkit-ternary-threshold" in explorer.widget._dom_classes
    with pytest.raises(ValueError, match="layer must be one of"):
        TernaryThresholdExplorer(small_model(), layer="fc9")
    with pytest.raises(ValueError, match="factor"):
        TernaryThresholdExplorer(small_model(), factor=2.0)
    with pytest.raises(TypeError, match="model must be"):
        TernaryThresholdExplorer("model")
    with pytest.raises(ValueError, match="no nn.Linear"):
        TernaryThresholdExplorer(nn.Sequential(nn.ReLU()))
