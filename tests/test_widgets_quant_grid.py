"""QuantGridExplorer without a browser: the grid it draws, the numbers it shows, its controls.

Every figure value is checked against labkit.quant (the functions the view calls) or against
first principles (2^b levels, ceil(n·b/8) bytes, the histogram of the weights).
"""
import math

import numpy as np
import pytest
import torch
from torch import nn

from labkit.quant import dequantize, qparams_from_range, quantize_tensor, sqnr_db
from labkit.quant import valid_group_sizes
from labkit.widgets import QuantGridExplorer
from labkit.widgets.base import css_class


def lenet5():
    torch.manual_seed(0)
    model = nn.Sequential()
    model.add_module("conv1", nn.Conv2d(1, 6, 5, padding=2))
    model.add_module("relu1", nn.ReLU())
    model.add_module("pool1", nn.MaxPool2d(2))
    model.add_module("conv2", nn.Conv2d(6, 16, 5))
    model.add_module("relu2", nn.ReLU())
    model.add_module("pool2", nn.MaxPool2d(2))
    model.add_module("flatten", nn.Flatten())
    model.add_module("fc1", nn.Linear(400, 120))
    model.add_module("relu3", nn.ReLU())
    model.add_module("fc2", nn.Linear(120, 84))
    return model


def grid_levels_drawn(explorer):
    """x positions of the vertical grid lines (trace 1 holds 3 points per line, see vertical_lines)."""
    x = np.asarray(explorer.figure.data[1].x, dtype=float)
    return x[0::3]


@pytest.fixture
def explorer():
    return QuantGridExplorer(lenet5(), layer="fc1.weight")


def test_changing_bits_changes_the_number_of_grid_lines(explorer):
    for bits in range(1, 9):
        explorer.set(bits=bits)
        assert explorer.stats["grid_lines"] == explorer.stats["levels"] == 2 ** bits
        assert grid_levels_drawn(explorer).size == 2 ** bits
        codes = np.asarray(explorer.figure.data[1].customdata)[0::3]   # hover text: the code of each line
        assert codes.tolist() == list(range(-2 ** (bits - 1), 2 ** (bits - 1)))


@pytest.mark.parametrize("scheme", ["asymmetric", "symmetric"])
@pytest.mark.parametrize("granularity", ["tensor", "channel", "group"])
def test_sqnr_rises_with_bits(explorer, scheme, granularity):
    sqnr = [explorer.set(bits=b, scheme=scheme, granularity=granularity).stats["sqnr_db"] for b in range(2, 9)]
    assert all(b > a for a, b in zip(sqnr, sqnr[1:])), sqnr
    gains = np.diff(sqnr[2:])                      # from 4 bits on, each bit buys about 6 dB
    assert np.all((gains > 4.5) & (gains < 7.5)), gains


def test_grid_is_the_dequantized_codes_of_labkit_quant(explorer):
    explorer.set(bits=3, scheme="asymmetric", granularity="tensor")
    w = explorer.weights["fc1.weight"]()
    codes, qp = quantize_tensor(w, 3, symmetric=False, signed=True)
    expected = dequantize(torch.arange(-4, 4), qp).numpy()
    np.testing.assert_allclose(grid_levels_drawn(explorer), expected, rtol=1e-6)
    assert explorer.stats["scale"] == pytest.approx(qp.scale.item())
    assert explorer.stats["zero_point"] == qp.zero_point.item()
    assert explorer.stats["sqnr_db"] == pytest.approx(sqnr_db(w, dequantize(codes, qp)))
    # 0.0 is a level (the zero point), and the red clipping lines are the two outermost levels
    assert np.min(np.abs(grid_levels_drawn(explorer))) == 0.0
    clip = np.asarray(explorer.figure.data[2].x, dtype=float)[0::3]
    np.testing.assert_allclose(clip, expected[[0, -1]], rtol=1e-6)


def test_histograms_count_every_shown_weight(explorer):
    explorer.set(bits=2, channel=7, show_quantized=True)
    w = explorer.weights["fc1.weight"]()[7]
    assert sum(explorer.figure.data[0].y) == w.numel() == sum(explorer.figure.data[3].y)
    # at 2 bits the dequantized weights fall into at most 4 histogram bins
    assert np.count_nonzero(explorer.figure.data[3].y) <= 4
    explorer.set(channel=-1, show_quantized=False)
    assert sum(explorer.figure.data[0].y) == 120 * 400
    assert explorer.figure.data[3].visible is False
    assert explorer.figure.layout.yaxis3.visible is False


