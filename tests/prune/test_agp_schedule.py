"""Chapter 10's schedules in training steps: AGPSchedule, plans and pruning inside one training run."""
import math

import pytest
import torch
from torch import nn

from labkit import prune, train


def test_agp_matches_zhu_and_gupta_with_n_steps_of_delta_t():
    # s_t = s_f + (s_i - s_f)(1 - (t - t0)/(n Δt))^3 at t = t0 + kΔt, with t0 = 100, Δt = 25, n = 8
    schedule = prune.AGPSchedule(0.9, end=300, initial=0.1, start=100, frequency=25)
    assert schedule.steps() == list(range(100, 301, 25))
    for k, t in enumerate(schedule.steps()):
        assert schedule.sparsity(t) == pytest.approx(0.9 + (0.1 - 0.9) * (1 - k / 8) ** 3)
    assert schedule.sparsity(0) == 0.0 and schedule.sparsity(99) == 0.0         # dense before t0
    assert schedule.sparsity(100) == pytest.approx(0.1)                          # s_i at t0
    assert schedule.sparsity(124) == schedule.sparsity(100)                      # held between prunes
    assert schedule.sparsity(300) == schedule.sparsity(10_000) == 0.9            # exactly s_f at the end
    assert [s for _, s in schedule.plan()] == pytest.approx([schedule.sparsity(t) for t in schedule.steps()])


def test_last_pruning_step_is_the_end_when_frequency_does_not_divide_the_duration():
    schedule = prune.AGPSchedule(0.8, end=10, start=2, frequency=3)
    assert schedule.steps() == [2, 5, 8, 10]
    assert schedule.sparsity(9) == pytest.approx(schedule.curve(8)) and schedule.sparsity(10) == 0.8


def test_rate_is_the_derivative_of_the_cubic():
    schedule = prune.AGPSchedule(0.95, end=1_000, initial=0.2, start=200, frequency=10)
    for t in (200.0, 350.0, 600.0, 999.0):
        h = 1e-3
        numeric = (schedule.curve(t + h) - schedule.curve(t - h)) / (2 * h) if t > 200 else \
            (schedule.curve(t + h) - schedule.curve(t)) / h
        assert schedule.rate(t) == pytest.approx(numeric, rel=1e-4)
    assert schedule.rate(200) == pytest.approx(3 * 0.75 / 800)                   # steepest at the start
    assert schedule.rate(1_000) == 0.0 and schedule.rate(100) == 0.0 and schedule.rate(2_000) == 0.0
    ts = torch.linspace(200, 1_000, 20_001)
    area = torch.trapezoid(torch.tensor([schedule.rate(float(t)) for t in ts]), ts)
    assert float(area) == pytest.approx(0.95 - 0.2, rel=1e-6)                  # ∫ ds/dt = s_f - s_i


def test_round_schedules_of_chapter_07_are_the_same_cubic():
    schedule = prune.AGPSchedule(0.9, end=4)
    assert prune.agp_schedule(0.9, 4) == pytest.approx([schedule.sparsity(t) for t in range(1, 5)])
    assert prune.agp_sparsity(3, 4, 0.9, initial=0.3) == pytest.approx(prune.AGPSchedule(0.9, end=4, initial=0.3).curve(3))


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(final=1.0, end=10), ValueError, r"final must be a finite number in \[0.0, 1.0\)"),
    (dict(final=-0.1, end=10), ValueError, "final must be"),
    (dict(final=float("nan"), end=10), ValueError, "final must be"),
    (dict(final=0.5, end=10, initial=0.6), ValueError, r"initial must be a finite number in \[0.0, 0.5\]"),
    (dict(final=0.5, end=10, frequency=0), ValueError, "frequency must be an integer >= 1, got 0"),
    (dict(final=0.5, end=10, frequency=-3), ValueError, "frequency must be an integer >= 1"),
    (dict(final=0.5, end=10, frequency=2.5), TypeError, "frequency must be an integer"),
    (dict(final=0.5, end=10, start=20), ValueError, "start must be before end: the schedule starts at step 20"),
    (dict(final=0.5, end=10, start=10), ValueError, "start must be before end"),
    (dict(final=0.5, end=10, start=-1), ValueError, "start must be an integer >= 0"),
    (dict(final="0.5", end=10), TypeError, "final must be a real number"),
])
def test_agp_schedule_bad_inputs(kwargs, error, match):
    with pytest.raises(error, match=match):
        prune.AGPSchedule(**kwargs)


@pytest.mark.parametrize("call", [lambda: prune.one_shot_schedule(1.0), lambda: prune.iterative_schedule(1.0, 3),
                                  lambda: prune.agp_schedule(1.0, 3), lambda: prune.agp_sparsity(1, 3, 1.0)])
def test_round_schedules_refuse_a_final_sparsity_of_one(call):
    with pytest.raises(ValueError, match=r"final must be a finite number in \[0.0, 1.0\)"):
        call()


def test_plan_rounds_gives_one_shot_and_iterative_step_plans():
    assert prune.plan_rounds(prune.one_shot_schedule(0.9), 300) == [(0, 0.9)]
    assert prune.plan_rounds(prune.iterative_schedule(0.9, 3), 300) == [(0, pytest.approx(0.3)), (100, pytest.approx(0.6)),
                                                                        (200, pytest.approx(0.9))]
    assert prune.training_steps((torch.zeros(130, 1), torch.zeros(130)), 3, 64) == 9     # 3 · ceil(130/64)


