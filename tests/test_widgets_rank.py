"""The rank explorer (labkit.widgets.rank) without a browser: numbers, controls, redraws, cache."""
import numpy as np
import pytest
import torch
from torch import nn

from labkit import lowrank, train
from labkit.widgets.rank import RankExplorer


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
    assert "30% of the energy" in explorer.figure.layout.title.text
    assert explorer.stats["saves"] and "larger than the dense layer" not in explorer.readout.value
    explorer.set(energy=1.0)
    assert explorer.stats["relative_error"] < 1e-6
    # rank 32 of a 32×96 layer is above the break-even 32·96/128 = 24: the readout must say it grew
    assert explorer.stats["params_after"] > explorer.stats["params_before"] and not explorer.stats["saves"]
    assert "larger than the dense layer" in explorer.readout.value
    assert explorer.stats["accuracy"] == pytest.approx(explorer.stats["dense_accuracy"])
    explorer.set(layer="2", energy=0.9)
    r_in, r_out = explorer.stats["rank"]
    assert (r_in, r_out) == lowrank.tucker2_ranks(small_model()[2], 0.9)
    assert explorer.stats["params_after"] == lowrank.tucker2_params(4, 6, (3, 3), r_in, r_out)
    assert explorer.stats["max_rank"] == 6
    assert len(explorer.remembered("setting")) == 4
    explorer.set(layer="5", energy=0.3)
    assert len(explorer.remembered("setting")) == 4


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


def test_traces_are_plain_lists_named_once_and_the_log_axis_shows_decades():
    explorer = RankExplorer(small_model(), eval_data(), input_shape=(1, 8, 8))
    names = [trace.name for trace in explorer.figure.data]
    assert len(set(names)) == 4 and not any(name.startswith("trace") for name in names)
    for values in (dict(energy=0.5), dict(layer="2"), dict(energy=0.95)):
        explorer.set(**values)
        assert [trace.name for trace in explorer.figure.data] == names
        assert not [(i, k) for i, t in enumerate(explorer.figure.data) for k, v in t.to_plotly_json().items()
                    if isinstance(v, np.ndarray)]
    axis = explorer.figure.layout.yaxis          # ticks at the decades that hold the spectrum, and only those
    sigma = explorer.spectrum(explorer.values["layer"])
    assert axis.type == "log" and axis.exponentformat == "power" and axis.dtick is None
    exponents = [round(np.log10(v)) for v in axis.tickvals]
    assert [10.0 ** k for k in exponents] == list(axis.tickvals) and exponents == list(range(exponents[0], exponents[-1] + 1))
    assert axis.tickvals[0] <= float(sigma.min()) < 10 * axis.tickvals[0] and axis.tickvals[-1] / 10 < float(sigma.max()) <= axis.tickvals[-1]
    assert all(explorer.figure.layout[a].title.text for a in ("xaxis", "yaxis", "xaxis2", "yaxis2"))
    assert "%" in explorer.readout.value.split("accuracy (eval subset)")[1][:60]      # accuracy in %


def test_setting_gives_the_numbers_without_a_redraw():
    explorer = RankExplorer(small_model(), eval_data(), input_shape=(1, 8, 8))
    count, title = explorer.update_count, explorer.figure.layout.title.text
    wanted = explorer.setting(explorer.values["layer"], 0.4)
    assert explorer.update_count == count and explorer.figure.layout.title.text == title
    explorer.set(energy=0.4)
    assert {k: explorer.stats[k] for k in ("rank", "params_after", "macs_after", "saves", "relative_error",
                                           "accuracy")} == {k: wanted[k] for k in ("rank", "params_after",
                                                                                   "macs_after", "saves",
                                                                                   "relative_error", "accuracy")}
    with pytest.raises(ValueError, match="energy must be"):
        explorer.setting(explorer.values["layer"], 1.5)
    with pytest.raises(ValueError, match="layer must be one of"):
        explorer.setting("nope", 0.5)
