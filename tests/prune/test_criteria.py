"""Data-driven saliency scores (Taylor, OBD / Fisher, gradient) against hand computations and
torch.autograd.functional.hessian; ranking by precomputed scores; comparing criteria."""
import copy

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from labkit import prune


def tiny_model():
    """Linear(3 → 2) → ReLU → Linear(2 → 2) with hand-picked weights."""
    model = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 2))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[0.5, -1.0, 0.25], [1.5, 0.2, -0.3]]))
        model[0].bias.copy_(torch.tensor([0.1, -0.2]))
        model[2].weight.copy_(torch.tensor([[1.0, -0.5], [-0.7, 0.9]]))
        model[2].bias.zero_()
    return model


def tiny_data():
    g = torch.Generator().manual_seed(0)
    return torch.randn(8, 3, generator=g), torch.randint(0, 2, (8,), generator=g)


def hand_gradients(model, x, y):
    """∂CE/∂W of each layer on one batch, through .backward() (the oracle)."""
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    return {"0": model[0].weight.grad.clone(), "2": model[2].weight.grad.clone()}


def test_taylor_is_abs_w_times_grad_on_one_batch():
    model, (x, y) = tiny_model(), tiny_data()
    scores = prune.taylor_scores(model, (x, y), batches=1, batch_size=8)
    g = hand_gradients(tiny_model(), x, y)
    for name, w in (("0", model[0].weight), ("2", model[2].weight)):
        assert torch.allclose(scores[name], (w.detach() * g[name]).abs(), atol=1e-7)
    assert model[0].weight.grad is None                     # the model's .grad fields are untouched


def test_taylor_averages_abs_over_batches_and_obd_is_half_fisher_w2():
    model, (x, y) = tiny_model(), tiny_data()
    # batch_size 4 in the seeded order of train.batch_loader: the same permutation as RandomSampler's
    order = torch.randperm(8, generator=torch.Generator().manual_seed(3))
    g1 = hand_gradients(tiny_model(), x[order[:4]], y[order[:4]])
    g2 = hand_gradients(tiny_model(), x[order[4:]], y[order[4:]])
    taylor = prune.taylor_scores(model, (x, y), batches=2, batch_size=4, seed=3)
    fisher = prune.fisher_diagonal(model, (x, y), batches=2, batch_size=4, seed=3)
    obd = prune.obd_scores(model, (x, y), batches=2, batch_size=4, seed=3)
    grad = prune.gradient_scores(model, (x, y), batches=2, batch_size=4, seed=3)
    for name, w in (("0", model[0].weight.detach()), ("2", model[2].weight.detach())):
        assert torch.allclose(taylor[name], ((w * g1[name]).abs() + (w * g2[name]).abs()) / 2, atol=1e-7)
        assert torch.allclose(fisher[name], (g1[name] ** 2 + g2[name] ** 2) / 2, atol=1e-8)
        assert torch.allclose(obd[name], 0.5 * fisher[name] * w ** 2, atol=1e-9)
        assert torch.allclose(grad[name], (g1[name].abs() + g2[name].abs()) / 2, atol=1e-7)
        # |w·ḡ| of the *mean* gradient is smaller: averaging the abs keeps per-batch signal
        assert torch.all(taylor[name] >= (w * (g1[name] + g2[name]) / 2).abs() - 1e-7)


