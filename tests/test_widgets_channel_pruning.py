"""The channel-pruning explorer (labkit.widgets.channel_pruning) without a browser: numbers, redraws, cache."""
import numpy as np
import pytest
import torch

from labkit import measure, models, prune, train
from labkit.widgets.channel_pruning import ChannelPruningExplorer


def vgg():
    train.set_seed(0)
    return models.build("vgg").eval()


def eval_data():
    g = torch.Generator().manual_seed(1)
    return torch.rand(32, 1, 28, 28, generator=g), torch.randint(0, 10, (32,), generator=g)


def numpy_properties(figure) -> list[str]:
    """Trace properties holding numpy arrays (the browser must get plain lists)."""
    return [f"data[{i}].{k}" for i, t in enumerate(figure.data) for k, v in t.to_plotly_json().items()
            if isinstance(v, np.ndarray)]


def test_explorer_matches_labkit_prune_and_measure():
    model, data = vgg(), eval_data()
    explorer = ChannelPruningExplorer(model, data, ratio=0.5, latency_rounds=2, latency_repeats=1)
    s = explorer.stats
    assert s["layer"] == "conv6" and s["criterion"] == "l1" and explorer.criteria == ("l1", "l2", "bn", "correlation", "geometric_median", "random")
    small, keep = prune.structured_prune(vgg(), 0.5, "l1")
    assert s["params"] == measure.count_parameters(small) < s["dense_params"] == measure.count_parameters(model)
    assert s["macs"] == measure.total_macs(small, (1, 28, 28)) < s["dense_macs"]
    assert s["bytes"] == measure.size_on_disk(small, "fp32") < s["dense_bytes"]
    assert s["accuracy"] == pytest.approx(train.evaluate(small, data))
    assert s["accuracy_low"] <= s["accuracy"] <= s["accuracy_high"] and s["eval_images"] == 32
    assert s["kept"] == 32 and s["removed"] == 32
    kept, removed, cut = explorer.figure.data
    assert [t.name for t in explorer.figure.data] == ["kept channels", "removed channels", "cut"]
    assert sorted(kept.customdata) == keep["conv6"].tolist() and len(removed.customdata) == 32
    assert sorted(kept.x + removed.x) == list(range(64))                  # ranks, lowest score first
    assert max(removed.y) <= s["cut"] <= min(kept.y)                      # the lowest l1 norms were removed
    norms = prune.filter_norms(model.conv6.weight, 1)
    assert kept.y[0] == pytest.approx(float(norms[kept.customdata[0]]))
    assert not numpy_properties(explorer.figure)
    assert s["latency_ratio"] is None and "time it" in explorer.readout.value
    timing = explorer.measure_latency()
    s = explorer.stats
    assert set(timing) == {"dense", "pruned"} and timing["pruned"]["calls"] == 2
    assert s["latency_ratio"] == pytest.approx(1 / timing["pruned"]["speedup"])
    assert s["latency_ratio_p10"] <= s["latency_ratio"] <= s["latency_ratio_p90"] and s["latency_ms"] > 0
    assert "×0.26" in explorer.readout.value and "measured together" in explorer.readout.value  # MACs ×0.26
    assert torch.equal(model.conv6.weight, vgg().conv6.weight)           # the model is not modified


def test_controls_redraw_and_cache():
    explorer = ChannelPruningExplorer(vgg(), eval_data(), ratio=0.25)
    count, params = explorer.update_count, explorer.stats["params"]
    explorer.set(ratio=0.75)
    assert explorer.update_count == count + 1 and explorer.stats["params"] < params
    assert explorer.stats["kept"] == 16 and len(explorer.figure.data[1].x) == 48
    assert not numpy_properties(explorer.figure)
    explorer.set(criterion="bn", layer="conv1")
    assert explorer.stats["kept"] == 4 and "bn scores of conv1" in explorer.figure.layout.title.text
    cached = len(explorer.remembered("setting"))
    explorer.set(ratio=0.25, criterion="l1")
    assert len(explorer.remembered("setting")) == cached                                 # (0.25, l1) was computed at start


def test_lenet5_has_no_bn_option_and_bad_arguments():
    explorer = ChannelPruningExplorer(models.build("lenet5"), eval_data())
    assert explorer.criteria == ("l1", "l2", "correlation", "geometric_median", "random")
    assert explorer.stats["layer"] == "conv2"
    for criterion in explorer.criteria:                       # every registered channel criterion draws
        explorer.set(criterion=criterion)
        assert explorer.stats["criterion"] == criterion and explorer.figure.layout.title.text.startswith(criterion)
    with pytest.raises(ValueError, match="criterion must be one of"):
        ChannelPruningExplorer(models.build("lenet5"), eval_data(), criterion="bn")
    with pytest.raises(ValueError, match="ratio must be"):
        ChannelPruningExplorer(vgg(), eval_data(), ratio=0.95)
    with pytest.raises(ValueError, match="layer must be one of"):
        ChannelPruningExplorer(vgg(), eval_data(), layer="fc2")
    with pytest.raises(TypeError, match="model must be"):
        ChannelPruningExplorer("vgg", eval_data())
    for control in ("ratio", "criterion", "layer"):
        assert f"labkit-channel-pruning-{control}" in explorer.controls[control]._dom_classes
    assert "labkit-channel-pruning-time" in explorer.time_button._dom_classes
    with pytest.raises(ValueError, match="latency_rounds"):
        ChannelPruningExplorer(vgg(), eval_data(), latency_rounds=1)