def test_hidden_overlay_holds_no_data_and_comes_back_whole(explorer):
    """plotly.js keeps no x/y for a trace with visible=False, so neither does the kernel's figure
    (the browser harness compares them); switched on again, x̂ is redrawn for the current setting."""
    explorer.set(bits=3, show_quantized=False)
    hidden = explorer.figure.data[3]
    assert hidden.visible is False and hidden.x is None and hidden.y is None
    explorer.set(bits=2)                          # a move while hidden does not bring the data back
    assert explorer.figure.data[3].x is None and explorer.figure.data[3].y is None
    explorer.set(show_quantized=True)
    shown = explorer.figure.data[3]
    assert shown.visible is True and explorer.figure.layout.yaxis3.visible is True
    assert sum(shown.y) == 120 * 400 and len(shown.x) == len(shown.y) == len(explorer.figure.data[0].x)
    assert np.count_nonzero(shown.y) <= 4         # 2 bits: x̂ takes at most 4 values


def test_per_channel_grid_follows_the_channel_picker(explorer):
    w = explorer.weights["fc1.weight"]()
    lo, hi = w.aminmax(dim=1)
    qp = qparams_from_range(lo, hi, 4, symmetric=True, signed=True, axis=0)
    for channel in (0, 5, 119):
        explorer.set(bits=4, scheme="symmetric", granularity="channel", channel=channel)
        levels = grid_levels_drawn(explorer)
        assert levels.size == 16
        assert np.diff(levels) == pytest.approx(np.full(15, qp.scale[channel].item()), rel=1e-5)
        assert explorer.stats["num_qparams"] == 120 and explorer.stats["zero_point"] == 0
    assert explorer.stats["scale_min"] == pytest.approx(qp.scale.min().item())
    assert "channel 119" in explorer.figure.layout.title.text


def test_granularity_trades_bytes_for_sqnr(explorer):
    stats = {g: dict(explorer.set(bits=4, scheme="asymmetric", granularity=g, group_size=16).stats)
             for g in ("tensor", "channel", "group")}
    assert stats["tensor"]["sqnr_db"] < stats["channel"]["sqnr_db"] < stats["group"]["sqnr_db"]
    n = 120 * 400
    codes = math.ceil(n * 4 / 8)
    assert stats["tensor"]["nbytes"] == codes + 8                 # one fp32 scale + one int32 zero point
    assert stats["channel"]["nbytes"] == codes + 8 * 120
    assert stats["group"]["nbytes"] == codes + 8 * 120 * 400 // 16
    assert stats["tensor"]["fp32_nbytes"] == 4 * n
    assert stats["tensor"]["compression"] == pytest.approx(4 * n / (codes + 8))
    assert "8.00×" in explorer.set(granularity="tensor").readout.value


def test_symmetric_grid_wastes_levels_on_one_sided_weights():
    model = nn.Linear(8, 4)
    with torch.no_grad():
        model.weight.copy_(torch.linspace(0.01, 1.0, 32).reshape(4, 8))   # all positive
    view = QuantGridExplorer(model, bits=4)
    assert view.set(scheme="asymmetric").stats["levels_used"] == 16
    assert view.set(scheme="symmetric").stats["levels_used"] <= 9        # the negative half is unused


def test_group_size_and_channel_options_follow_the_layer(explorer):
    assert valid_group_sizes(torch.zeros(6, 1, 5, 5)) == [1, 5]
    assert valid_group_sizes(torch.zeros(10, 84)) == [1, 2, 3, 4, 6, 7, 12, 14, 21, 28, 42]
    assert valid_group_sizes(torch.zeros(3, 1)) == [1]
    explorer.set(granularity="group", group_size=25, channel=100)
    explorer.set(layer="conv1.weight")                  # 25 values per channel, 6 channels
    assert [v for _, v in explorer.controls["group_size"].options] == [1, 5]
    assert explorer.stats["group_size"] == 5            # nearest valid size to 25 (25 itself = per-channel)
    assert explorer.stats["channel"] == -1              # channel 100 does not exist in conv1
    assert len(explorer.controls["channel"].options) == 7
    explorer.set(layer="conv2.weight", group_size=30, channel=15)   # layer first, then its options
    assert explorer.stats["group_size"] == 30 and explorer.stats["num_qparams"] == 16 * 150 // 30
    assert explorer.controls["group_size"].disabled is False
    assert explorer.set(granularity="tensor").controls["group_size"].disabled is True


