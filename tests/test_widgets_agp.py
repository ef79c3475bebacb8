"""The AGP explorer (labkit.widgets.agp) without a browser: schedule, derivative, re-pruning, refusals."""
import copy

import pytest
import torch
from torch import nn

from labkit import prune, train
from labkit.widgets import AGPExplorer


def small_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 3))


def eval_data():
    g = torch.Generator().manual_seed(1)
    return torch.rand(64, 1, 8, 8, generator=g), torch.randint(0, 3, (64,), generator=g)


def test_explorer_draws_labkit_schedule_and_prunes_the_model_to_the_picked_step():
    model, data = small_model(), eval_data()
    explorer = AGPExplorer(model, data, total_steps=1000, final=0.8, initial=0.1, start=100, duration=600,
                           frequency=50, step=400)
    schedule = prune.AGPSchedule(0.8, end=700, initial=0.1, start=100, frequency=50)
    s = explorer.stats
    assert (s["start"], s["end"], s["frequency"], s["prunes"]) == (100, 700, 50, 13)
    assert s["sparsity"] == pytest.approx(schedule.sparsity(400)) and s["error"] is None
    assert s["rate_per_1000"] == pytest.approx(1000 * schedule.rate(400))
    reference = copy.deepcopy(model)
    prune.global_prune(reference, round(schedule.sparsity(400), 4))
    assert s["accuracy"] == pytest.approx(train.evaluate(reference, data))
    stairs, cubic, marker, slope, _ = explorer.figure.data
    assert isinstance(stairs.x, tuple) and stairs.y[list(stairs.x).index(400)] == pytest.approx(100 * s["sparsity"])
    assert max(stairs.y) == pytest.approx(80.0) and stairs.y[0] == 0.0
    assert marker.x == (400,) and slope.y[list(slope.x).index(100)] == pytest.approx(100 * 1000 * schedule.rate(100))
    assert not prune.is_pruned(model[1])                                    # the learner's model is untouched
    assert stairs.name and cubic.name and slope.name                        # legend entries are named


def test_controls_redraw_and_cache_the_accuracy():
    explorer = AGPExplorer(small_model(), eval_data(), total_steps=200, final=0.9, duration=100, frequency=10)
    count = explorer.update_count
    explorer.set(step=50)
    assert explorer.update_count == count + 1 and explorer.stats["step"] == 50
    cached = len(explorer.remembered("accuracy"))
    explorer.set(step=55)                                                   # same pruning step → same sparsity
    assert len(explorer.remembered("accuracy")) == cached
    explorer.set(frequency=25)
    assert explorer.stats["prunes"] == 5 and "every 25 steps" in explorer.figure.layout.title.text
    explorer.set(step=200)
    assert explorer.stats["sparsity"] == pytest.approx(0.9) and explorer.stats["rate_per_1000"] == 0.0


def test_refused_schedules_show_labkit_error_and_keep_the_last_valid_one():
    explorer = AGPExplorer(small_model(), eval_data(), total_steps=200, final=0.5, duration=100, frequency=10)
    before = list(explorer.figure.data[0].y)
    explorer.set(initial=0.7)                                               # above the final sparsity
    assert "initial must be a finite number in [0.0, 0.5]" in explorer.stats["error"]
    assert "schedule refused" in explorer.readout.value and list(explorer.figure.data[0].y) == before
    explorer.set(initial=0.0, start=150, duration=100)                       # ends at 250 > 200
    assert "after the end of training (200 steps)" in explorer.stats["error"]
    explorer.set(duration=50)
    assert explorer.stats["error"] is None and explorer.stats["end"] == 200


def test_setting_computes_without_redrawing():
    explorer = AGPExplorer(small_model(), eval_data(), total_steps=200, final=0.9, duration=100, frequency=10, step=50)
    count, title = explorer.update_count, explorer.figure.layout.title.text
    got = explorer.setting(100)
    assert explorer.update_count == count and explorer.figure.layout.title.text == title   # nothing redrawn
    assert explorer.stats["step"] == 50 and got["step"] == 100
    assert got["sparsity"] == pytest.approx(prune.AGPSchedule(0.9, end=100, frequency=10).sparsity(100))
    assert explorer.setting(50) == explorer.stats                                           # same numbers as shown
    assert explorer.setting(50, final=0.5)["sparsity"] < explorer.stats["sparsity"]
    with pytest.raises(ValueError, match="after the end of training"):
        explorer.setting(10, start=150)
    with pytest.raises(ValueError, match="step must be an integer"):
        explorer.setting(201)
    with pytest.raises(ValueError, match="unknown schedule argument"):
        explorer.setting(10, sparsity=0.5)


def test_bad_arguments():
    with pytest.raises(ValueError, match="no nn.Linear or nn.Conv2d layer"):
        AGPExplorer(nn.Sequential(nn.Flatten()), eval_data(), total_steps=100)
    with pytest.raises(ValueError, match="total_steps must be an integer >= 2"):
        AGPExplorer(small_model(), eval_data(), total_steps=1)
    with pytest.raises(ValueError, match="final must be"):
        AGPExplorer(small_model(), eval_data(), total_steps=100, final=1.0)
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        AGPExplorer("model", eval_data(), total_steps=100)
