"""The lottery ticket machinery: snapshots, rewinding, pruning what remains, early stopping, IMP."""
import copy

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from labkit import prune, train


def test_prune_remaining_prunes_a_fraction_of_what_is_left(model_factory):
    model = model_factory(0)
    n = {name: m.weight.numel() for name, m in prune.prunable_layers(model).items()}   # 36, 4608, 320
    prune.prune_remaining(model, 0.2, layer_rates={"5": 0.1})
    zeros = {name: int((m.weight == 0).sum()) for name, m in prune.prunable_layers(model).items()}
    assert zeros == {"0": round(0.2 * 36), "3": round(0.2 * 4608), "5": round(0.1 * 320)}
    left = prune.prune_remaining(model, 0.2, layer_rates={"5": 0.1})
    zeros2 = {name: int((m.weight == 0).sum()) for name, m in prune.prunable_layers(model).items()}
    for name, rate in (("0", 0.2), ("3", 0.2), ("5", 0.1)):
        assert zeros2[name] == zeros[name] + round(rate * (n[name] - zeros[name]))
        assert left[name] == pytest.approx(1 - zeros2[name] / n[name])
    assert left["3"] == pytest.approx((1 - 0.2) ** 2, abs=1 / 4608)                    # (1 − p)^r


def test_prune_remaining_removes_the_smallest_surviving_weights(model_factory):
    model = model_factory(0)
    prune.prune_remaining(model, 0.5)
    layer = model[3]
    kept, pruned = layer.weight_orig[layer.weight_mask == 1].abs(), layer.weight_orig.detach().clone()
    before = model_factory(0)[3].weight.detach().abs()
    assert float(before[layer.weight_mask == 0].max()) <= float(before[layer.weight_mask == 1].min())
    assert kept.numel() == pruned.numel() // 2


def test_rewind_restores_the_initial_weights_under_the_mask(blobs, model_factory):
    model = model_factory(0)
    theta0 = prune.weights_snapshot(model)
    assert set(theta0) == {"0.weight", "0.bias", "3.weight", "3.bias", "5.weight", "5.bias"}
    train.fit(model, blobs, epochs=1, lr=3e-3, progress=False)
    prune.prune_remaining(model, 0.6)
    masks = {n: m.weight_mask.clone() for n, m in prune.prunable_layers(model).items()}
    assert set(prune.weights_snapshot(model)) == set(theta0)                   # names without "_orig"
    prune.rewind(model, theta0)
    for name, module in prune.prunable_layers(model).items():
        assert torch.equal(module.weight, theta0[f"{name}.weight"] * masks[name])
        assert torch.equal(module.weight_mask, masks[name])                    # the mask survives
        assert torch.equal(module.bias, theta0[f"{name}.bias"])
    with pytest.raises(ValueError, match="snapshot has no parameter '0.weight'"):
        prune.rewind(model, {k: v for k, v in theta0.items() if k != "0.weight"})
    with pytest.raises(ValueError, match=r"snapshot\['0.bias'\] has shape \(3,\)"):
        prune.rewind(model, {**theta0, "0.bias": torch.zeros(3)})


def test_early_stopping_picks_the_lowest_validation_loss(blobs, model_factory):
    model = model_factory(0)
    x, y = blobs
    run = prune.train_with_early_stopping(model, (x[:400], y[:400]), (x[400:], y[400:]), iterations=45,
                                          eval_every=10, batch_size=32, lr=3e-3, snapshot_at=7)
    iterations, losses, accuracies = zip(*run["curve"])
    assert list(iterations) == [10, 20, 30, 40, 45]                        # every 10, and the last
    best = min(range(len(losses)), key=losses.__getitem__)
    assert run["early_stop_iteration"] == iterations[best] and run["best_val_loss"] == losses[best]
    at_best = copy.deepcopy(model)
    at_best.load_state_dict(run["best_state"])
    logits = train.predict(at_best, x[400:])
    assert float(F.cross_entropy(logits, y[400:])) == pytest.approx(run["best_val_loss"], rel=1e-5)
    assert float(F.cross_entropy(train.predict(model, x[400:]), y[400:])) == pytest.approx(losses[-1], rel=1e-5)
    assert accuracies[-1] == pytest.approx(train.evaluate(model, (x[400:], y[400:])))
    assert set(run["snapshot"]) == set(prune.weights_snapshot(model))


