"""Budgeted allocations (uniform, global, from sensitivity, scaled), network slimming's global γ
threshold, and NetAdapt's greedy search."""
import copy

import pytest
import torch
from torch import nn

from labkit import measure, prune, train


def bitmask_bytes(model):
    return measure.size_on_disk(model, "bitmask")


def test_measured_bytes_is_the_file_size(model_factory):
    model = model_factory(0)
    assert prune.measured_bytes("bitmask")(model) == bitmask_bytes(model)
    assert prune.measured_bytes("csr", "int8")(model) == measure.size_on_disk(model, "csr", values_fmt="int8")
    with pytest.raises(ValueError, match="fmt"):
        prune.measured_bytes("zip")


def test_uniform_allocation_is_the_least_pruning_that_meets_the_budget(model_factory):
    model, resource = model_factory(0), prune.measured_bytes()
    budget = 0.4 * resource(model)
    alloc = prune.uniform_allocation(model, resource, budget)
    assert len(set(alloc.values())) == 1 and set(alloc) == {"0", "3", "5"}
    s = alloc["0"]
    met = copy.deepcopy(model)
    prune.apply_allocation(met, alloc)
    assert resource(met) <= budget
    less = copy.deepcopy(model)
    prune.apply_allocation(less, dict.fromkeys(alloc, s - 0.01))
    assert resource(less) > budget                                         # minimal to 1 %
    assert not prune.is_pruned(model[3])                                   # the model is untouched


def test_global_allocation_is_what_one_threshold_gives_each_layer(model_factory):
    model, resource = model_factory(0), prune.measured_bytes()
    budget = 0.3 * resource(model)
    alloc = prune.global_allocation(model, resource, budget)
    applied = copy.deepcopy(model)
    prune.apply_allocation(applied, alloc)
    assert resource(applied) <= budget
    total = sum(alloc[n] * m.weight.numel() for n, m in prune.prunable_layers(model).items())
    reference = copy.deepcopy(model)
    prune.global_magnitude_prune(reference, total / prune.sparsity(model)["total"])
    assert prune.sparsity(reference)["layers"] == pytest.approx(alloc, abs=1e-3)
    assert alloc["3"] > alloc["0"]                                          # the big layer gives most


def test_budget_above_the_dense_model_prunes_nothing(model_factory):
    model, resource = model_factory(0), prune.measured_bytes()
    assert prune.uniform_allocation(model, resource, 2 * resource(model)) == {"0": 0.0, "3": 0.0, "5": 0.0}


@pytest.mark.parametrize("allocate", [prune.uniform_allocation, prune.global_allocation])
def test_impossible_budgets_are_refused_with_the_reachable_minimum(model_factory, allocate):
    model, resource = model_factory(0), prune.measured_bytes()
    sparsest = copy.deepcopy(model)
    prune.apply_allocation(sparsest, {"0": 0.99, "3": 0.99, "5": 0.99})
    floor = resource(sparsest)
    with pytest.raises(ValueError, match=f"budget 1,000 cannot be met: .* is {int(floor):,} "):
        allocate(model, resource, 1_000)
    with pytest.raises(ValueError, match=r"budget must be a finite number in \(0.0, inf\)"):
        allocate(model, resource, 0)
    with pytest.raises(ValueError, match="no nn.Linear or nn.Conv2d layer"):
        allocate(nn.Sequential(nn.ReLU()), resource, 1_000)
    with pytest.raises(TypeError, match="resource must be a function"):
        allocate(model, 1_000, 1_000)
    if allocate is prune.uniform_allocation:
        assert allocate(model, resource, floor) == pytest.approx(dict.fromkeys("035", 0.99), abs=1e-3)  # reachable
    else:                       # one global ranking rounds differently from per-layer 99 %: a clear error
        with pytest.raises(ValueError, match="cannot be met by global magnitude pruning"):
            allocate(model, resource, floor)


