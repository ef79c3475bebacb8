"""The pruning explorer (labkit.widgets.pruning) without a browser: numbers, controls, redraws, cache."""
import numpy as np
import pytest
import torch
from torch import nn

from labkit import measure, prune, train
from labkit.widgets import PruningExplorer


def small_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 32), nn.ReLU(),
                         nn.Linear(32, 3))


def eval_data():
    g = torch.Generator().manual_seed(1)
    return torch.rand(64, 1, 8, 8, generator=g), torch.randint(0, 3, (64,), generator=g)


def numpy_properties(figure) -> list[str]:
    """Trace properties holding numpy arrays (the browser must get plain lists)."""
    return [f"data[{i}].{k}" for i, t in enumerate(figure.data) for k, v in t.to_plotly_json().items()
            if isinstance(v, np.ndarray)]


def test_explorer_matches_labkit_prune_and_measure():
    model, data = small_model(), eval_data()
    explorer = PruningExplorer(model, data, sparsity=0.8)
    s = explorer.stats
    assert s["layer"] == "3" and s["criterion"] == "magnitude"            # the largest layer by default
    reference = small_model()
    prune.global_magnitude_prune(reference, 0.8)
    expected = prune.sparsity(reference)
    assert s["global_sparsity"] == pytest.approx(expected["global"])
    assert s["layer_sparsity"] == pytest.approx(expected["layers"]["3"])
    assert s["threshold"] == pytest.approx(prune.global_threshold(small_model(), 0.8))
    assert s["accuracy"] == pytest.approx(train.evaluate(reference, data))
    assert s["dense_accuracy"] == pytest.approx(train.evaluate(small_model(), data))
    assert s["bytes_bitmask"] == measure.size_on_disk(reference, "bitmask")
    assert s["bytes_csr"] == measure.size_on_disk(reference, "csr")
    assert s["bytes_fp32"] == measure.size_on_disk(small_model(), "fp32")
    assert s["bytes_bitmask"] < s["bytes_csr"] < s["bytes_fp32"]
    assert s["kept"] + s["pruned"] == 32 * 144
    assert sum(explorer.figure.data[2].y) == s["pruned"] and sum(explorer.figure.data[1].y) == s["kept"]
    assert s["accuracy_low"] <= s["accuracy"] <= s["accuracy_high"] and s["eval_images"] == 64
    sizes = explorer.figure.data[3]
    assert list(sizes.x) == ["fp32 (dense)", "bitmask", "CSR"] and sizes.name == "bytes on disk"
    assert list(sizes.y) == pytest.approx([s[f"bytes_{f}"] / 1000 for f in ("fp32", "bitmask", "csr")])
    assert explorer.figure.layout.xaxis2.type == "category" and explorer.figure.layout.xaxis2.title.text
    assert not numpy_properties(explorer.figure)
    assert torch.equal(model[3].weight, small_model()[3].weight) and not prune.is_pruned(model[3])


def test_controls_redraw_and_cache():
    explorer = PruningExplorer(small_model(), eval_data(), sparsity=0.3)
    count, band = explorer.update_count, list(explorer.figure.data[0].x)
    explorer.set(sparsity=0.9)
    assert explorer.update_count == count + 1
    assert explorer.stats["global_sparsity"] == pytest.approx(0.9, abs=1e-3)
    assert list(explorer.figure.data[0].x) != band                       # the shaded band widened
    assert "0.90" in explorer.figure.layout.title.text
    explorer.set(criterion="random")
    assert explorer.stats["threshold"] is None and len(explorer.figure.data[0].x) == 0
    assert not numpy_properties(explorer.figure)
    assert explorer.stats["global_sparsity"] == pytest.approx(0.9, abs=1e-3)
    explorer.set(layer="5")
    assert explorer.stats["kept"] + explorer.stats["pruned"] == 96
    assert len(explorer.remembered("setting")) == 3                                     # layer change reuses the setting
    explorer.set(sparsity=0.3, criterion="magnitude")
    assert len(explorer.remembered("setting")) == 3


def test_css_classes_and_argument_checks():
    explorer = PruningExplorer(small_model(), eval_data())
    for control, css in (("sparsity", "labkit-pruning-sparsity"), ("criterion", "labkit-pruning-criterion"),
                         ("layer", "labkit-pruning-layer")):
        assert css in explorer.controls[control]._dom_classes
    assert explorer.controls["sparsity"].continuous_update is False
    assert "labkit-pruning" in explorer.widget._dom_classes
    assert "labkit-pruning-readout" in explorer.readout._dom_classes
    with pytest.raises(ValueError, match="layer must be one of"):
        PruningExplorer(small_model(), eval_data(), layer="fc9")
    with pytest.raises(ValueError, match="sparsity"):
        PruningExplorer(small_model(), eval_data(), sparsity=1.5)
    with pytest.raises(ValueError, match="criterion must be one of"):
        PruningExplorer(small_model(), eval_data(), criterion="taylor")
    with pytest.raises(TypeError, match="model must be"):
        PruningExplorer("model", eval_data())
    with pytest.raises(ValueError, match="no nn.Linear"):
        PruningExplorer(nn.Sequential(nn.ReLU()), eval_data())
    with pytest.raises(ValueError, match="unknown control"):
        explorer.set(amount=0.5)


def test_batch_messages_carry_every_property_for_every_trace():
    """plotly sends `undefined` for a trace whose property did not change in a batch; the widget's JS model
    stores it as the string "_undefined_" before a view exists, and the bars lost their categories.
    ``base.complete_batch`` sends the unchanged value instead."""
    from plotly.basedatatypes import Undefined

    explorer = PruningExplorer(small_model(), eval_data(), sparsity=0.8)
    sent = []
    explorer.figure._send_update_msg = lambda restyle_data, relayout_data, trace_indexes=None, source_view_id=None: \
        sent.append((restyle_data, trace_indexes))
    explorer.set(sparsity=0.5)                       # the bytes bars' x did not change, the histograms' did
    restyle, traces = sent[-1]
    assert traces == [0, 1, 2, 3]
    assert restyle["x"][3] == ["fp32 (dense)", "bitmask", "CSR"]
    assert not [k for k in ("x", "y") for v in restyle[k] if v is Undefined]
