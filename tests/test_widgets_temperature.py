"""The temperature explorer (labkit.widgets.temperature) without a browser: numbers, controls, redraws."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from labkit import distill, train
from labkit.widgets.temperature import TemperatureExplorer


def teacher():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 6 * 6, 10))


def images():
    g = torch.Generator().manual_seed(1)
    return torch.rand(12, 1, 8, 8, generator=g), torch.randint(0, 10, (12,), generator=g)


def test_explorer_shows_soft_targets_of_the_teacher():
    model, (x, y) = teacher().train(), images()
    explorer = TemperatureExplorer(model, (x, y), T=4.0, index=3)
    logits = train.predict(model, x)
    s = explorer.stats
    assert s["index"] == 3 and s["T"] == 4.0 and s["label"] == int(y[3])
    assert s["probs"] == pytest.approx(distill.soft_targets(logits[3:4], 4.0)[0].tolist())
    assert s["probs_T1"] == pytest.approx(torch.softmax(logits[3], 0).tolist())
    assert list(explorer.figure.data[2].y) == pytest.approx(s["probs"])
    assert list(explorer.figure.data[1].y) == pytest.approx(s["probs_T1"])
    order = sorted(range(10), key=lambda c: -s["probs"][c])
    assert (s["top_class"], s["second_class"]) == tuple(order[:2])
    assert s["top_prob"] >= s["second_prob"]
    assert s["second_prob"] == pytest.approx(max(s["probs"][c] for c in order[1:]))
    p = torch.tensor(s["probs"])
    assert s["entropy"] == pytest.approx(float(-(p * p.log()).sum()))
    assert s["max_entropy"] == pytest.approx(math.log(10))
    assert model.training and all(q.grad is None for q in model.parameters())   # teacher untouched


def test_temperature_and_image_controls_redraw():
    explorer = TemperatureExplorer(teacher(), images()[0], T=1.0)
    count, entropy = explorer.update_count, explorer.stats["entropy"]
    assert explorer.stats["label"] is None
    assert entropy == pytest.approx(explorer.stats["entropy_T1"])
    explorer.set(temperature=10.0)
    assert explorer.update_count == count + 1
    assert explorer.stats["entropy"] > entropy                           # hotter is flatter
    assert "T = 10" in explorer.figure.layout.title.text and "T = 10" in explorer.readout.value
    explorer.set(temperature=20.0, image=5)
    assert explorer.update_count == count + 2 and explorer.stats["index"] == 5
    assert "image 5" in explorer.figure.layout.title.text
    assert np.asarray(explorer.figure.data[0].z).shape == (8, 8)
    assert "dark knowledge" in explorer.readout.value
    with pytest.raises(ValueError, match="temperature"):
        explorer.set(temperature="hot")


def test_css_classes_and_argument_checks():
    explorer = TemperatureExplorer(teacher(), images())
    for control in ("temperature", "image"):
        assert f"labkit-temperature-{control}" in explorer.controls[control]._dom_classes
        assert explorer.controls[control].continuous_update is False
    assert "labkit-temperature" in explorer.widget._dom_classes
    assert "labkit-temperature-readout" in explorer.readout._dom_classes
    assert "labkit-temperature-figure" in explorer.figure._dom_classes
    assert explorer.controls["image"].max == 11
    with pytest.raises(ValueError, match=r"T must be a finite number in \[0.5, 20.0\]"):
        TemperatureExplorer(teacher(), images(), T=0.0)
    with pytest.raises(ValueError, match=r"index must be an integer in \[0, 11\]"):
        TemperatureExplorer(teacher(), images(), index=12)
    with pytest.raises(TypeError, match="teacher must be a torch.nn.Module"):
        TemperatureExplorer("resnet", images())
    with pytest.raises(TypeError, match=r"images must be a float tensor of 4 dimensions"):
        TemperatureExplorer(teacher(), torch.zeros(12, 64))


def test_trace_names_are_fixed_and_every_trace_property_is_a_plain_list():
    """Issue 11: the legend read "trace 1", then "T = 1 / T = 1" at T = 1. Names are set once, at
    creation, and differ; the data reach plotly.js as lists (numpy arrays do not survive the trip)."""
    explorer = TemperatureExplorer(teacher(), images(), T=4.0)
    names = [trace.name for trace in explorer.figure.data]
    for T in (1.0, 7.5, 20.0):
        explorer.set(temperature=T, image=int(T) % 12)
        assert [trace.name for trace in explorer.figure.data] == names
        assert not [(i, k) for i, t in enumerate(explorer.figure.data) for k, v in t.to_plotly_json().items()
                    if isinstance(v, np.ndarray)]
    bars = [trace.name for trace in explorer.figure.data if trace.type == "bar"]
    assert len(set(bars)) == 2 and all(name and not name.startswith("trace") for name in bars)
    assert explorer.figure.data[0].showlegend is False                      # the image is not a series
    assert "T = 20" in explorer.figure.layout.title.text


def test_setting_gives_the_stats_without_a_redraw():
    explorer = TemperatureExplorer(teacher(), images(), T=4.0)
    count, title = explorer.update_count, explorer.figure.layout.title.text
    at_8 = explorer.setting(8.0, 5)
    assert explorer.update_count == count and explorer.figure.layout.title.text == title   # nothing redrawn
    explorer.set(temperature=8.0, image=5)
    assert explorer.stats == at_8
    assert list(explorer.figure.data[1].x) == list(range(10)) == list(explorer.figure.data[2].x)  # whole data
    with pytest.raises(ValueError, match="T must be"):
        explorer.setting(0.1, 0)
    with pytest.raises(ValueError, match="index must be"):
        explorer.setting(4.0, 12)