def test_sensitivity_allocation_reads_the_scan():
    scan = {"sparsities": [0.0, 0.5, 0.8, 0.9], "baseline": 0.98,
            "layers": {"fc1": [0.98, 0.98, 0.975, 0.96], "fc2": [0.98, 0.95, 0.90, 0.5], "fc3": [0.97, 0.9, 0.8, 0.7]}}
    assert prune.sensitivity_allocation(scan, 0.01) == {"fc1": 0.8, "fc2": 0.0, "fc3": 0.0}
    assert prune.sensitivity_allocation(scan, 0.03) == {"fc1": 0.9, "fc2": 0.5, "fc3": 0.0}
    with pytest.raises(TypeError, match="sensitivity_scan"):
        prune.sensitivity_allocation({"layers": {}}, 0.01)
    with pytest.raises(ValueError, match="tolerance must be"):
        prune.sensitivity_allocation(scan, 2.0)


def test_scale_allocation_keeps_the_shape_and_meets_the_budget(model_factory):
    model, resource = model_factory(0), prune.measured_bytes()
    budget = 0.35 * resource(model)
    scaled = prune.scale_allocation(model, {"0": 0.2, "3": 0.8, "5": 0.5}, resource, budget)
    density = {n: 1 - s for n, s in scaled.items()}
    assert density["0"] / 0.8 == pytest.approx(density["3"] / 0.2, rel=1e-3) == pytest.approx(density["5"] / 0.5, rel=1e-3)
    applied = copy.deepcopy(model)
    prune.apply_allocation(applied, scaled)
    assert resource(applied) <= budget


def test_global_channel_keep_ranks_every_group_together():
    scores = {"fc1": torch.tensor([0.9, 0.1, 0.5, 0.05]), "fc2": torch.tensor([0.2, 0.3, 0.01])}
    keep = prune.global_channel_keep(scores, 3 / 7)                          # drop 0.01, 0.05, 0.1
    assert {k: v.tolist() for k, v in keep.items()} == {"fc1": [0, 2], "fc2": [0, 1]}
    keep = prune.global_channel_keep(scores, 0.99)                          # every group keeps its best
    assert {k: v.tolist() for k, v in keep.items()} == {"fc1": [0], "fc2": [1]}
    with pytest.raises(ValueError, match="amount must be"):
        prune.global_channel_keep(scores, 1.0)
    with pytest.raises(TypeError, match="non-empty dict"):
        prune.global_channel_keep({}, 0.5)


def test_global_channel_keep_slims_a_batchnorm_mlp():
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 6),
                        nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3)).eval()
    with torch.no_grad():
        mlp[2].weight.copy_(torch.tensor([1.0, 0.01, 1.0, 0.02, 1.0, 1.0, 0.03, 1.0]))
        mlp[5].weight.copy_(torch.tensor([0.04, 1.0, 1.0, 0.05, 1.0, 1.0]))
    groups = prune.channel_groups(mlp, linear=True)
    scores = {g: prune.bn_scale_scores(mlp.get_submodule(groups[g].norm)) for g in groups}
    slim = prune.prune_channels(mlp, prune.global_channel_keep(scores, 5 / 14))
    assert (slim[1].out_features, slim[4].out_features) == (5, 4)


def test_netadapt_meets_the_budget_greedily(blobs, model_factory):
    x, y = blobs
    model = model_factory(0)
    train.fit(model, (x[:500], y[:500]), epochs=2, lr=3e-3, progress=False)
    resource = prune.measured_bytes()
    budget = 0.5 * resource(model)
    out = prune.netadapt(model, (x[:500], y[:500]), (x[500:], y[500:]), resource, budget, iterations=3,
                         finetune_steps=3, batch_size=32)
    assert out["resource"] <= budget and resource(out["model"]) == out["resource"]
    assert not prune.is_pruned(model[3])                                   # the input model is untouched
    history = out["history"]
    assert history[0]["chosen"] is None and history[0]["resource"] == resource(model)
    assert [h["resource"] for h in history] == sorted((h["resource"] for h in history), reverse=True)
    for step in history[1:]:
        proposals = step["proposals"]
        best = min(proposals, key=lambda n: proposals[n]["loss_per_unit"])
        assert step["chosen"] == best                                      # least accuracy lost per byte
        assert step["proposals"][best]["resource"] == step["resource"]
    assert out["allocation"] == pytest.approx(prune.sparsity(out["model"])["layers"])