def test_prune_on_schedule_prunes_during_training_at_the_planned_steps(blobs, model_factory):
    model = model_factory(0)
    total = prune.training_steps(blobs, 2, 64)                                  # 2 · 10 = 20 steps
    schedule = prune.AGPSchedule(0.8, end=15, start=3, frequency=4)
    out = prune.prune_on_schedule(model, blobs, schedule, epochs=2, lr=3e-3)
    assert out["total_steps"] == total == 20
    assert [e["step"] for e in out["prunes"]] == [3, 7, 11, 15]
    assert [e["target"] for e in out["prunes"]] == pytest.approx([schedule.sparsity(t) for t in (3, 7, 11, 15)])
    sparsities = [e["sparsity"] for e in out["prunes"]]
    assert sparsities == sorted(sparsities) and sparsities[-1] == pytest.approx(0.8, abs=1e-4)
    counts = prune.sparsity(model)
    assert counts["zeros"] == round(0.8 * counts["total"])                      # exact after 5 more Adam steps
    for module in prune.prunable_layers(model).values():
        assert torch.all(module.weight_orig[module.weight_mask == 0] == 0)
    assert len(out["epochs"]) == 2


def test_every_plan_gets_the_same_training_budget(blobs, model_factory):
    """One-shot, iterative and AGP plans: same number of optimizer steps, same final zero count."""
    total = prune.training_steps(blobs, 1, 32)
    plans = {"one-shot": prune.plan_rounds([0.7], total),
             "iterative": prune.plan_rounds(prune.iterative_schedule(0.7, 3), total),
             "agp": prune.AGPSchedule(0.7, end=total // 2, frequency=2)}
    steps_seen = {}
    for name, plan in plans.items():
        model = model_factory(1)
        counter = {"n": 0}
        hook = lambda m, counter=counter: counter.__setitem__("n", counter["n"] + 1)   # noqa: E731
        model.register_forward_pre_hook(lambda m, x, counter=counter: hook(m))
        prune.prune_on_schedule(model, blobs, plan, epochs=1, batch_size=32, lr=3e-3)
        steps_seen[name] = counter["n"]
        assert prune.sparsity(model)["zeros"] == round(0.7 * prune.sparsity(model)["total"])
    assert len(set(steps_seen.values())) == 1 and steps_seen["agp"] == total


def test_per_layer_targets_in_a_plan(blobs, model_factory):
    model = model_factory(0)
    plan = [(0, {"3": 0.5}), (5, {"3": 0.9, "0": 0.25})]
    prune.prune_on_schedule(model, blobs, plan, epochs=1, lr=3e-3)
    layers = prune.sparsity(model)["layers"]
    assert layers["3"] == round(0.9 * 4608) / 4608 and layers["0"] == pytest.approx(0.25, abs=0.03) and layers["5"] == 0.0


@pytest.mark.parametrize("plan, error, match", [
    ([(0, 0.5), (99, 0.9)], ValueError, r"plan\[1\] prunes at step 99, after the end of training \(10 steps\)"),
    (prune.AGPSchedule(0.9, end=11), ValueError, "after the end of training"),
    ([(5, 0.5), (2, 0.9)], ValueError, "increasing order"),
    ([(0, 1.0)], ValueError, r"plan\[0\] target must be a finite number in \[0.0, 1.0\)"),
    ([(0, {"fc9": 0.5})], ValueError, r"unknown layer\(s\) \['fc9'\]"),
    ([], ValueError, "empty plan"),
    (0.9, TypeError, "plan must be an AGPSchedule or a list"),
    ([0.9], TypeError, r"plan\[0\] must be a \(step, target\) pair"),
])
def test_prune_on_schedule_bad_plans(blobs, model_factory, plan, error, match):
    model = model_factory(0)
    with pytest.raises(error, match=match):
        prune.prune_on_schedule(model, blobs, plan, epochs=1)
    assert not any(prune.is_pruned(m) for m in prune.prunable_layers(model).values())   # nothing half-done


def test_prune_on_schedule_needs_prunable_layers(blobs):
    with pytest.raises(ValueError, match="no nn.Linear or nn.Conv2d layer to prune"):
        prune.prune_on_schedule(nn.Sequential(nn.Flatten()), blobs, [(0, 0.5)])
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        prune.prune_on_schedule("model", blobs, [(0, 0.5)])
    assert math.isfinite(train.evaluate(nn.Sequential(nn.Flatten(), nn.Linear(64, 10)), blobs))


def test_a_per_layer_plan_follows_the_same_cubic_to_each_layers_final_sparsity(blobs, model_factory):
    schedule = prune.AGPSchedule(0.9, end=8, frequency=2)
    plan = schedule.plan({"3": 0.9, "5": 0.45})
    assert [t for t, _ in plan] == [0, 2, 4, 6, 8]
    for (t, targets), (_, s) in zip(plan, schedule.plan()):
        assert targets == {"3": pytest.approx(s), "5": pytest.approx(s / 2)}
    model = model_factory(0)
    prune.prune_on_schedule(model, blobs, plan, epochs=1)
    assert prune.sparsity(model)["layers"] == {"0": 0.0, "3": round(0.9 * 4608) / 4608, "5": 0.45}
    with pytest.raises(TypeError, match="allocation must be a non-empty dict"):
        schedule.plan({})
    with pytest.raises(ValueError, match="needs final > 0"):
        prune.AGPSchedule(0.0, end=8).plan({"3": 0.5})
