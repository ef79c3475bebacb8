"""The rank explorer (labkit.widgets.lowrank) without a browser: numbers, controls, redraws, cache."""
import pytest
import torch
from torch import nn

from labkit import lowrank, train
from labkit.widgets.lowrank import RankExplorer


def small_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 6, 3), nn.ReLU(), nn.Flatten(),
                         nn.Linear(6 * 4 * 4, 32), nn.ReLU(), nn.Linear(32, 3))


def eval_data():
    g = torch.Generator().manual_seed(1)
    return torch.rand(64, 1, 8, 8, generator=g), torch.randint(0, 3, (64,), generator=g)


def test_explorer_matches_labkit_lowrank():
    model, data = small_model(), eval_data()
    explorer = RankExplorer(model, data, energy=0.8, input_shape=(1, 8, 8))
    s = explorer.stats
    assert s["layer"] == "5"                                             # the largest layer by default
    sigma = lowrank.singular_values(model[5])
    rank = lowrank.energy_rank(sigma, 0.8)
    assert s["rank"] == rank and s["max_rank"] == 32
    assert s["params_after"] == lowrank.svd_params(32, 96, rank) and s["params_before"] == 32 * 96 + 32
    assert s["macs_after"] == rank * (32 + 96) and s["macs_before"] == 32 * 96
    assert s["relative_error"] == pytest.approx(float((sigma[rank:] ** 2).sum() / (sigma ** 2).sum()) ** 0.5)
    reference = small_model()
    reference[5] = lowrank.svd_linear(reference[5], rank)
    assert s["accuracy"] == pytest.approx(train.evaluate(reference, data))
    assert s["dense_accuracy"] == pytest.approx(train.evaluate(small_model(), data))
    kept, dropped, curve, mark = explorer.figure.data
    assert len(kept.y) == rank and len(dropped.y) == 32 - rank
    assert list(kept.y) == pytest.approx(sigma[:rank].numpy().tolist())
    assert mark.y[-1] >= 0.8 and list(mark.x) == [rank, rank] and curve.y[-1] == pytest.approx(1.0)
    assert torch.equal(model[5].weight, small_model()[5].weight)        # the model is never modified


def test_controls_redraw_and_cache_and_conv_layers():
    explorer = RankExplorer(small_model(), eval_data(), input_shape=(1, 8, 8))
    count, rank = explorer.update_count, explorer.stats["rank"]
    explorer.set(energy=0.3)
    assert explorer.update_count == count + 1 and explorer.stats["rank"] < rank
    assert "0.30" in explorer.figure.layout.title.text
    explorer.set(energy=1.0)
    assert explorer.stats["relative_error"] < 1e-6
    assert explorer.stats["accuracy"] == pytest.approx(explorer.stats["dense_accuracy"])
    explorer.set(layer="2", energy=0.9)
    r_in, r_out = explorer.stats["rank"]
    assert (r_in, r_out) == lowrank.tucker2_ranks(small_model()[2], 0.9)
    assert explorer.stats["params_after"] == lowrank.tucker2_params(4, 6, (3, 3), r_in, r_out)
    assert explorer.stats["max_rank"] == 6
    assert len(explorer._cache) == 4
    explorer.set(layer="5", energy=0.3)
    assert len(explorer._cache) == 4


def test_css_classes_and_argument_checks():
    explorer = RankExplorer(small_model(), eval_data(), input_shape=(1, 8, 8))
    for control in ("layer", "energy"):
        assert f"labkit-rank-{control}" in explorer.controls[control]._dom_classes
    assert explorer.controls["energy"].continuous_update is False
    assert "labkit-rank" in explorer.widget._dom_classes
    assert "labkit-rank-readout" in explorer.readout._dom_classes
    with pytest.raises(ValueError, match="layer must be one of"):
        RankExplorer(small_model(), eval_data(), layer="fc9", input_shape=(1, 8, 8))
    with pytest.raises(ValueError, match="energy"):
        RankExplorer(small_model(), eval_data(), energy=0.0, input_shape=(1, 8, 8))
    with pytest.raises(TypeError, match="model must be"):
        RankExplorer("model", eval_data())
    with pytest.raises(ValueError, match="no nn.Linear"):
        RankExplorer(nn.Sequential(nn.ReLU()), eval_data(), input_shape=(1, 8, 8))
    with pytest.raises(ValueError, match="input_shape"):
        RankExplorer(small_model(), eval_data())
    with pytest.raises(ValueError, match="unknown control"):
        explorer.set(rank=3)
