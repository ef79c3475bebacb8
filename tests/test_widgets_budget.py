"""BudgetExplorer without a browser: the allocation it draws, the accuracy it reports, its cache.

Every number is checked against the labkit functions the view calls (``labkit.quant.mixed``,
``labkit.train.evaluate``) recomputed here, or against first principles (``ceil(n·b/8)`` bytes).
"""
import math

import numpy as np
import pytest
import torch
from torch import nn

from labkit.quant import mixed
from labkit.train import evaluate
from labkit.widgets import BudgetExplorer
from labkit.widgets.base import css_class

CHOICES = (2, 3, 4, 8)


def small_net():
    torch.manual_seed(0)
    model = nn.Sequential()
    model.add_module("conv1", nn.Conv2d(1, 4, 3, padding=1))
    model.add_module("relu1", nn.ReLU())
    model.add_module("pool", nn.MaxPool2d(4))
    model.add_module("flatten", nn.Flatten())
    model.add_module("fc1", nn.Linear(4 * 7 * 7, 32))
    model.add_module("relu2", nn.ReLU())
    model.add_module("fc2", nn.Linear(32, 10))
    return model.eval()


def small_data(n=96):
    g = torch.Generator().manual_seed(1)
    return torch.rand(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g)


# Strictly decreasing in bits, so more budget always buys something; fc2 (tiny) is the most sensitive.
SENSITIVITY = {
    "conv1": {2: 0.05, 3: 0.02, 4: 0.01, 8: 0.0},
    "fc1": {2: 0.03, 3: 0.01, 4: 0.004, 8: 0.0},
    "fc2": {2: 0.20, 3: 0.08, 4: 0.02, 8: 0.0},
}


@pytest.fixture
def model():
    return small_net()


@pytest.fixture
def data():
    return small_data()


@pytest.fixture
def explorer(model, data):
    return BudgetExplorer(model, data, sensitivity=SENSITIVITY, choices=CHOICES)


def test_controls_carry_stable_css_classes(explorer):
    assert set(explorer.controls) == {"budget", "method"}
    assert css_class("budget", "budget") in explorer.controls["budget"]._dom_classes
    assert css_class("budget", "method") in explorer.controls["method"]._dom_classes
    assert css_class("budget", "figure") in explorer.figure._dom_classes
    assert explorer.controls["budget"].continuous_update is False


