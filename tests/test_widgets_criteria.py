"""The criteria explorer (labkit.widgets.criteria) without a browser: numbers, controls, redraws, cache."""
import copy

import numpy as np
import pytest
import torch
from torch import nn

from labkit import prune, train
from labkit.widgets.criteria import LEVELS, CriteriaExplorer


def small_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 32), nn.ReLU(),
                         nn.Linear(32, 3))


def eval_data():
    g = torch.Generator().manual_seed(1)
    return torch.rand(64, 1, 8, 8, generator=g), torch.randint(0, 3, (64,), generator=g)


def data_scores(model, data):
    return {"taylor": prune.taylor_scores(model, data, batches=2, batch_size=32),
            "obd": prune.obd_scores(model, data, batches=2, batch_size=32)}


def test_explorer_matches_labkit_prune():
    model, data = small_model(), eval_data()
    scores = data_scores(model, data)
    explorer = CriteriaExplorer(model, data, scores, sparsity=0.8, criterion="taylor")
    s = explorer.stats
    assert s["layer"] == "3" and s["criterion"] == "taylor"               # the largest layer by default
    reference, magnitude = copy.deepcopy(model), copy.deepcopy(model)
    masks = prune.global_prune(reference, 0.8, scores=scores["taylor"])
    mag_masks = prune.global_magnitude_prune(magnitude, 0.8)
    assert s["accuracy"] == pytest.approx(train.evaluate(reference, data))
    assert s["dense_accuracy"] == pytest.approx(train.evaluate(model, data))
    assert s["jaccard_magnitude"] == pytest.approx(prune.mask_jaccard(masks, mag_masks))
    assert 0.0 < s["jaccard_magnitude"] < 1.0
    assert s["global_sparsity"] == pytest.approx(0.8, abs=1e-3)
    assert s["layer_sparsity"] == pytest.approx(prune.sparsity(reference)["layers"]["3"])
    assert s["kept"] + s["pruned"] == 32 * 144 and s["pruned"] == int((masks["3"] == 0).sum())
    kept, pruned = explorer.figure.data[-2], explorer.figure.data[-1]
    assert len(kept.x) + len(pruned.x) == min(3000, 32 * 144) and len(pruned.x) > 0
    assert not [k for t in explorer.figure.data for k, v in t.to_plotly_json().items() if isinstance(v, np.ndarray)]
    assert len(s["curve"]) == len(LEVELS) and s["curve"][0] == pytest.approx(s["dense_accuracy"])
    assert not prune.is_pruned(model[3])                                   # the model is never modified


def test_magnitude_cut_is_vertical_and_jaccard_is_one():
    explorer = CriteriaExplorer(small_model(), eval_data(), {}, sparsity=0.6, max_points=10_000)
    kept, pruned = explorer.figure.data[-2], explorer.figure.data[-1]
    assert max(pruned.x) <= min(kept.x)                                    # magnitude: |w| alone decides
    assert explorer.stats["jaccard_magnitude"] == 1.0
    assert list(explorer.controls["criterion"].options) == ["magnitude", "random"]


def test_controls_redraw_and_cache():
    model, data = small_model(), eval_data()
    explorer = CriteriaExplorer(model, data, data_scores(model, data), sparsity=0.3)
    count = explorer.update_count
    explorer.set(sparsity=0.9)
    assert explorer.update_count == count + 1
    assert "0.90" in explorer.figure.layout.title.text
    assert all(len(explorer.figure.data[i].x) == len(LEVELS) for i in range(4))   # every curve drawn at once
    cached = len(explorer.remembered("setting"))
    explorer.set(criterion="taylor")
    assert len(explorer.remembered("setting")) == cached                                 # 0.9 is on every precomputed curve
    assert len(explorer.figure.data[2].x) == len(LEVELS) and explorer.stats["criterion"] == "taylor"
    assert explorer.stats["jaccard_magnitude"] < 1.0
    explorer.set(criterion="random")
    assert explorer.stats["jaccard_magnitude"] < 0.9 and len(explorer.figure.data[1].x) == len(LEVELS)
    cached = len(explorer.remembered("setting"))
    explorer.set(layer="5")
    assert explorer.stats["kept"] + explorer.stats["pruned"] == 96 and len(explorer.remembered("setting")) == cached
    explorer.set(criterion="taylor", sparsity=0.9)
    assert len(explorer.remembered("setting")) == cached


def test_css_classes_and_argument_checks():
    explorer = CriteriaExplorer(small_model(), eval_data(), {})
    for control in ("criterion", "sparsity", "layer"):
        assert f"labkit-criteria-{control}" in explorer.controls[control]._dom_classes
    assert explorer.controls["sparsity"].continuous_update is False
    assert "labkit-criteria" in explorer.widget._dom_classes
    assert "labkit-criteria-readout" in explorer.readout._dom_classes
    assert "labkit-criteria-figure" in explorer.figure._dom_classes
    with pytest.raises(ValueError, match="layer must be one of"):
        CriteriaExplorer(small_model(), eval_data(), {}, layer="fc9")
    with pytest.raises(ValueError, match="sparsity"):
        CriteriaExplorer(small_model(), eval_data(), {}, sparsity=1.5)
    with pytest.raises(ValueError, match="criterion must be one of 'magnitude', 'random'"):
        CriteriaExplorer(small_model(), eval_data(), {}, criterion="taylor")
    with pytest.raises(TypeError, match="model must be"):
        CriteriaExplorer("model", eval_data(), {})
    with pytest.raises(ValueError, match="no nn.Linear"):
        CriteriaExplorer(nn.Sequential(nn.ReLU()), eval_data(), {})
    with pytest.raises(TypeError, match="scores must be a dict"):
        CriteriaExplorer(small_model(), eval_data(), [1])
    with pytest.raises(ValueError, match=r"scores\['taylor'\] must be a dict over the layers"):
        CriteriaExplorer(small_model(), eval_data(), {"taylor": {"3": torch.ones(32, 144)}})
    with pytest.raises(ValueError, match=r"scores\['taylor'\]\['3'\] must be a tensor of shape \(32, 144\)"):
        CriteriaExplorer(small_model(), eval_data(),
                         {"taylor": {"0": torch.ones(4, 1, 3, 3), "3": torch.ones(3), "5": torch.ones(3, 32)}})
    with pytest.raises(ValueError, match="new criterion names"):
        CriteriaExplorer(small_model(), eval_data(), {"magnitude": {}})
    with pytest.raises(ValueError, match="unknown control"):
        explorer.set(amount=0.5)