def test_fisher_diagonal_matches_the_exact_hessian_of_a_quadratic():
    """Least squares with unit-variance noise at the true weights: E[g gᵀ] = E[x xᵀ] = Hessian."""
    g = torch.Generator().manual_seed(0)
    n, w_true = 4000, torch.tensor([[0.8, -0.3, 0.5, 1.2]])
    x = torch.randn(n, 4, generator=g) * torch.tensor([0.5, 1.0, 1.5, 2.0])
    y = x @ w_true.T + torch.randn(n, 1, generator=g)
    model = nn.Sequential(nn.Linear(4, 1, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(w_true)
    loss_fn = lambda out, target: 0.5 * ((out - target) ** 2).mean()          # noqa: E731
    fisher = prune.fisher_diagonal(model, (x, y), batches=n, batch_size=1, loss_fn=loss_fn)["0"].reshape(-1)
    hessian = torch.autograd.functional.hessian(lambda w: loss_fn(x @ w.reshape(1, 4).T, y), w_true.reshape(-1))
    exact = torch.diagonal(hessian)
    assert torch.allclose(exact, (x ** 2).mean(0), rtol=1e-5)                 # H_ii = mean x_i² here
    assert torch.allclose(fisher, exact, rtol=0.12), (fisher, exact)
    obd = prune.obd_scores(model, (x, y), batches=n, batch_size=1, loss_fn=loss_fn)["0"].reshape(-1)
    assert torch.allclose(obd, 0.5 * exact * w_true.reshape(-1) ** 2, rtol=0.12)


def test_scores_of_a_pruned_model_ignore_pruned_weights(model_factory, blobs):
    model = model_factory(0)
    first = prune.global_magnitude_prune(model, 0.5)
    before = {n: m.weight_orig.detach().clone() for n, m in prune.prunable_layers(model).items()}
    taylor = prune.taylor_scores(model, blobs, batches=2)
    for name, module in prune.prunable_layers(model).items():
        assert torch.all(taylor[name][module.weight_mask == 0] == 0)
        assert torch.equal(module.weight_orig, before[name]) and module.weight.grad_fn is None
    masks = prune.global_prune(model, 0.7, scores=taylor)
    s = prune.sparsity(model)
    assert s["zeros"] == round(0.7 * s["total"])
    assert all(torch.all(masks[n][first[n] == 0] == 0) for n in masks)      # earlier zeros stay pruned


def test_global_prune_with_scores_prunes_the_lowest_scores(model_factory):
    model = model_factory(1)
    magnitude = prune.saliency(model, "magnitude")
    ours, reference = copy.deepcopy(model), copy.deepcopy(model)
    assert {n: m.tolist() for n, m in prune.global_prune(ours, 0.6, scores=magnitude).items()} == \
        {n: m.tolist() for n, m in prune.global_magnitude_prune(reference, 0.6).items()}
    random = prune.saliency(model, "random", seed=4)
    a, b = copy.deepcopy(model), copy.deepcopy(model)
    assert all(torch.equal(x, y) for x, y in zip(prune.global_prune(a, 0.4, scores=random).values(),
                                                 prune.global_prune(b, 0.4, "random", seed=4).values()))
    layer = nn.Linear(3, 2)
    mask = prune.prune_layer(layer, 0.5, scores=torch.tensor([[5.0, 1.0, 4.0], [2.0, 6.0, 3.0]]))
    assert mask.tolist() == [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]


def test_data_criteria_beat_random_on_a_trained_model(model_factory, blobs):
    from labkit import train
    model = model_factory(0)
    train.fit(model, blobs, epochs=3, lr=3e-3, progress=False)
    accs = {}
    for criterion in prune.ALL_CRITERIA:
        work = copy.deepcopy(model)
        scores = prune.saliency(model, criterion, blobs, batches=4) if criterion in prune.DATA_CRITERIA else \
            prune.saliency(model, criterion)
        prune.global_prune(work, 0.8, scores=scores)
        accs[criterion] = train.evaluate(work, blobs)
    assert accs["taylor"] > accs["random"] + 0.2 and accs["obd"] > accs["random"] + 0.2, accs
    assert accs["magnitude"] > accs["random"] + 0.2, accs


def test_mask_jaccard_and_rank_correlation():
    a = {"x": torch.tensor([0.0, 0.0, 1.0, 1.0]), "y": torch.tensor([[0.0, 1.0]])}
    b = {"x": torch.tensor([0.0, 1.0, 0.0, 1.0]), "y": torch.tensor([[0.0, 1.0]])}
    assert prune.mask_jaccard(a, b) == pytest.approx(2 / 4)          # pruned {0,1,4} vs {0,2,4}
    assert prune.mask_jaccard(a, a) == 1.0
    ones = {"x": torch.ones(4), "y": torch.ones(1, 2)}
    assert prune.mask_jaccard(ones, ones) == 1.0
    s = torch.tensor([0.1, 0.5, 0.3, 0.9, 0.7])
    assert prune.rank_correlation(s, s ** 3) == pytest.approx(1.0)
    assert prune.rank_correlation(s, -s) == pytest.approx(-1.0)
    assert prune.rank_correlation(torch.tensor([1.0, 2.0, 2.0, 3.0]), torch.tensor([1.0, 2.0, 3.0, 4.0])) == \
        pytest.approx(0.9486833, abs=1e-6)                             # scipy.stats.spearmanr with ties
    assert prune.rank_correlation({"a": s[:2], "b": s[2:]}, s) == pytest.approx(1.0)


def test_bad_inputs(model, blobs):
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        prune.taylor_scores("model", blobs)
    with pytest.raises(ValueError, match="no nn.Linear or nn.Conv2d"):
        prune.obd_scores(nn.Sequential(nn.ReLU()), blobs)
    with pytest.raises(ValueError, match=r"batches must be an integer in \[1, 100000\]"):
        prune.taylor_scores(model, blobs, batches=0)
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        prune.fisher_diagonal(model, blobs, batch_size=0)
    with pytest.raises(TypeError, match="loss_fn must be callable"):
        prune.gradient_scores(model, blobs, loss_fn="mse")
    with pytest.raises(TypeError, match=r"data must yield \(x, y\) pairs"):
        prune.taylor_scores(model, blobs[0])
    with pytest.raises(ValueError, match="criterion must be one of 'magnitude', 'random', 'taylor', 'obd'"):
        prune.saliency(model, "hessian", blobs)
    with pytest.raises(ValueError, match="computed from data"):
        prune.saliency(model, "taylor")
    with pytest.raises(TypeError, match="takes no keyword arguments"):
        prune.saliency(model, "magnitude", batches=3)
    with pytest.raises(ValueError, match=r"scores must have the weight's shape \(32, 144\)"):
        prune.prune_layer(model[3], 0.5, scores=torch.ones(3))
    with pytest.raises(TypeError, match="scores must be a torch.Tensor"):
        prune.prune_layer(model[3], 0.5, scores=[1.0])
    with pytest.raises(ValueError, match="must not contain NaN"):
        prune.prune_layer(model[3], 0.5, scores=torch.full((32, 144), float("nan")))
    with pytest.raises(ValueError, match=r"missing \['5'\]"):
        prune.global_prune(model, 0.5, scores={"0": torch.ones(4, 1, 3, 3), "3": torch.ones(32, 144)})
    with pytest.raises(TypeError, match="scores must be a dict"):
        prune.global_prune(model, 0.5, scores=torch.ones(3))
    with pytest.raises(ValueError, match="same layer names"):
        prune.mask_jaccard({"a": torch.ones(2)}, {"b": torch.ones(2)})
    with pytest.raises(ValueError, match="differ in shape"):
        prune.mask_jaccard({"a": torch.ones(2)}, {"a": torch.ones(3)})
    with pytest.raises(ValueError, match="as many scores"):
        prune.rank_correlation(torch.ones(3), torch.ones(4))
    with pytest.raises(TypeError, match="scores_b must be a tensor"):
        prune.rank_correlation(torch.ones(3), [1, 2, 3])
