"""labkit.quant.observers: bit-for-bit agreement with torch.ao, range choices, bad input."""
import warnings

import numpy as np
import pytest
import torch

from labkit.quant import observers as lab
from labkit.quant.affine import fake_quantize, mse


def _batches(kind: str) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(hash(kind) % 1000)
    if kind == "gaussian":  # range grows, then shrinks: exercises histogram re-binning
        return [torch.randn(64, 32, generator=g) * s + o for s, o in [(1, 0), (3, 1), (0.5, -2), (2, 0.3)]]
    if kind == "heavy_tailed":
        t = torch.distributions.StudentT(torch.tensor(2.0))
        torch.manual_seed(0)
        return [t.sample((4000,)) for _ in range(3)]
    if kind == "relu":
        return [torch.relu(torch.randn(50, 40, generator=g)) * k for k in (1, 2, 0.5, 4)]
    if kind == "constant_first":
        return [torch.full((10,), 2.0), torch.randn(300, generator=g), torch.randn(300, generator=g) * 3]
    if kind == "constant":
        return [torch.full((7, 3), -0.25)]
    raise KeyError(kind)


KINDS = ["gaussian", "heavy_tailed", "relu", "constant_first", "constant"]
SCHEMES = [(False, "affine"), (True, "symmetric")]
DTYPES = [(False, "quint8"), (True, "qint8")]


def _torch_observer(name, signed, symmetric):
    tq = pytest.importorskip("torch.ao.quantization.observer")
    dtype = torch.qint8 if signed else torch.quint8
    if name == "per_channel":
        scheme = torch.per_channel_symmetric if symmetric else torch.per_channel_affine
        return tq.PerChannelMinMaxObserver(ch_axis=1, dtype=dtype, qscheme=scheme, reduce_range=False)
    scheme = torch.per_tensor_symmetric if symmetric else torch.per_tensor_affine
    cls = {"minmax": tq.MinMaxObserver, "moving_average": tq.MovingAverageMinMaxObserver,
           "histogram": tq.HistogramObserver}[name]
    return cls(dtype=dtype, qscheme=scheme, reduce_range=False)


def _lab_observer(name, signed, symmetric):
    if name == "per_channel":
        return lab.PerChannelMinMaxObserver(8, symmetric, signed, axis=1)
    return lab.make_observer(name, 8, symmetric, signed)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("symmetric,scheme", SCHEMES)
@pytest.mark.parametrize("signed,dtype", DTYPES)
@pytest.mark.parametrize("name", ["minmax", "moving_average", "per_channel", "histogram"])
def test_bit_for_bit_equal_to_torch_ao(name, kind, symmetric, scheme, signed, dtype):
    batches = _batches(kind)
    if name == "per_channel":  # channels along axis 1
        batches = [b if b.dim() == 2 else b.reshape(-1, 2) for b in batches]
    theirs, ours = _torch_observer(name, signed, symmetric), _lab_observer(name, signed, symmetric)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for b in batches:
            theirs(b)
            ours(b)
        scale, zero_point = theirs.calculate_qparams()
    qp = ours.calculate_qparams()
    assert torch.equal(qp.scale.reshape(-1), scale.reshape(-1)), (qp.scale, scale)
    assert torch.equal(qp.zero_point.reshape(-1).long(), zero_point.reshape(-1).long())
    if name == "histogram":
        assert torch.equal(ours.histogram, theirs.histogram)


def test_observer_returns_its_input_unchanged():
    x = torch.randn(5, 3)
    for name in lab.OBSERVERS:
        assert lab.make_observer(name)(x) is x


def test_moving_average_follows_the_formula():
    obs = lab.MovingAverageMinMaxObserver(averaging_constant=0.5)
    obs(torch.tensor([-1.0, 1.0]))
    obs(torch.tensor([-3.0, 5.0]))
    assert obs.min_val.item() == -2.0 and obs.max_val.item() == 3.0


def test_percentile_ignores_a_single_outlier():
    x = torch.cat([torch.randn(100_000, generator=torch.Generator().manual_seed(0)), torch.tensor([1000.0])])
    obs = lab.PercentileObserver(99.9, bins=4096)
    obs(x)
    lo, hi = obs.range()
    assert 2.5 < hi.item() < 4.0 and -4.0 < lo.item() < -2.5  # N(0,1): 99.9th percentile ≈ 3.09


