"""Corruptions do what they say; AUROC against scikit-learn; DeLong's paired interval against a bootstrap."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from labkit import robust


def images():
    return torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))


def test_severity_zero_is_the_identity_and_results_stay_in_range():
    x = images()
    for kind, neutral in (("noise", 0.0), ("blur", 0.0), ("shift", 0), ("rotate", 0.0), ("contrast", 1.0)):
        torch.testing.assert_close(robust.corrupt(x, kind, neutral), x)
    for kind, severity in (("noise", 0.5), ("blur", 1.0), ("shift", 3), ("rotate", 30.0), ("contrast", 0.3)):
        out = robust.corrupt(x, kind, severity)
        assert out.shape == x.shape and float(out.min()) >= 0 and float(out.max()) <= 1
        assert not torch.equal(out, x)


def test_each_corruption_by_hand():
    x = images()
    shifted = robust.corrupt(x, "shift", 2)
    assert torch.equal(shifted[..., 2:, 2:], x[..., :-2, :-2]) and shifted[..., :2, :].abs().sum() == 0
    low = robust.corrupt(x, "contrast", 0.5)
    torch.testing.assert_close(low.mean(dim=(1, 2, 3)), x.mean(dim=(1, 2, 3)))
    torch.testing.assert_close(low.std(dim=(1, 2, 3)), 0.5 * x.std(dim=(1, 2, 3)))
    assert torch.equal(robust.corrupt(x, "noise", 0.2, seed=1), robust.corrupt(x, "noise", 0.2, seed=1))
    assert not torch.equal(robust.corrupt(x, "noise", 0.2, seed=1), robust.corrupt(x, "noise", 0.2, seed=2))
    blurred = robust.corrupt(x, "blur", 2.0)
    assert blurred.std() < 0.5 * x.std()            # uniform noise loses most of its variance to a σ = 2 blur


def test_corrupted_keeps_the_labels(digits):
    test = digits[1]
    out = robust.corrupted(test, "rotate", 20.0)
    assert torch.equal(out.tensors[1], test.tensors[1]) and out.tensors[0].shape == test.tensors[0].shape


@pytest.mark.parametrize("kind,severity,error", [("noise", 1.5, ValueError), ("noise", math.nan, ValueError),
                                                 ("shift", 15, ValueError), ("shift", 1.5, TypeError),
                                                 ("contrast", 0.0, ValueError), ("fog", 1.0, ValueError)])
def test_bad_corruptions_are_named(kind, severity, error):
    with pytest.raises(error, match="severity|kind"):
        robust.corrupt(images(), kind, severity)


def test_auroc_matches_scikit_learn_with_ties():
    rng = np.random.default_rng(0)
    a, b = rng.normal(1, 1, 300).round(1), rng.normal(0, 1, 200).round(1)
    expected = roc_auc_score(np.r_[np.ones(300), np.zeros(200)], np.r_[a, b])
    assert robust.auroc(a, b) == pytest.approx(expected, abs=1e-12)
    assert robust.auroc([1.0, 2.0], [0.0, 0.5]) == 1.0 and robust.auroc([0.5], [0.5]) == 0.5


def test_delong_paired_interval_matches_a_paired_bootstrap():
    rng = np.random.default_rng(1)
    a, b = rng.normal(1, 1, 300), rng.normal(0, 1, 200)
    a2, b2 = a + rng.normal(0, 0.5, 300), b + rng.normal(0, 0.5, 200)
    est = robust.paired_auroc_difference(a, b, a2, b2)
    diffs = []
    for _ in range(2000):
        i, o = rng.integers(0, 300, 300), rng.integers(0, 200, 200)
        diffs.append(robust.auroc(a2[i], b2[o]) - robust.auroc(a[i], b[o]))
    assert est.value == pytest.approx(robust.auroc(a2, b2) - robust.auroc(a, b))
    assert est.half_width / 1.96 == pytest.approx(np.std(diffs), rel=0.15)
    same = robust.paired_auroc_difference(a, b, a, b)
    assert same.value == 0 and same.low == 0 and same.high == 0 and not same.resolved


def test_bad_scores_are_refused():
    with pytest.raises(ValueError, match="in_scores"):
        robust.auroc([], [1.0])
    with pytest.raises(ValueError, match="out_scores"):
        robust.auroc([1.0], [math.nan])
    with pytest.raises(ValueError, match="same images"):
        robust.paired_auroc_difference([1, 2], [0, 1], [1, 2, 3], [0, 1])