def test_browser_style_control_changes_redraw_once_each(explorer):
    before = explorer.update_count
    explorer.controls["bits"].value = 6
    assert explorer.update_count == before + 1 and explorer.stats["levels"] == 64
    explorer.controls["layer"].value = "conv1.weight"   # also re-syncs options without extra redraws
    assert explorer.update_count == before + 2 and explorer.stats["layer"] == "conv1.weight"
    assert explorer.last_update_ms is not None and explorer.last_update_ms < 1000


def test_controls_and_figure_carry_the_css_classes(explorer):
    for control in ("layer", "bits", "scheme", "granularity", "group-size", "channel", "show-quantized"):
        key = control.replace("-", "_")
        assert css_class("quant-grid", control) in explorer.controls[key]._dom_classes
    assert "labkit-quant-grid" in explorer.widget._dom_classes
    assert "labkit-quant-grid-figure" in explorer.figure._dom_classes
    assert explorer.controls["bits"].continuous_update is False
    assert (explorer.controls["bits"].min, explorer.controls["bits"].max) == (1, 8)


def test_one_bit_symmetric_collapses_to_zero_and_is_reported():
    """torch.ao's symmetric rule at 1 bit: codes {-1, 0}, s = max|w| / 0.5 — every weight rounds to 0."""
    torch.manual_seed(0)
    model = nn.Linear(16, 4)
    view = QuantGridExplorer(model, bits=1, scheme="symmetric")
    assert view.stats["sqnr_db"] == pytest.approx(0.0, abs=1e-9)
    assert view.stats["levels_used"] == 1


@pytest.mark.parametrize("kwargs, error, match", [
    ({"bits": 0}, ValueError, r"bits must be an integer in \[1, 8\]"),
    ({"bits": 9}, ValueError, r"bits must be an integer in \[1, 8\]"),
    ({"bits": 4.0}, TypeError, "bits must be an integer"),
    ({"scheme": "affine"}, ValueError, "scheme must be one of"),
    ({"granularity": "layer"}, ValueError, "granularity must be one of"),
    ({"layer": "fc9.weight"}, ValueError, "layer must be one of"),
    ({"group_size": 7}, ValueError, r"group_size must divide the 400 values .* one of \[1, 2, 4"),
    ({"channel": 120}, ValueError, r"channel must be an integer in \[-1, 119\]"),
    ({"show_quantized": 1}, TypeError, "show_quantized must be True or False"),
    ({"bins": 3}, ValueError, "bins"),
])
def test_bad_arguments_are_named(kwargs, error, match):
    with pytest.raises(error, match=match):
        QuantGridExplorer(lenet5(), **{"layer": "fc1.weight", **kwargs})


def test_bad_values_through_set_are_named(explorer):
    with pytest.raises(ValueError, match="layer must be one of"):
        explorer.set(layer="nope")
    with pytest.raises(ValueError, match=r"bits must be an integer in \[1, 8\], got 12"):
        explorer.set(bits=12)
    with pytest.raises(ValueError, match="group_size=7 is not accepted"):
        explorer.set(group_size=7)
    with pytest.raises(TypeError, match="torch.nn.Module"):
        QuantGridExplorer("lenet5")


def test_figure_data_are_plain_lists_and_a_bits_move_changes_no_axis(explorer):
    """What the browser receives: plain lists (never numpy arrays), and on a bits move only the
    traces and the title change — no axis setting (each one would make plotly.js lay out again)."""
    layout_before = explorer.figure.layout.to_plotly_json()
    explorer.set(bits=2)
    for trace in explorer.figure.data:
        for key in ("x", "y", "customdata"):
            value = getattr(trace, key, None)
            assert value is None or isinstance(value, (list, tuple)), (trace.name, key, type(value))
    layout_after = explorer.figure.layout.to_plotly_json()
    layout_before.pop("title"), layout_after.pop("title")
    assert layout_after == layout_before


def test_x_hat_is_drawn_over_the_grid_lines():
    """At 1 bit every x̂ sits on one of two levels: its histogram (right axis) is drawn after the grid
    lines, so the red clipping line does not hide it (issue 11)."""
    view = QuantGridExplorer(lenet5(), layer="fc1.weight", bits=1)
    names = [t.name for t in view.figure.data]
    assert names.index("dequantized x̂") > names.index("clipping points") > names.index("levels (k − z)·s")
    assert view.figure.data[3].yaxis == "y3" and view.figure.layout.yaxis3.overlaying == "y"
    assert np.count_nonzero(view.figure.data[3].y) <= 2 and sum(view.figure.data[3].y) == 120 * 400
