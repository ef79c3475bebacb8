"""The tiny NAS: budget respected, seeded searches repeat exactly, builder shapes and MACs."""
import pytest
import torch

from labkit import measure
from labkit.lowrank import nas

SPACE = nas.SearchSpace(widths=(0.25, 0.5), depths=(1, 2), kernels=(3, 5))


@pytest.fixture(scope="module")
def toy():
    g = torch.Generator().manual_seed(0)
    centres = torch.rand(4, 1, 12, 12, generator=g)
    y = torch.randint(0, 4, (96,), generator=g)
    x = (centres[y] + 0.2 * torch.randn(96, 1, 12, 12, generator=g)).clamp(0, 1)
    return (x[:64], y[:64]), (x[64:], y[64:])


def scorer(toy):
    train_data, eval_data = toy
    return nas.ProxyScorer(train_data, eval_data, batch_size=32, input_shape=(1, 12, 12))


def test_builder_and_macs():
    c = nas.Candidate(0.5, 2, 5)
    model = nas.build_candidate(c, num_classes=4)
    assert model(torch.rand(3, 1, 28, 28)).shape == (3, 4)
    # stem 3×3 1→8 at 14×14; block1: dw 5×5 on 8 ch at 14×14 + pw 8→16;
    # block2 (stride 2): dw 5×5 on 16 at 7×7 + pw 16→32; fc 32→4
    expected = 14 * 14 * 9 * 8 + 14 * 14 * (25 * 8 + 8 * 16) + 7 * 7 * (25 * 16 + 16 * 32) + 32 * 4
    assert measure.total_macs(model, (1, 28, 28)) == expected
    assert nas.candidate_macs(c) == expected + 32 * 6    # 10 classes by default
    assert len(SPACE.all()) == 8


@pytest.mark.parametrize("search", [nas.random_search, nas.evolutionary_search])
def test_search_respects_the_budget_and_repeats(toy, search):
    limit = sorted(nas.candidate_macs(c, (1, 12, 12)) for c in SPACE.all())[4]
    first = search(SPACE, scorer(toy), max_macs=limit, budget=4, seed=3, progress=False)
    again = search(SPACE, scorer(toy), max_macs=limit, budget=4, seed=3, progress=False)
    assert first == again
    assert len(first) == 4 and len({(r["width"], r["depth"], r["kernel"]) for r in first}) == 4
    assert all(r["macs"] <= limit for r in first)
    assert all(0.0 <= r["accuracy"] <= 1.0 for r in first)
    assert nas.best(first)["accuracy"] == max(r["accuracy"] for r in first)


def test_evolution_mutates_one_gene_of_a_parent(toy):
    records = nas.evolutionary_search(SPACE, scorer(toy), max_macs=10**9, budget=6, population=2, seed=1,
                                      progress=False)
    assert len(records) == 6
    genes = [(r["width"], r["depth"], r["kernel"]) for r in records]
    for child in genes[2:]:
        assert any(sum(a != b for a, b in zip(child, parent)) == 1 for parent in genes[:genes.index(child)])


def test_bad_inputs(toy):
    with pytest.raises(ValueError, match="no candidate"):
        nas.random_search(SPACE, scorer(toy), max_macs=10, budget=2, progress=False)
    with pytest.raises(ValueError, match="max_macs"):
        nas.random_search(SPACE, scorer(toy), max_macs=0, budget=2, progress=False)
    with pytest.raises(TypeError, match="space"):
        nas.random_search("space", scorer(toy), max_macs=10**9)
    with pytest.raises(ValueError, match="depths"):
        nas.SearchSpace(depths=(0,))
    with pytest.raises(ValueError, match="kernels"):
        nas.SearchSpace(kernels=(4,))
    with pytest.raises(ValueError, match="population"):
        nas.evolutionary_search(SPACE, scorer(toy), max_macs=10**9, budget=2, population=3, progress=False)