def test_slider_spans_narrowest_to_widest_allocation(explorer, model):
    sizes = {name: m.weight.numel() for name, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    low = sum(math.ceil(n * 2 / 8) for n in sizes.values())
    high = sum(math.ceil(n * 8 / 8) for n in sizes.values())
    assert (explorer.min_bytes, explorer.max_bytes) == (low, high)
    slider = explorer.controls["budget"]
    assert slider.min * 1024 >= low and slider.min * 1024 - low < slider.step * 1024
    assert slider.max * 1024 >= high and slider.max * 1024 - high < slider.step * 1024
    # default budget: every layer at the second narrowest choice (3 bits)
    three = sum(math.ceil(n * 3 / 8) for n in sizes.values())
    assert abs(slider.value * 1024 - three) <= slider.step * 1024 / 2 + 1e-6


@pytest.mark.parametrize("method", ["dp", "greedy"])
def test_allocation_and_accuracy_are_those_of_labkit(explorer, model, data, method):
    slider = explorer.controls["budget"]
    for fraction in (0.0, 0.2, 0.5, 1.0):
        kib = slider.min + fraction * (slider.max - slider.min)
        explorer.set(budget=kib, method=method)
        budget = explorer.stats["budget_bytes"]
        expected = mixed.allocate_bits(mixed.layer_sizes(model), SENSITIVITY, budget, CHOICES, method)
        assert explorer.stats["allocation"] == expected
        assert explorer.stats["used_bytes"] == mixed.allocation_bytes(mixed.layer_sizes(model), expected) <= budget
        assert list(explorer.figure.data[0].y) == list(expected.values())
        assert list(explorer.figure.data[0].x) == list(expected)       # one bar per layer, named (category axis)
        assert not isinstance(explorer.figure.data[0].x, np.ndarray)    # plain labels reach plotly.js as text
        accuracy = evaluate(mixed.apply_bit_allocation(model, expected), data)
        assert explorer.stats["accuracy"] == pytest.approx(accuracy)
        assert explorer.figure.data[4].y[0] == pytest.approx(100 * accuracy)
        assert explorer.stats["predicted_drop"] == pytest.approx(sum(SENSITIVITY[n][b] for n, b in expected.items()))


def test_extremes_give_the_narrowest_and_widest_allocations(explorer, model):
    slider = explorer.controls["budget"]
    biggest = max(mixed.layer_sizes(model).items(), key=lambda item: item[1])[0]
    explorer.set(budget=slider.min)  # within one step of every layer at 2 bits
    assert explorer.stats["used_bytes"] <= explorer.stats["budget_bytes"] < explorer.min_bytes + slider.step * 1024
    assert explorer.stats["allocation"][biggest] == 2
    explorer.set(budget=slider.max)  # every layer at 8 bits fits
    assert set(explorer.stats["allocation"].values()) == {8}
    assert explorer.stats["used_bytes"] == explorer.max_bytes


def test_more_budget_never_raises_the_predicted_drop(explorer):
    slider = explorer.controls["budget"]
    drops = [explorer.set(budget=v).stats["predicted_drop"]
             for v in np.linspace(slider.min, slider.max, 12)]
    assert all(b <= a + 1e-12 for a, b in zip(drops, drops[1:])), drops


def test_dp_is_never_worse_than_greedy(explorer):
    slider = explorer.controls["budget"]
    for v in np.linspace(slider.min, slider.max, 9):
        dp = explorer.set(budget=v, method="dp").stats["predicted_drop"]
        greedy = explorer.set(budget=v, method="greedy").stats["predicted_drop"]
        assert dp <= greedy + 1e-12


def test_accuracies_are_cached_per_allocation(explorer):
    slider = explorer.controls["budget"]
    explorer.set(budget=slider.min)
    count = explorer.stats["evaluations"]
    explorer.set(budget=slider.max)
    assert explorer.stats["evaluations"] == count + (0 if explorer.stats["cache_hit"] else 1)
    count = explorer.stats["evaluations"]
    explorer.set(budget=slider.min)  # seen before
    assert explorer.stats["cache_hit"] and explorer.stats["evaluations"] == count
    # the scatter of allocations seen has one point per cached allocation
    assert len(explorer.figure.data[2].x) == len(explorer.remembered("accuracy"))


def test_the_figure_is_updated_in_place(explorer):
    figure, count = explorer.figure, explorer.update_count
    slider = explorer.controls["budget"]
    title = figure.layout.title.text
    slider.value = slider.max  # as the browser would: observe → update
    assert explorer.figure is figure and explorer.update_count == count + 1
    assert figure.layout.title.text != title
    assert explorer.last_update_ms is not None and explorer.last_update_ms >= 0
    assert "budget" in explorer.readout.value and "accuracy" in explorer.readout.value


def test_uniform_points_match_uniform_allocations(explorer, model, data):
    sizes = mixed.layer_sizes(model)
    xs, ys = explorer.figure.data[1].x, explorer.figure.data[1].y
    for i, b in enumerate(CHOICES):
        allocation = mixed.uniform_allocation(sizes, b)
        assert xs[i] * 1024 == pytest.approx(mixed.allocation_bytes(sizes, allocation))
        assert ys[i] == pytest.approx(100 * evaluate(mixed.apply_bit_allocation(model, allocation), data))


def test_sensitivity_defaults_to_layer_sensitivity(model, data):
    explorer = BudgetExplorer(model, data, choices=(2, 8))
    assert explorer.sensitivity == mixed.layer_sensitivity(model, data, bits=(2, 8))


@pytest.mark.parametrize("kwargs, error", [
    (dict(sensitivity={"conv1": {2: 0.0, 3: 0.0, 4: 0.0, 8: 0.0}}), ValueError),      # layers missing
    (dict(sensitivity={k: {2: 0.1} for k in SENSITIVITY}), ValueError),               # bit widths missing
    (dict(choices=(0, 4)), ValueError),
    (dict(choices=4), TypeError),
    (dict(method="random"), ValueError),
    (dict(budget_kib=0.001), ValueError),
    (dict(budget_kib=1e9), ValueError),
    (dict(per_channel="yes"), TypeError),
])
def test_bad_arguments_are_rejected(model, data, kwargs, error):
    kwargs = {"sensitivity": SENSITIVITY, **kwargs}
    with pytest.raises(error):
        BudgetExplorer(model, data, **kwargs)


def test_bad_model_and_data_are_rejected(data):
    with pytest.raises((TypeError, ValueError)):
        BudgetExplorer(nn.Sequential(nn.ReLU()), data, sensitivity={})
    with pytest.raises(TypeError):
        BudgetExplorer("lenet5", data, sensitivity=SENSITIVITY)
    with pytest.raises(TypeError):
        BudgetExplorer(small_net(), [1, 2, 3], sensitivity=SENSITIVITY)


def test_set_rejects_unknown_controls_and_values(explorer):
    with pytest.raises(ValueError):
        explorer.set(bits=3)
    with pytest.raises(ValueError):
        explorer.set(method="random")


def test_readout_gives_the_accuracy_interval_and_every_axis_a_title(explorer, data):
    """The evaluation set is small (here 96 images): the readout shows the 95 % Wilson interval of the
    accuracy it reports, from labkit.stats, and every axis that carries data is titled."""
    from labkit.stats import accuracy_interval

    for kib in (explorer.min_kib, explorer.max_kib):
        explorer.set(budget=kib)
        s = explorer.stats
        expected = accuracy_interval(round(s["accuracy"] * 96), 96)
        assert (s["accuracy_low"], s["accuracy_high"]) == (expected.low, expected.high)
        assert s["accuracy_low"] <= s["accuracy"] <= s["accuracy_high"]
        assert f"[{100 * expected.low:.1f}, {100 * expected.high:.1f}] on 96 images" in explorer.readout.value
    layout = explorer.figure.layout
    for axis in ("xaxis", "yaxis", "xaxis2", "yaxis2"):
        assert layout[axis].title.text, f"{axis} has no title"
    assert layout.xaxis.type == "category"
