"""The weight-bits explorer (labkit.widgets.weight_bits) without a browser: numbers, controls, cache, bad input."""
import pytest
import torch

from labkit.llm import experiment
from labkit.llm.model import GPTConfig, TinyGPT
from labkit.widgets.weight_bits import WeightBitsExplorer, llm_group_sizes

CONFIG = GPTConfig(context=16, d_model=32, n_head=2, n_layer=1)


def small_model():
    torch.manual_seed(0)
    return TinyGPT(CONFIG).eval()


def windows():
    return experiment.held_out_windows(context=16, max_windows=6)


def test_explorer_shows_what_labkit_llm_computes():
    model = small_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    explorer = WeightBitsExplorer(model, windows(), prompt="The ", bits=3, group_size=16, new_tokens=8)
    s = explorer.stats
    fp32 = experiment.measure(small_model(), windows())
    point = experiment.weight_only_point(small_model(), 3, 16, windows(), "The ", 8, fp32["nll"])
    assert (s["bits"], s["group_size"]) == (3, 16)
    assert s["ppl"] == pytest.approx(point["ppl"].value) and s["bytes"] == point["bytes"]
    assert s["ratio"] == pytest.approx(point["ratio"].value)
    assert s["fp32_ppl"] == pytest.approx(fp32["ppl"].value) and s["fp32_bytes"] == fp32["bytes"]
    assert s["sample"] == point["sample"] and len(s["sample"]) == 8
    assert s["fp32_sample"] == experiment.generate_text(small_model(), "The ", 8)
    assert s["bytes"] < 0.6 * s["fp32_bytes"]                    # 3-bit block linears, float embeddings
    assert s["weights"] == 4 * 32 * 32 + 2 * 32 * 128            # qkv, proj, fc1, fc2 of one block
    *lines, star, ring = explorer.figure.data
    assert [t.name for t in lines] == ["RTN, group 16", "RTN, group 32"] and star.name == "float32"
    assert list(ring.x) == [point["bytes"] / 1000] and list(ring.y) == pytest.approx([point["ppl"].value])
    assert list(lines[0].x) == [point["bytes"] / 1000] and len(lines[1].x) == 0
    assert "3-bit, group 16" in explorer.figure.layout.title.text and "kB" in explorer.figure.layout.title.text
    assert "quantized model writes" in explorer.readout.value and "float32 model writes" in explorer.readout.value
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())     # never modified


def test_sliders_redraw_cache_and_precompute():
    explorer = WeightBitsExplorer(small_model(), windows(), bits=4, group_size=32, new_tokens=4)
    count = explorer.update_count
    explorer.set(bits=8)
    assert explorer.update_count == count + 1 and explorer.stats["points"] == 2
    assert abs(explorer.stats["ratio"] - 1) < 0.01                          # 8-bit RTN ≈ float32
    eight = explorer.stats["bytes"]
    explorer.set(bits=2)
    assert explorer.stats["bytes"] < eight and explorer.stats["ppl"] > explorer.stats["fp32_ppl"]
    explorer.set(bits=8)
    assert explorer.stats["points"] == 3                                      # looked up, not recomputed
    explorer.set(group_size=16)
    assert explorer.stats["bytes"] > eight                                    # more groups, more scales
    explorer.precompute()
    assert explorer.stats["points"] == 14
    lines = explorer.figure.data[:2]
    assert [len(t.x) for t in lines] == [7, 7]
    assert all(list(t.x) == sorted(t.x) for t in lines)                      # bytes grow with the bits
    assert list(lines[0].text) == [f"{b} bits" for b in range(2, 9)]


def test_css_classes_and_argument_checks():
    explorer = WeightBitsExplorer(small_model(), windows(), group_size=16, new_tokens=2)
    assert "labkit-weight-bits-bits" in explorer.controls["bits"]._dom_classes
    assert "labkit-weight-bits-group-size" in explorer.controls["group_size"]._dom_classes
    assert all(c.continuous_update is False for c in explorer.controls.values())
    assert "labkit-weight-bits-readout" in explorer.readout._dom_classes
    assert llm_group_sizes(small_model()) == [16, 32] and llm_group_sizes(small_model(), 8) == [8, 16, 32]
    with pytest.raises(ValueError, match="bits"):
        WeightBitsExplorer(small_model(), windows(), bits=9)
    with pytest.raises(ValueError, match="group_size must divide"):
        WeightBitsExplorer(small_model(), windows(), group_size=24)
    with pytest.raises(TypeError, match="model must be a TinyGPT"):
        WeightBitsExplorer(torch.nn.Linear(2, 2), windows())
    with pytest.raises(ValueError, match="prompt"):
        WeightBitsExplorer(small_model(), windows(), prompt="")
    with pytest.raises(ValueError, match="bits"):
        explorer.set(bits=1)
    with pytest.raises(ValueError, match="group_size"):
        explorer.setting(4, 48)