def test_netadapt_refuses_an_impossible_budget_before_any_work(blobs, model_factory):
    calls = []

    def resource(model):
        calls.append(1)
        return float(measure.size_on_disk(model, "bitmask"))

    with pytest.raises(ValueError, match="cannot be met"):
        prune.netadapt(model_factory(0), blobs, blobs, resource, 10.0)
    assert len(calls) == 2                                                 # dense and sparsest only


def test_global_channel_keep_floor_keeps_every_layer_and_ranks_the_rest_globally():
    scores = {"fc1": torch.tensor([0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09, 0.10]),
              "fc2": torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5])}
    plain = prune.global_channel_keep(scores, 0.6)                         # keep 6 of 15: fc2's 5 and fc1's best
    assert {k: v.tolist() for k, v in plain.items()} == {"fc1": [9], "fc2": [0, 1, 2, 3, 4]}
    floored = prune.global_channel_keep(scores, 0.6, min_keep=0.3)         # fc1 keeps ≥ 3, fc2 ≥ 2 (ceil 1.5)
    assert {k: v.tolist() for k, v in floored.items()} == {"fc1": [7, 8, 9], "fc2": [0, 1, 2]}
    assert sum(len(v) for v in floored.values()) == 15 - round(0.6 * 15)   # the budget is still exact
    exact = prune.global_channel_keep({"a": torch.rand(500), "b": torch.rand(300)}, 0.8, min_keep=0.2)
    assert (len(exact["a"]), len(exact["b"])) == (100, 60)                 # 0.2·300 is 60, not ceil(60.000…01)
    with pytest.raises(ValueError, match="min_keep 0.5 keeps 8 channels, more than the 6"):
        prune.global_channel_keep(scores, 0.6, min_keep=0.5)
    with pytest.raises(ValueError, match="min_keep must be"):
        prune.global_channel_keep(scores, 0.6, min_keep=1.5)


def test_batchnorm_after_the_consumer_makes_a_layers_gamma_scale_free():
    # Why one global |γ| threshold can empty a layer: with a BatchNorm after fc2, scaling fc1's (γ, β) by
    # c > 0 changes nothing downstream (fc2 is linear, BN2 re-normalises), so the L1 term on γ can shrink
    # all of fc1's γ together at no cost to the loss — and the global ranking then removes fc1 first.
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(12, 10), nn.BatchNorm1d(10), nn.ReLU(), nn.Linear(10, 8),
                        nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3)).train()
    x = torch.randn(64, 12)
    with torch.no_grad():
        mlp[2].weight.uniform_(0.5, 1.0)
        mlp[2].bias.uniform_(-0.2, 0.2)
        before = mlp(x)
        mlp[2].weight.mul_(0.2)
        mlp[2].bias.mul_(0.2)
        after = mlp(x)
    torch.testing.assert_close(after, before, atol=5e-3, rtol=5e-3)       # only BN2's ε (1e-5) sees the scale
    groups = prune.channel_groups(mlp, linear=True)
    scores = {g: prune.bn_scale_scores(mlp.get_submodule(groups[g].norm)) for g in groups}
    assert len(prune.global_channel_keep(scores, 0.5)["1"]) == 1          # emptied but for its best neuron
    floored = prune.global_channel_keep(scores, 0.5, min_keep=0.3)
    assert (len(floored["1"]), len(floored["4"])) == (3, 6)
