"""Honest comparisons: confidence intervals for accuracies, seed spreads and paired differences.

A test accuracy measured on n images is an estimate; on MNIST's 10,000 test images one image is
0.01 points, and the 95 % interval of a 99 % accuracy is about ±0.2 points. Before a notebook says
"method A beats method B" it asks this module whether the difference is *resolved*:

* ``accuracy_interval(k, n)`` — Wilson's score interval for one accuracy (k correct of n);
* ``seed_interval(values)`` — mean, sample standard deviation and Student-t interval over seeds;
* ``paired_difference(correct_a, correct_b)`` — the difference of two models' accuracies on the
  *same* test images, with an interval from the discordant pairs (McNemar's setting): far tighter
  than two separate intervals, because images both models get right (or wrong) cancel;
* ``paired_over_seeds(correct_a, correct_b)`` — that paired difference for each seed of two trained
  methods, and its mean over the seeds with a Student-t interval.

Each returns an ``Estimate`` that prints as ``98.37 % [98.11, 98.60]`` and, for differences,
``.resolved`` is True only when the interval excludes zero. Only numpy and the standard library.
Explained in notebooks/00_why_compress.ipynb.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from labkit.validate import require_float, require_int

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Estimate:
    """A value with its confidence interval ``[low, high]`` (fractions, e.g. 0.9837 for 98.37 %).

    ``n`` is the number of test images (or seeds) behind it, ``method`` how the interval was made,
    ``std`` the spread over seeds where there were several. ``resolved`` is True when the interval
    excludes 0 (meaningful for a difference).
    """

    value: float
    low: float
    high: float
    n: int
    method: str
    confidence: float = CONFIDENCE
    std: float | None = None

    @property
    def resolved(self) -> bool:
        """True when the interval lies entirely above or entirely below 0."""
        return self.low > 0 or self.high < 0

    @property
    def half_width(self) -> float:
        """Half the interval's width (the "±" of a symmetric interval)."""
        return (self.high - self.low) / 2

    def points(self, digits: int = 2) -> str:
        """The value in percentage points with its interval: ``98.37 % [98.11, 98.60]``."""
        v, lo, hi = (100 * t for t in (self.value, self.low, self.high))
        return f"{v:.{digits}f} % [{lo:.{digits}f}, {hi:.{digits}f}]"

    def signed_points(self, digits: int = 2) -> str:
        """A difference in points: ``+0.12 pt [-0.05, +0.29]``."""
        v, lo, hi = (100 * t for t in (self.value, self.low, self.high))
        return f"{v:+.{digits}f} pt [{lo:+.{digits}f}, {hi:+.{digits}f}]"

    def __str__(self) -> str:
        return self.points()


def _z(confidence: float) -> float:
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def _check_confidence(confidence) -> float:
    return require_float("confidence", confidence, 0.0, 1.0, low_open=True, high_open=True)


def accuracy_interval(correct, n: int | None = None, confidence: float = CONFIDENCE) -> Estimate:
    """Wilson score interval for an accuracy: ``correct`` right answers out of ``n``.

    ``correct`` is either a count (then ``n`` is required) or a boolean/0-1 array of per-image
    results (then ``n`` is its length). With p̂ = k/n and z the normal quantile of ``confidence``:
    ``centre = (p̂ + z²/2n) / (1 + z²/n)``, ``half = z·sqrt(p̂(1-p̂)/n + z²/4n²) / (1 + z²/n)``.
    Unlike p̂ ± z·sqrt(p̂(1-p̂)/n) it never leaves [0, 1] and stays honest near 100 %.
    """
    confidence = _check_confidence(confidence)
    if n is None:
        results = _as_results(correct, "correct")
        k, n = int(results.sum()), len(results)
    else:
        n = require_int("n", n, 1)
        k = require_int("correct", correct, 0, n)
    p, z = k / n, _z(confidence)
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    low = 0.0 if k == 0 else max(0.0, centre - half)      # exact at the ends, not 1e-17 off
    high = 1.0 if k == n else min(1.0, centre + half)
    return Estimate(p, low, high, n, "Wilson", confidence)


