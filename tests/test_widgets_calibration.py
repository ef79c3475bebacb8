"""CalibrationExplorer without a browser: the activations it taps, the range it draws, the numbers
it shows (checked against labkit.quant and torch), its cache and its argument checks."""
import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from labkit.quant import fake_quantize, make_observer, quantize_static, sqnr_db
from labkit.quant.observers import OBSERVERS
from labkit.train import evaluate
from labkit.quant import activation_taps
from labkit.widgets import CalibrationExplorer
from labkit.widgets.base import css_class


def small_cnn():
    """conv → BN → ReLU → pool → flatten → fc → ReLU → fc, with non-trivial BN statistics."""
    torch.manual_seed(0)
    model = nn.Sequential()
    model.add_module("conv1", nn.Conv2d(1, 4, 3, padding=1))
    model.add_module("bn1", nn.BatchNorm2d(4))
    model.add_module("relu1", nn.ReLU())
    model.add_module("pool1", nn.MaxPool2d(2))
    model.add_module("flatten", nn.Flatten())
    model.add_module("fc1", nn.Linear(4 * 4 * 4, 16))
    model.add_module("relu2", nn.ReLU())
    model.add_module("fc2", nn.Linear(16, 3))
    with torch.no_grad():
        model.bn1.running_mean.uniform_(-0.2, 0.2)
        model.bn1.running_var.uniform_(0.5, 2.0)
        model.bn1.weight.uniform_(0.5, 1.5)
    return model.eval()


@pytest.fixture(scope="module")
def setup():
    g = torch.Generator().manual_seed(1)
    calib = torch.rand(32, 1, 8, 8, generator=g)
    x_eval = torch.rand(40, 1, 8, 8, generator=g)
    model = small_cnn()
    with torch.no_grad():
        y_eval = model(x_eval).argmax(1)
    y_eval[:8] = (y_eval[:8] + 1) % 3          # so the float accuracy is 80 %, not a trivial 100 %
    return model, calib, TensorDataset(x_eval, y_eval)


@pytest.fixture
def explorer(setup):
    model, calib, eval_set = setup
    return CalibrationExplorer(model, calib, eval_set, observer="minmax", bits=8)


def captured_relu1(model, calib):
    """The conv1 → BN → ReLU output of the model, computed with torch alone (BN in eval mode)."""
    with torch.no_grad():
        return torch.relu(model.bn1(model.conv1(calib)))


def test_taps_follow_each_layer_to_its_relu(setup):
    model = setup[0]
    taps = activation_taps(model)
    assert list(taps) == ["conv1", "fc1", "fc2"]
    assert taps["conv1"] is model.relu1 and taps["fc1"] is model.relu2 and taps["fc2"] is model.fc2


def test_captured_activation_is_the_post_bn_relu_output(explorer, setup):
    model, calib, _ = setup
    assert torch.allclose(explorer.activations["conv1"], captured_relu1(model, calib), atol=1e-5)
    assert explorer.activations["fc2"].shape == (32, 3)


def test_range_and_numbers_match_labkit_quant(explorer, setup):
    model, calib, eval_set = setup
    act = explorer.activations["conv1"]
    for name in ("minmax", "percentile", "mse", "entropy"):
        for bits in (8, 4):
            explorer.set(layer="conv1", observer=name, bits=bits)
            observer = make_observer(name, bits=bits)
            observer(act)
            lo, hi = (float(v) for v in observer.range())
            qp = observer.calculate_qparams()
            s = explorer.stats
            assert (s["lo"], s["hi"]) == pytest.approx((lo, hi))
            assert s["scale"] == pytest.approx(qp.scale.item()) and s["zero_point"] == qp.zero_point.item()
            assert s["clipped"] == pytest.approx(((act > hi) | (act < lo)).float().mean().item())
            assert s["sqnr_db"] == pytest.approx(sqnr_db(act, fake_quantize(act, qp)))
            # the red range trace draws two vertical lines at lo and hi (3 points each, see vertical_lines)
            assert list(explorer.figure.data[1].x) == pytest.approx([lo] * 3 + [hi] * 3)
            expected = evaluate(quantize_static(model, calib, weight_bits=bits, act_bits=bits, observer=name), eval_set)
            assert s["accuracy"] == pytest.approx(expected)