def test_training_stops_at_the_requested_iteration(blobs, model_factory):
    model, steps = model_factory(0), []
    model.register_forward_pre_hook(lambda m, inp: steps.append(m.training) if m.training else None)
    prune.train_with_early_stopping(model, blobs, blobs, iterations=23, start_iteration=5, eval_every=6,
                                    batch_size=50)
    assert len(steps) == 18                                                # iterations 6 … 23
    with pytest.raises(ValueError, match="start_iteration must be before the end of training: got 23"):
        prune.train_with_early_stopping(model, blobs, blobs, iterations=23, start_iteration=23)


def test_lottery_ticket_rounds_masks_and_controls(blobs):
    x, y = blobs
    built = []

    def build(seed):
        torch.manual_seed(seed)
        built.append(seed)
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))

    rounds = prune.lottery_ticket(build, (x[:400], y[:400]), (x[400:500], y[400:500]), (x[500:], y[500:]),
                                  rounds=2, iterations=30, rate=0.5, layer_rates={"3": 0.25}, eval_every=10,
                                  reinit_rounds=[2], batch_size=32, lr=3e-3)
    assert [r["round"] for r in rounds] == [0, 1, 2]
    expected = [1.0, 1 - (1024 + 80) / 2368, 1 - (1536 + 140) / 2368]    # 50 % of 2048, 25 % of 320 per round
    assert [r["remaining"] for r in rounds] == pytest.approx(expected)
    assert rounds[2]["ticket"]["remaining"] == rounds[2]["reinit"]["remaining"]   # same mask, other init
    assert rounds[0]["reinit"] is None and rounds[1]["reinit"] is None
    assert built == [0, 1002]                                              # θ₀ once, one fresh init
    for r in rounds:
        assert r["ticket"]["early_stop_iteration"] in (10, 20, 30)
        assert 0.0 <= r["ticket"]["test_accuracy"] <= 1.0


def test_lottery_ticket_with_late_rewinding_trains_from_iteration_k(blobs):
    x, y = blobs

    def build(seed):
        torch.manual_seed(seed)
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 10))

    rounds = prune.lottery_ticket(build, (x[:400], y[:400]), (x[400:], y[400:]), (x[400:], y[400:]), rounds=1,
                                  iterations=20, rate=0.5, rewind_iteration=8, eval_every=4, batch_size=40)
    assert rounds[1]["ticket"]["early_stop_iteration"] in (12, 16, 20)       # evaluated after iteration k = 8


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(rewind_iteration=30), ValueError, r"rewind_iteration must be inside the training run, in \[0, 29\]"),
    (dict(rewind_iteration=31), ValueError, "rewind_iteration must be inside the training run"),
    (dict(rate=1.0), ValueError, r"rate must be a finite number in \[0.0, 1.0\)"),
    (dict(rate=[0.2]), ValueError, "one rate per round"),
    (dict(layer_rates={"fc9": 0.1}), ValueError, r"unknown layer\(s\) \['fc9'\]"),
    (dict(iterations=0), ValueError, "iterations must be an integer >= 1"),
])
def test_lottery_ticket_bad_inputs_fail_before_training(blobs, kwargs, error, match):
    calls = []

    def build(seed):
        calls.append(seed)
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 10))

    args = dict(rounds=2, iterations=30, rate=0.2)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        prune.lottery_ticket(build, blobs, blobs, blobs, **args)


def test_models_without_prunable_layers_are_refused(blobs):
    with pytest.raises(ValueError, match="no nn.Linear or nn.Conv2d layer to prune"):
        prune.lottery_ticket(lambda seed: nn.Sequential(nn.Flatten()), blobs, blobs, blobs, rounds=1, iterations=5)
    with pytest.raises(ValueError, match="no nn.Linear or nn.Conv2d layer"):
        prune.prune_remaining(nn.Sequential(nn.ReLU()), 0.2)
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        prune.weights_snapshot("lenet")