def test_mse_and_histogram_observers_beat_minmax_on_outliers():
    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randn(20_000, generator=g), torch.tensor([40.0, -35.0])])
    errors = {}
    for name in ("minmax", "mse", "histogram", "entropy", "percentile"):
        obs = lab.make_observer(name, bits=4)
        obs(x)
        errors[name] = mse(x, fake_quantize(x, obs.calculate_qparams()))
    assert errors["mse"] < errors["minmax"] / 3
    # torch.ao's greedy search stops at the first step that increases the error, so here it trims
    # only the right tail (range [-35, 3.6]): better than min/max, far from the MSE search
    assert errors["histogram"] < errors["minmax"]
    assert errors["percentile"] < errors["minmax"]
    assert errors["entropy"] < errors["minmax"]


def test_entropy_observer_ranges():
    g = torch.Generator().manual_seed(0)
    relu = torch.relu(torch.randn(50_000, generator=g))
    obs = lab.EntropyObserver(bins=512)
    obs(relu)
    lo, hi = obs.range()
    assert lo.item() == 0.0 and 1.0 < hi.item() <= relu.max().item() + 1e-6
    signed = lab.EntropyObserver(bins=512, symmetric=True, signed=True)
    signed(torch.randn(50_000, generator=g))
    lo, hi = signed.range()
    assert lo.item() == -hi.item() and hi.item() > 1.0


def test_entropy_threshold_clips_far_outliers_on_a_hand_worked_histogram():
    # |x| over [0, 16] in 16 bins of width 1: a core of 1100 values in bins 0-3 with counts
    # 400, 400, 200, 100 (bin centres 0.5..3.5) and 2 outliers at 16 (last bin). 2 bits, no negative
    # value → 4 levels, so the candidate thresholds are T = i·1 for i = 4..16 bins (start_bin=1).
    # - i = 4: each of the 4 chunks is one bin, Q = the core, P = the core + the 2 clipped outliers
    #   in bin 3 → KL = (102/1102)·ln(1.01815) + (1000/1102)·ln(1100/1102) ≈ 1.7e-5.
    # - i = 5..15: the clipped outliers land in an empty bin, where Q is 0 → KL = ∞.
    # - i = 16: chunk 0 (bins 0-3) is flattened to 275 per bin
    #   → KL = (800·ln(400/275) + 200·ln(200/275) + 100·ln(100/275)) / 1102 ≈ 0.122.
    # So T = 4: the outliers are clipped, and T is the core's upper edge (3.5 < T <= 4).
    core = torch.tensor([0.5] * 400 + [1.5] * 400 + [2.5] * 200 + [3.5] * 100)
    x = torch.cat([core, torch.tensor([16.0, 16.0])])[torch.randperm(1102, generator=torch.Generator().manual_seed(0))]
    obs = lab.EntropyObserver(bins=16, bits=2, start_bin=1)
    obs(x)
    assert obs.histogram.tolist() == [400, 400, 200, 100] + [0] * 11 + [2]
    lo, hi = obs.range()
    assert lo.item() == 0.0 and hi.item() == 4.0
    assert fake_quantize(torch.tensor([16.0]), obs.calculate_qparams()).item() == 4.0  # outliers clipped


def test_per_channel_on_any_axis():
    x = torch.randn(2, 3, 4) * torch.tensor([1.0, 10.0, 100.0]).reshape(1, 3, 1)
    obs = lab.MinMaxObserver(symmetric=True, signed=True, granularity="channel", axis=1)
    obs(x)
    qp = obs.calculate_qparams()
    assert qp.scale.shape == (3,) and qp.axis == 1
    expected = x.abs().amax(dim=(0, 2)) / 127.5
    assert torch.allclose(qp.scale, expected)


@pytest.mark.parametrize("cls", [lab.MinMaxObserver, lab.PerChannelMinMaxObserver, lab.MovingAverageMinMaxObserver])
def test_negative_axis_counts_from_the_end_as_in_affine(cls):
    from labkit.quant.affine import quantize_tensor

    x = torch.randn(2, 3, 4) * torch.tensor([1.0, 10.0, 100.0, 1000.0])
    channel = {} if cls is lab.PerChannelMinMaxObserver else {"granularity": "channel"}
    negative, positive = cls(axis=-1, **channel), cls(axis=2, **channel)
    negative(x)
    positive(x)
    qp_neg, qp_pos = negative.calculate_qparams(), positive.calculate_qparams()
    assert qp_neg.axis == 2 and qp_neg.scale.shape == (4,)
    assert torch.equal(qp_neg.scale, qp_pos.scale) and torch.equal(qp_neg.zero_point, qp_pos.zero_point)
    _, qp_affine = quantize_tensor(x, granularity="channel", axis=-1)
    assert torch.equal(qp_neg.scale, qp_affine.scale)
    with pytest.raises(ValueError, match=r"axis must be an integer in \[-3, 2\]"):
        cls(axis=-4, **channel)(x)


