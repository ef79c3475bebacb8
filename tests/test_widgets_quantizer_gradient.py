"""The quantizer gradient explorer (labkit.widgets.quantizer_gradient) without a browser: curves, controls, redraws."""
import numpy as np
import pytest
import torch

from labkit.quant import quantizer_response
from labkit.widgets.quantizer_gradient import QUANTIZERS, QuantizerGradientExplorer

X = torch.tensor([-2.6, -1.1, -0.2, 0.3, 0.9, 1.4, 2.2])


def test_clipped_and_identity_ste_match_torch_fake_quantize():
    """2-bit symmetric signed grid of [-1, 1]: s = 1/1.5, codes [-2, 1]; torch's fake quant is the oracle."""
    r = quantizer_response("clipped", 2, 1.0, X)
    x = X.clone().requires_grad_(True)
    y = torch.fake_quantize_per_tensor_affine(x, 1 / 1.5, 0, -2, 1)
    y.sum().backward()
    assert np.allclose(r["x_hat"], y.detach().numpy(), atol=1e-6)
    assert np.array_equal(r["grad_x"], x.grad.numpy())
    assert r["grad_x"].tolist() == [0, 1, 1, 1, 1, 0, 0] and r["grad_param"] is None
    assert np.allclose(r["levels"], [-4 / 3, -2 / 3, 0, 2 / 3], atol=1e-6)
    assert quantizer_response("identity", 2, 1.0, X)["grad_x"].tolist() == [1] * 7


def test_lsq_step_derivative_is_the_papers_formula():
    """s = 1.5 / Q_P = 0.5 at 3 bits: ∂x̂/∂s = −x/s + round(x/s) inside, −Q_N = −4 below, Q_P = 3 above."""
    r = quantizer_response("lsq", 3, 1.5, X)
    assert r["scale"] == pytest.approx(0.5) and r["param"] == "s"
    assert np.allclose(r["grad_param"], [-4, 0.2, 0.4, 0.4, 0.2, 0.2, 3], atol=1e-5)
    assert r["grad_x"].tolist() == [0, 1, 1, 1, 1, 1, 0]
    assert np.allclose(r["x_hat"], [-2, -1, 0, 0.5, 1, 1.5, 1.5])


def test_pact_alpha_derivative_is_one_above_alpha():
    r = quantizer_response("pact", 2, 1.0, X)
    assert r["grad_param"].tolist() == [0, 0, 0, 0, 0, 1, 1]
    assert r["grad_x"].tolist() == [0, 0, 0, 1, 1, 0, 0]
    assert np.allclose(r["x_hat"], [0, 0, 0, 1 / 3, 1, 1, 1], atol=1e-6)
    assert np.allclose(r["levels"], [0, 1 / 3, 2 / 3, 1])


def test_response_argument_checks():
    with pytest.raises(ValueError, match="kind must be one of"):
        quantizer_response("dorefa", 2, 1.0)
    with pytest.raises(ValueError, match="bits"):
        quantizer_response("lsq", 0, 1.0)
    with pytest.raises(ValueError, match="clip"):
        quantizer_response("pact", 2, 0.0)
    with pytest.raises(TypeError, match="1-D floating-point"):
        quantizer_response("clipped", 2, 1.0, torch.ones(2, 2))


def test_explorer_redraws_for_every_quantizer():
    explorer = QuantizerGradientExplorer()
    assert explorer.stats["quantizer"] == "clipped" and explorer.stats["levels"] == 4
    assert 0 < explorer.stats["pass_fraction"] < 1
    for kind in QUANTIZERS:
        count = explorer.update_count
        explorer.set(quantizer=kind, bits=3, clip=1.5)
        assert explorer.update_count == count + 1
        assert explorer.stats["levels"] == 8 and len(explorer.figure.data[1].x) == 501
        print(f"{kind}: redraw {explorer.last_update_ms:.1f} ms")
    assert explorer.stats["param"] == "α" and explorer.stats["param_grad_max"] == 1.0
    assert list(explorer.figure.data[4].y[-3:]) == [1.0, 1.0, 1.0]
    explorer.set(quantizer="identity")
    assert explorer.stats["pass_fraction"] == 1.0 and explorer.figure.data[4].visible is False
    explorer.set(quantizer="lsq", bits=2, clip=1.0)
    assert explorer.stats["param_grad_min"] == pytest.approx(-2) and explorer.stats["param_grad_max"] == pytest.approx(1)


def test_explorer_css_classes_and_argument_checks():
    explorer = QuantizerGradientExplorer("lsq", bits=4, clip=0.5)
    for control in ("quantizer", "bits", "clip"):
        assert f"labkit-quantizer-gradient-{control}" in explorer.controls[control]._dom_classes
    assert "labkit-quantizer-gradient" in explorer.widget._dom_classes
    assert "LSQ" in explorer.figure.layout.title.text
    with pytest.raises(ValueError, match="quantizer must be one of"):
        QuantizerGradientExplorer("round")
    with pytest.raises(ValueError, match="bits"):
        QuantizerGradientExplorer(bits=9)
    with pytest.raises(ValueError, match="clip"):
        QuantizerGradientExplorer(clip=3.0)


def test_explorer_sends_plain_data_and_labels_every_axis():
    """Issue 11: numpy arrays in trace properties reach plotly.js badly; a move updates data only (each
    trace with its whole x and y, as plain lists), and every axis that carries data has a title."""
    explorer = QuantizerGradientExplorer("lsq", bits=2, clip=1.0)
    xs = [trace.x for trace in explorer.figure.data]
    for kind, bits, clip in (("pact", 3, 0.5), ("clipped", 8, 2.0), ("lsq", 1, 0.25)):
        explorer.set(quantizer=kind, bits=bits, clip=clip)
        for trace, before in zip(explorer.figure.data, xs):
            assert not isinstance(trace.y, np.ndarray) and not isinstance(trace.x, np.ndarray)
            assert trace.x == before, "x changed: the inputs are the same 501 points"
            assert trace.name and not trace.name.startswith("trace")
    layout = explorer.figure.layout
    for axis in ("xaxis", "xaxis2", "xaxis3", "yaxis", "yaxis2", "yaxis3"):
        assert layout[axis].title.text, f"{axis} has no title"
    assert "LSQ" in layout.title.text and "1 bits" in layout.title.text and explorer.figure.data[4].visible