def test_minmax_never_clips_and_its_range_is_the_data_range(explorer):
    explorer.set(layer="fc1", observer="minmax", bits=3)
    act = explorer.activations["fc1"]
    assert explorer.stats["clipped"] == 0.0
    assert explorer.stats["hi"] == pytest.approx(act.max().item())
    assert explorer.stats["max"] == pytest.approx(act.max().item())


def test_moving_average_sees_four_batches(explorer):
    explorer.set(layer="conv1", observer="moving_average", bits=8)
    act = explorer.activations["conv1"]
    observer = make_observer("moving_average", bits=8)
    for piece in act.chunk(4):
        observer(piece)
    assert explorer.stats["hi"] == pytest.approx(float(observer.range()[1]))
    assert explorer.stats["hi"] < act.max().item()   # c = 0.01: later batches barely move the range


def test_histogram_bars_count_every_value(explorer):
    for layer in ("conv1", "fc1", "fc2"):
        explorer.set(layer=layer)
        counts = np.asarray(explorer.figure.data[0].y)
        assert counts.sum() == explorer.activations[layer].numel() == explorer.stats["numel"]
        assert len(counts) == explorer.bins


def test_accuracy_is_cached_per_observer_and_bits(explorer):
    explorer.set(observer="mse", bits=5)
    evaluations = explorer.stats["evaluations"]
    assert explorer.stats["cache_hit"] is False
    explorer.set(layer="fc1")                         # another layer: same model accuracy, from the cache
    assert explorer.stats["cache_hit"] is True and explorer.stats["evaluations"] == evaluations
    explorer.set(log=False)
    assert explorer.figure.layout.yaxis.type == "linear"
    explorer.set(bits=6)
    assert explorer.stats["cache_hit"] is False and explorer.stats["evaluations"] == evaluations + 1


def test_title_and_readout_name_the_setting(explorer):
    explorer.set(layer="conv1", observer="percentile", bits=4)
    assert explorer.figure.layout.title.text.startswith("conv1: percentile, 4 bits → range [")
    assert "model accuracy" in explorer.readout.value and "percentile" in explorer.readout.value


def test_controls_have_stable_css_classes(explorer):
    for control in ("layer", "observer", "bits", "log"):
        assert css_class("calibration", control) in explorer.controls[control]._dom_classes
    assert explorer.controls["observer"].options == tuple(OBSERVERS)
    assert explorer.controls["bits"].continuous_update is False


def test_arguments_are_validated(setup):
    model, calib, eval_set = setup
    with pytest.raises(ValueError, match="observer"):
        CalibrationExplorer(model, calib, eval_set, observer="kl")
    with pytest.raises(ValueError, match="bits"):
        CalibrationExplorer(model, calib, eval_set, bits=9)
    with pytest.raises(ValueError, match="layer"):
        CalibrationExplorer(model, calib, eval_set, layer="bn1")
    with pytest.raises(TypeError, match="calib_data"):
        CalibrationExplorer(model, [1, 2, 3], eval_set)
    with pytest.raises(TypeError, match="model"):
        CalibrationExplorer("lenet5", calib, eval_set)
    with pytest.raises(ValueError, match="nn.Conv2d or nn.Linear"):
        CalibrationExplorer(nn.Sequential(nn.ReLU()), calib, eval_set)
    explorer = CalibrationExplorer(model, calib, eval_set)
    with pytest.raises(ValueError, match="not accepted"):
        explorer.set(observer="kl")


def test_a_bits_or_layer_move_sends_plain_lists_and_changes_no_axis(explorer):
    """Only the `log` control changes an axis; every other move changes trace data and the title."""
    layout = explorer.figure.layout.to_plotly_json()
    explorer.set(bits=5)
    explorer.set(layer="fc1")
    for trace in explorer.figure.data:
        assert isinstance(trace.x, (list, tuple)) and isinstance(trace.y, (list, tuple)), trace.name
    after = explorer.figure.layout.to_plotly_json()
    layout.pop("title"), after.pop("title")
    assert after == layout
    explorer.set(log=False)
    assert explorer.figure.layout.yaxis.type == "linear" and explorer.figure.layout.yaxis.title.text == "count"