# --------------------------------------------------------------------------- bad input
def test_nothing_observed_raises():
    for name in lab.OBSERVERS:
        with pytest.raises(ValueError, match="not observed"):
            lab.make_observer(name).calculate_qparams()


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_input_raises(bad):
    for name in lab.OBSERVERS:
        with pytest.raises(ValueError, match="finite"):
            lab.make_observer(name)(torch.tensor([0.0, bad]))


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="observer"):
        lab.make_observer("kmeans")
    with pytest.raises(ValueError, match="bits"):
        lab.MinMaxObserver(bits=0)
    with pytest.raises(ValueError, match="averaging_constant"):
        lab.MovingAverageMinMaxObserver(averaging_constant=0.0)
    with pytest.raises(ValueError, match="percentile"):
        lab.PercentileObserver(percentile=40)
    with pytest.raises(ValueError, match="bins"):
        lab.HistogramObserver(bins=1)
    with pytest.raises(TypeError, match="symmetric"):
        lab.MinMaxObserver(symmetric="yes")
    with pytest.raises(ValueError, match="axis"):
        lab.MinMaxObserver(granularity="channel", axis=3)(torch.randn(2, 2))
    with pytest.raises(ValueError, match="axis"):
        lab.MinMaxObserver(granularity="channel", axis=-3)(torch.randn(2, 2))  # negative axes are fine, out-of-range ones are not
    with pytest.raises(TypeError, match="axis"):
        lab.MinMaxObserver(granularity="channel", axis=1.5)
    for old_per_channel_spelling in (0, 1):  # axis=int alone meant per channel before granularity= existed
        with pytest.raises(ValueError, match="axis=.* is used only with granularity='channel'"):
            lab.MinMaxObserver(axis=old_per_channel_spelling)
        with pytest.raises(ValueError, match="granularity='channel'"):
            lab.MovingAverageMinMaxObserver(axis=old_per_channel_spelling)
    assert lab.MinMaxObserver().axis is None and lab.MinMaxObserver(granularity="channel").axis == 0
    with pytest.raises(ValueError, match="granularity must be one of 'tensor', 'channel'"):
        lab.MinMaxObserver(granularity="group")
    with pytest.raises(TypeError, match="x"):
        lab.MinMaxObserver()([1.0, 2.0])


@pytest.mark.parametrize("levels, bins, first", [(128, 512, 128), (4, 16, 1), (256, 2048, 256), (8, 300, 20)])
def test_vectorised_kl_equals_the_per_threshold_definition(levels, bins, first):
    from labkit.quant.observers import _kl_after_merge, _kl_per_threshold
    rng = np.random.default_rng(levels + bins)
    hist = np.floor(rng.exponential(50.0, bins) * (rng.random(bins) < 0.8))  # empty bins too
    hist[-7:] = 0.0                                                          # an empty far tail
    hist[bins // 2] = 0.0
    tail = np.concatenate([np.cumsum(hist[::-1])[::-1], [0.0]])
    expected = np.array([_kl_after_merge(hist[:i], tail[i], levels) for i in range(first, bins + 1)])
    got = _kl_per_threshold(hist, levels, first)
    assert np.array_equal(np.isinf(got), np.isinf(expected))
    finite = np.isfinite(expected)
    np.testing.assert_allclose(got[finite], expected[finite], rtol=1e-9, atol=1e-12)


def test_entropy_kl_curve_is_the_search_that_range_runs():
    gen = torch.Generator().manual_seed(3)
    x = torch.relu(torch.randn(20_000, generator=gen)) * 3
    obs = lab.EntropyObserver(bits=6)
    obs(x)
    thresholds, kl = obs.kl_curve()
    assert thresholds.shape == kl.shape and len(kl) == obs.bins - 128 + 1     # bins 128..2048 at 6 bits
    assert np.all(np.diff(thresholds) > 0) and thresholds[-1] == pytest.approx(x.max().item())
    lo, hi = obs.range()
    assert lo.item() == 0.0
    assert hi.item() == pytest.approx(thresholds[np.flatnonzero(kl == kl.min())[-1]], rel=1e-6)