def seed_interval(values, confidence: float = CONFIDENCE) -> Estimate:
    """Mean of one measurement repeated over seeds, with its Student-t interval and std.

    ``values`` holds ≥ 2 finite numbers (e.g. accuracies of 3 seeds). Interval:
    ``mean ± t_{n-1}·std/sqrt(n)`` with the sample standard deviation (ddof = 1). With 3 seeds
    t ≈ 4.30, so the interval is wide: say "not resolved" rather than over-read 3 runs.
    """
    confidence = _check_confidence(confidence)
    x = np.asarray(values, dtype=float).ravel()
    if x.size < 2:
        raise ValueError(f"values must hold at least 2 measurements (seeds), got {x.size}")
    if not np.isfinite(x).all():
        raise ValueError("values must all be finite numbers (found NaN or Inf)")
    from scipy.stats import t as student_t

    mean, std = float(x.mean()), float(x.std(ddof=1))
    half = float(student_t.ppf(0.5 + confidence / 2, x.size - 1)) * std / math.sqrt(x.size)
    return Estimate(mean, mean - half, mean + half, int(x.size), "Student t over seeds", confidence, std)


def paired_difference(correct_a, correct_b, confidence: float = CONFIDENCE) -> Estimate:
    """Accuracy of B minus accuracy of A on the same images, with a paired (McNemar) interval.

    ``correct_a``, ``correct_b``: boolean (or 0/1) arrays ``[n]``, one entry per test image, in the
    same order. Only discordant images count: ``b01`` (A wrong, B right) and ``b10`` (A right, B
    wrong). The difference is ``d = (b01 - b10)/n``, its variance ``((b01 + b10) - n·d²)/n²``, and
    the interval ``d ± z·sqrt(variance)`` (Newcombe's simple paired interval). A positive ``value``
    means B is better; ``resolved`` says whether the interval excludes 0.
    """
    confidence = _check_confidence(confidence)
    a, b = _as_results(correct_a, "correct_a"), _as_results(correct_b, "correct_b")
    if a.shape != b.shape:
        raise ValueError(f"correct_a and correct_b must hold one result per image of the same test set, "
                         f"got {a.size} and {b.size} entries")
    n = a.size
    b01, b10 = int(np.sum(~a & b)), int(np.sum(a & ~b))
    d = (b01 - b10) / n
    half = _z(confidence) * math.sqrt(max((b01 + b10) - n * d * d, 0.0)) / n
    return Estimate(d, d - half, d + half, n, "paired (McNemar)", confidence)


def paired_over_seeds(correct_a, correct_b, confidence: float = CONFIDENCE) -> tuple[list[Estimate], Estimate]:
    """B − A for two methods each trained with several seeds: ``(per_seed, over_seeds)``.

    ``correct_a`` and ``correct_b`` are dicts ``{seed: per-image results bool [n]}`` with the same seeds
    (or two sequences in the same seed order), all on the same test images. ``per_seed`` holds the
    ``paired_difference`` of each seed's pair (is this run's difference resolved on these images?);
    ``over_seeds`` is the ``seed_interval`` of those differences (does it survive a change of seed?).
    At least 2 seeds. Explained in notebooks/11_distillation_soft_labels.ipynb.
    """
    if isinstance(correct_a, dict) != isinstance(correct_b, dict):
        raise TypeError("correct_a and correct_b must both be dicts {seed: results} or both sequences")
    if isinstance(correct_a, dict):
        if set(correct_a) != set(correct_b):
            raise ValueError(f"correct_a and correct_b must hold the same seeds, got {sorted(correct_a)} and "
                             f"{sorted(correct_b)}")
        pairs = [(correct_a[s], correct_b[s]) for s in correct_a]
    else:
        if len(correct_a) != len(correct_b):
            raise ValueError(f"correct_a and correct_b must hold one entry per seed, got {len(correct_a)} and "
                             f"{len(correct_b)}")
        pairs = list(zip(correct_a, correct_b))
    per_seed = [paired_difference(a, b, confidence) for a, b in pairs]
    return per_seed, seed_interval([d.value for d in per_seed], confidence)


def describe_difference(name_a: str, name_b: str, diff: Estimate) -> str:
    """One honest sentence about ``diff`` (B minus A): who is better and whether it is resolved."""
    if not diff.resolved:
        return (f"{name_b} vs {name_a}: {diff.signed_points()} — the interval includes 0, so the "
                f"difference is not resolved on {diff.n:,} test images")
    better, worse = (name_b, name_a) if diff.value > 0 else (name_a, name_b)
    return f"{better} beats {worse}: {name_b} − {name_a} = {diff.signed_points()} (resolved, n = {diff.n:,})"


def _as_results(values, name: str) -> np.ndarray:
    x = np.asarray(values.detach().cpu().numpy() if hasattr(values, "detach") else values)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array of per-image results, got shape {x.shape}")
    if x.dtype != bool:
        if not np.isin(x, (0, 1)).all():
            raise ValueError(f"{name} must hold booleans or 0/1 per image (1 = correct)")
        x = x.astype(bool)
    return x
