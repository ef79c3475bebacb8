"""One registry of pruning criteria: a criterion registered once is usable by name everywhere.

Before the registry, every name other than "magnitude" fell back to random scores (a criterion added
to ``CRITERIA`` pruned at random without an error); these tests pin the dispatch by exact masks.
"""
import pytest
import torch

from labkit import prune
from labkit.prune.masks import effective_weight


def largest_first(model, layers, *, seed=0, data=None):
    """``-|w|``: prunes the *largest* weights first — the opposite of magnitude, never random."""
    return {name: -effective_weight(m).detach().abs() for name, m in layers.items()}


@pytest.fixture
def registered():
    prune.register_criterion("largest_first", largest_first)
    yield "largest_first"
    prune.unregister_criterion("largest_first")


def expected_global_masks(model, scores, amount):
    flat = torch.cat([s.reshape(-1).double() for s in scores.values()])
    order = torch.sort(flat, stable=True).indices[:round(amount * flat.numel())]
    mask = torch.ones_like(flat)
    mask[order] = 0
    out, start = {}, 0
    for name, s in scores.items():
        out[name] = mask[start:start + s.numel()].reshape(s.shape)
        start += s.numel()
    return out


def test_registered_criterion_drives_global_prune_not_random(model, registered):
    weights = {n: m.weight.detach().clone() for n, m in prune.prunable_layers(model).items()}
    masks = prune.global_prune(model, 0.5, registered)
    expected = expected_global_masks(model, {n: -w.abs() for n, w in weights.items()}, 0.5)
    for name in weights:
        torch.testing.assert_close(masks[name], expected[name].float())
    kept = torch.cat([weights[n][masks[n] == 1].abs() for n in weights])
    pruned = torch.cat([weights[n][masks[n] == 0].abs() for n in weights])
    assert float(pruned.min()) >= float(kept.max())              # the largest half went, not a random half


def test_registered_criterion_in_saliency_prune_layer_schedules_and_views(model, registered):
    scores = prune.saliency(model, registered)
    torch.testing.assert_close(scores["3"], -model[3].weight.detach().abs())
    assert registered in prune.CRITERIA and registered in prune.ALL_CRITERIA and registered in prune.CHANNEL_CRITERIA
    assert registered not in prune.DATA_CRITERIA
    mask = prune.prune_layer(model[5], 0.25, registered)
    w = model[5].weight_orig.detach().abs()
    assert float(w[mask == 0].min()) >= float(w[mask == 1].max())
    history = prune.prune_and_finetune(model, None, [0.6], epochs_per_round=0, criterion=registered)
    assert history[0]["sparsity"] == pytest.approx(0.6, abs=1e-3)



def test_registered_criterion_appears_in_every_pruning_explorer(model, registered, blobs):
    """One function plus one registration: the explorers offer it with no edit of theirs."""
    from labkit.widgets import ChannelPruningExplorer, CriteriaExplorer, PruningExplorer
    data = (blobs[0][:40], blobs[1][:40])
    explorer = PruningExplorer(model, data, sparsity=0.5, criterion=registered)
    assert registered in explorer.controls["criterion"].options and explorer.stats["criterion"] == registered
    criteria = CriteriaExplorer(model, data, {}, criterion=registered)
    assert registered in criteria.scores and criteria.controls["criterion"].value == registered
    torch.testing.assert_close(criteria.scores[registered]["3"], -model[3].weight.detach().abs())
    channels = ChannelPruningExplorer(model, data, criterion=registered, latency_rounds=2, latency_repeats=1)
    assert channels.criteria[-1] == "random" and registered in channels.criteria
    assert channels.stats["criterion"] == registered

def test_registered_weight_criterion_scores_channels_by_filter_sums(model, registered):
    scores = prune.channel_scores(model, registered)
    filters = model[0].weight.detach().double().reshape(4, -1)
    torch.testing.assert_close(scores["0"], -filters.abs().sum(1))
    smaller, keep = prune.structured_prune(model, 0.5, registered)
    assert keep["0"].tolist() == sorted(torch.argsort(filters.abs().sum(1))[:2].tolist())   # the two weakest kept
    assert smaller[0].out_channels == 2


def test_channel_only_criterion_is_refused_per_weight(model):
    @prune.register_criterion("first_channels", unit="channel")
    def first_channels(model, groups, *, seed=0, data=None):
        return {n: -torch.arange(model.get_submodule(g.layer).weight.shape[0], dtype=torch.float64)
                for n, g in groups.items()}
    try:
        _, keep = prune.structured_prune(model, 0.5, "first_channels")
        assert keep["0"].tolist() == [0, 1]
        with pytest.raises(ValueError, match="criterion must be one of 'magnitude', 'random'"):
            prune.global_prune(model, 0.5, "first_channels")
        with pytest.raises(ValueError, match="criterion must be one of"):
            prune.saliency(model, "first_channels")
    finally:
        prune.unregister_criterion("first_channels")
    assert "first_channels" not in prune.CHANNEL_CRITERIA


def test_unknown_name_lists_the_registered_ones(model):
    with pytest.raises(ValueError, match="'magnitude', 'random', 'taylor', 'obd', 'gradient'.*got 'hessian'"):
        prune.global_prune(model, 0.5, "hessian")
    with pytest.raises(ValueError, match="'l1', 'l2', 'bn', 'correlation', 'geometric_median'.*got 'l3'"):
        prune.channel_scores(model, "l3")
    with pytest.raises(ValueError, match="already registered"):
        prune.register_criterion("magnitude", largest_first)
    with pytest.raises(TypeError, match="fn must be callable"):
        prune.register_criterion("new", "not a function")
    with pytest.raises(ValueError, match="unit must be one of 'weight', 'channel'"):
        prune.register_criterion("new", largest_first, unit="layer")


def test_data_criterion_through_global_prune_and_channels(model_factory, blobs):
    a, b = model_factory(), model_factory()
    masks = prune.global_prune(a, 0.5, "taylor", data=blobs, batches=2)
    given = prune.global_prune(b, 0.5, scores=prune.saliency(b, "taylor", blobs, batches=2))
    for name in masks:
        assert torch.equal(masks[name], given[name])
    with pytest.raises(ValueError, match="computed from data"):
        prune.global_prune(model_factory(), 0.5, "obd")
    fresh = model_factory()
    per_weight = prune.taylor_scores(fresh, blobs, batches=2)["0"]
    torch.testing.assert_close(prune.channel_scores(fresh, "taylor", data=blobs, batches=2)["0"],
                               per_weight.double().reshape(4, -1).sum(1))


def test_builtin_channel_criteria_unchanged(model):
    torch.testing.assert_close(prune.channel_scores(model, "magnitude")["0"], prune.channel_scores(model, "l1")["0"])
    expected = torch.rand(4, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    assert torch.equal(prune.channel_scores(model, "random", seed=7)["0"], expected)
    assert list(prune.CRITERIA) == ["magnitude", "random"]
    assert list(prune.DATA_CRITERIA) == ["taylor", "obd", "gradient"]
