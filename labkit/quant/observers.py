"""Observers: watch the tensors that flow through a layer and choose a quantization range.

An observer is an ``nn.Module`` that returns its input unchanged and records statistics on the
side; ``calculate_qparams()`` then turns the chosen range ``[lo, hi]`` into a scale and zero point
with ``affine.qparams_from_range``. The observers differ only in how they pick ``[lo, hi]``:

- ``MinMaxObserver``              running min and max (per tensor, or ``granularity="channel"`` along ``axis``)
- ``MovingAverageMinMaxObserver`` exponential moving average of each batch's min and max
- ``HistogramObserver``           L2-optimal range found on a running histogram (torch.ao's search)
- ``PercentileObserver``          clip the rarest ``100 - p`` percent at each end
- ``MSEObserver``                 shrink the range while the expected squared error goes down
- ``EntropyObserver``             minimise the KL divergence between the histogram and its
                                  quantized version (TensorRT's int8 calibrator, Migacz 2017)

The first three reproduce ``torch.ao.quantization.observer``'s MinMaxObserver,
MovingAverageMinMaxObserver, PerChannelMinMaxObserver and HistogramObserver bit for bit (same
float32 arithmetic, same histogram re-binning); the tests check it.

Explained in notebooks/03_post_training_quantization.ipynb
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from labkit import architecture
from labkit.quant.affine import (SCALE_GRANULARITIES, QParams, channel_view, check_axis, check_bits, check_granularity,
                                 fake_quantize, qparams_from_range, stored_axis)
from labkit.validate import require_bool, require_choice, require_float, require_float_tensor, require_int

__all__ = [
    "Observer", "MinMaxObserver", "PerChannelMinMaxObserver", "MovingAverageMinMaxObserver",
    "HistogramObserver", "PercentileObserver", "MSEObserver", "EntropyObserver", "OBSERVERS",
    "make_observer", "register_observer",
]


class Observer(nn.Module):
    """Base class: ``forward(x)`` records statistics of ``x`` and returns ``x`` unchanged.

    ``bits`` in [1, 16]; ``symmetric``/``signed`` choose the integer grid (see
    ``affine.qparams_from_range``). ``granularity`` (``"tensor"``: one range; ``"channel"``: one per
    index of ``axis``, as in ``affine.quantize_tensor``) is ``"tensor"`` unless a subclass supports
    channels (``MinMaxObserver`` does). Subclasses implement ``_observe(x)`` and ``range()``.
    Explained in notebooks/03_post_training_quantization.ipynb.
    """

    granularity = "tensor"
    axis = 0

    def __init__(self, bits: int = 8, symmetric: bool = False, signed: bool = False):
        super().__init__()
        self.bits = check_bits(bits)
        self.symmetric = require_bool("symmetric", symmetric)
        self.signed = require_bool("signed", signed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        require_float_tensor("x", x)
        if x.numel() > 0:
            self._observe(x.detach().float())
        return x

    def _observe(self, x: torch.Tensor) -> None:
        raise NotImplementedError

    def has_data(self) -> bool:
        raise NotImplementedError

    def range(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The chosen float range ``(lo, hi)`` (float32 tensors)."""
        raise NotImplementedError

    def calculate_qparams(self) -> QParams:
        """Scale and zero point for the chosen range; ``ValueError`` if nothing was observed yet."""
        if not self.has_data():
            raise ValueError(f"{type(self).__name__} has not observed any tensor yet: run calibration "
                             "data through the model before asking for quantization parameters")
        lo, hi = self.range()
        axis = self.axis if self.granularity == "channel" else None
        return qparams_from_range(lo, hi, self.bits, self.symmetric, self.signed, axis=axis)

    def extra_repr(self) -> str:
        where = f", granularity='channel', axis={self.axis}" if self.granularity == "channel" else ""
        return f"bits={self.bits}, symmetric={self.symmetric}, signed={self.signed}" + where


# --------------------------------------------------------------------------- by name
OBSERVERS: dict[str, type] = {}
"""``name -> Observer subclass``, in registration order: what ``make_observer``, ``quantize_static``
and the calibration explorer accept as ``observer=``."""


def register_observer(name: str):
    """Class decorator: make an ``Observer`` subclass available as ``observer=name`` everywhere
    (``OBSERVERS``, ``make_observer``, ``quantize_static``, the calibration explorer) and saveable
    by ``labkit.architecture`` — it must keep each constructor argument in an attribute of the same
    name and what it has seen in buffers. ``ValueError`` for a name already taken.
    Explained in notebooks/03_post_training_quantization.ipynb.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty str, got {name!r}")
    if name in OBSERVERS:
        raise ValueError(f"observer {name!r} is already registered ({OBSERVERS[name].__name__})")

    def register(cls: type) -> type:
        if not (isinstance(cls, type) and issubclass(cls, Observer)):
            raise TypeError(f"register_observer({name!r}) decorates an Observer subclass, got {cls!r}")
        OBSERVERS[name] = cls
        _register_saving(cls)
        return cls
    return register


def _register_saving(cls: type) -> None:
    architecture.register_module(cls, architecture.constructor_arguments, lambda args, children: cls(**args))


# --------------------------------------------------------------------------- min / max
@register_observer("minmax")
class MinMaxObserver(Observer):
    """Running ``min`` and ``max`` of everything seen: ``lo = min_t min(x_t)``, ``hi = max_t max(x_t)``.

    ``granularity="tensor"`` keeps one pair; ``granularity="channel"`` one pair per index of dimension
    ``axis`` (shape ``[C]``, as ``torch.ao``'s PerChannelMinMaxObserver) — the words of
    ``affine.quantize_tensor``; a negative ``axis`` counts from the end (fixed by the first tensor
    observed). One outlier stretches the range of every other value — the motivation for the other
    observers. Explained in notebooks/03_post_training_quantization.ipynb.
    """

    def __init__(self, bits: int = 8, symmetric: bool = False, signed: bool = False, granularity: str = "tensor",
                 axis: int | None = None):
        super().__init__(bits, symmetric, signed)
        self.granularity = check_granularity(granularity, SCALE_GRANULARITIES)
        self.axis = stored_axis(granularity, axis)  # None per tensor; range checked against the input
        self.register_buffer("min_val", torch.tensor(math.inf))
        self.register_buffer("max_val", torch.tensor(-math.inf))

    def _batch_minmax(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.granularity == "tensor":
            return torch.aminmax(x)
        self.axis = check_axis(self.axis, x.dim())  # QParams need the non-negative axis
        return torch.aminmax(channel_view(x, self.axis), dim=1)

    def _observe(self, x: torch.Tensor) -> None:
        lo, hi = self._batch_minmax(x)
        if self.has_data():
            if lo.shape != self.min_val.shape:
                raise ValueError(f"observed a tensor with {lo.numel()} channels after one with {self.min_val.numel()}")
            lo, hi = self._merge(lo, hi)
        self.min_val, self.max_val = lo, hi

    def _merge(self, lo: torch.Tensor, hi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.minimum(lo, self.min_val), torch.maximum(hi, self.max_val)

    def has_data(self) -> bool:
        return bool(torch.isfinite(self.min_val).all()) and self.min_val.numel() > 0

    def range(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.min_val, self.max_val


class PerChannelMinMaxObserver(MinMaxObserver):
    """``MinMaxObserver(granularity="channel", axis=axis)`` (default 0: output channels), under torch.ao's name.
    Explained in notebooks/03_post_training_quantization.ipynb."""

    def __init__(self, bits: int = 8, symmetric: bool = False, signed: bool = False, axis: int = 0):
        super().__init__(bits, symmetric, signed, "channel", axis)


@register_observer("moving_average")
class MovingAverageMinMaxObserver(MinMaxObserver):
    """Exponential moving average of each batch's min/max: ``lo ← lo + c·(min(x) - lo)`` (first batch:
    ``lo = min(x)``), same for ``hi``, with ``c = averaging_constant`` in (0, 1].

    Used during quantization-aware training, where the activations drift while the weights learn;
    ``c = 1`` keeps only the latest batch. Explained in notebooks/05_quantization_aware_training.ipynb.
    """

    def __init__(self, averaging_constant: float = 0.01, bits: int = 8, symmetric: bool = False,
                 signed: bool = False, granularity: str = "tensor", axis: int | None = None):
        super().__init__(bits, symmetric, signed, granularity, axis)
        self.averaging_constant = require_float("averaging_constant", averaging_constant, 0.0, 1.0, low_open=True)

    def _merge(self, lo: torch.Tensor, hi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.averaging_constant
        return self.min_val + c * (lo - self.min_val), self.max_val + c * (hi - self.max_val)


# --------------------------------------------------------------------------- histograms
@register_observer("histogram")
class HistogramObserver(Observer):
    """Running histogram of the values (``bins`` bins over the running ``[min, max]``), then the range
    that minimises the L2 quantization error, found by torch.ao's greedy search.

    When a batch widens the range, the old histogram is re-binned into the new range by splitting
    each old bin into 16 equal pieces and dropping every piece into the new bin that holds its
    centre. ``range()`` then moves the left or right edge inwards, one bin at a time, on the side
    where the cumulative mass is smaller, while the estimated error (values uniform inside each
    bin, squared distance to the nearest of ``2^bits`` destination levels, clipping included)
    keeps going down. Explained in notebooks/03_post_training_quantization.ipynb.
    """

    upsample_rate = 16

    def __init__(self, bins: int = 2048, bits: int = 8, symmetric: bool = False, signed: bool = False):
        super().__init__(bits, symmetric, signed)
        self.bins = require_int("bins", bins, 2, 1 << 16)
        self.register_buffer("histogram", torch.zeros(self.bins))
        self.register_buffer("min_val", torch.tensor(math.inf))
        self.register_buffer("max_val", torch.tensor(-math.inf))

    def has_data(self) -> bool:
        return bool(torch.isfinite(self.min_val))

    # ---- accumulation
    def _observe(self, x: torch.Tensor) -> None:
        x = self._transform(x)
        x_min, x_max = self._batch_range(x)
        if not self.has_data():
            self.min_val, self.max_val = x_min, x_max
            self.histogram = torch.histc(x, self.bins, min=x_min, max=x_max)
            return
        new_min, new_max = torch.minimum(self.min_val, x_min), torch.maximum(self.max_val, x_max)
        batch_hist = torch.histc(x, self.bins, min=new_min, max=new_max)
        if new_min == self.min_val and new_max == self.max_val:
            self.histogram = self.histogram + batch_hist
            return
        if self.min_val == self.max_val:  # the old histogram is a single value: move all of it at once
            old = torch.histc(self.min_val, self.bins, min=new_min, max=new_max) * self.histogram.sum()
        else:
            old = self._rebin(self.histogram, self.min_val, self.max_val, new_min, new_max)
        self.histogram = batch_hist + old
        self.min_val, self.max_val = new_min, new_max

    def _transform(self, x: torch.Tensor) -> torch.Tensor:
        return x  # EntropyObserver histograms |x|

    def _batch_range(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.aminmax(x)

    def _rebin(self, hist, old_min, old_max, new_min, new_max) -> torch.Tensor:
        """Move ``hist`` (over ``[old_min, old_max]``) onto ``bins`` bins over ``[new_min, new_max]``."""
        pieces = self.bins * self.upsample_rate
        mass = hist.repeat_interleave(self.upsample_rate) / self.upsample_rate
        piece_width = (old_max - old_min) / pieces
        centres = torch.linspace(old_min, old_max, pieces + 1)[:-1] + 0.5 * piece_width
        edges = torch.linspace(new_min, new_max, self.bins + 1)
        target = (torch.bucketize(centres, edges, right=True) - 1).clamp(0, self.bins - 1)
        return torch.bincount(target, weights=mass, minlength=self.bins)

    # ---- range selection
    def range(self) -> tuple[torch.Tensor, torch.Tensor]:
        start, end = self._l2_search()
        bin_width = (self.max_val - self.min_val) / self.bins
        return self.min_val + bin_width * start, self.min_val + bin_width * (end + 1)

    def _l2_search(self) -> tuple[int, int]:
        """Greedy search over ``[start_bin, end_bin]``: trim the side with less mass by a quantile
        step of 1e-5 and keep going while the L2 error decreases (torch.ao / caffe2's
        NormMinimization). Comparisons are done in float32, as torch does."""
        total = self.histogram.sum().item()
        cumulative = torch.cumsum(self.histogram, dim=0).tolist()
        step, alpha, beta = 1e-5, 0.0, 1.0
        start, end, best = 0, self.bins - 1, math.inf
        while alpha < beta:
            next_alpha, next_beta = alpha + step, beta - step
            low_mass, high_mass = _f32(next_alpha * total), _f32(next_beta * total)
            left = start
            while left < end and cumulative[left] < low_mass:
                left += 1
            right = end
            while right > start and cumulative[right] > high_mass:
                right -= 1
            if left - start > end - right:  # more to gain on the left: move the left edge
                candidate, alpha = (left, end), next_alpha
            else:
                candidate, beta = (start, right), next_beta
            if candidate == (start, end):
                continue
            error = self._l2_error(*candidate)
            if error > best:
                break
            best, (start, end) = error, candidate
        return start, end

    def _l2_error(self, start: int, end: int) -> float:
        """Expected squared error when bins ``start..end`` are mapped onto ``2^bits`` levels.

        Values inside a source bin are taken as uniform (density ``h / w``). A source bin
        ``[b, b + w]`` (measured from the left edge of bin ``start``) lands in destination bins
        ``j0 = floor(b / d)`` .. ``j1 = floor((b + w) / d)`` (clamped, which accounts for
        clipping), each of width ``d``; the error is ``density · ∫ t² dt`` over the distance ``t`` to
        each destination bin's centre: a partial first bin, ``j1 - j0 - 1`` full bins, a partial
        last bin (when ``j0 == j1`` the three terms combine to the single interval).
        """
        bin_width = (self.max_val.item() - self.min_val.item()) / self.bins
        levels = 2 ** self.bits
        dst_width = bin_width * (end - start + 1) / levels
        if dst_width == 0.0:
            return 0.0
        src_begin = (torch.arange(self.bins) - start) * bin_width
        src_end = src_begin + bin_width
        dst_first = torch.div(src_begin, dst_width, rounding_mode="floor").clamp(0, levels - 1)
        dst_last = torch.div(src_end, dst_width, rounding_mode="floor").clamp(0, levels - 1)
        density = self.histogram / bin_width

        def integral(t0, t1):  # density · ∫_{t0}^{t1} t² dt
            return density * ((t1 * t1 * t1 - t0 * t0 * t0) / 3)

        half = dst_width / 2
        first = integral(src_begin - (dst_first + 0.5) * dst_width, torch.ones(self.bins) * half)
        middle = (dst_last - dst_first - 1) * integral(torch.tensor(-half), torch.tensor(half))
        last = integral(torch.tensor(-half), src_end - (dst_last * dst_width + half))
        return (first + middle + last).sum().item()

    def _bin_centres(self) -> torch.Tensor:
        width = (self.max_val - self.min_val) / self.bins
        return self.min_val + width * (torch.arange(self.bins, dtype=torch.float32) + 0.5)

    def extra_repr(self) -> str:
        return f"bins={self.bins}, " + super().extra_repr()


def _f32(value: float) -> float:
    """Round a Python float to float32 (what torch does to a scalar compared with a float32 tensor)."""
    return float(np.float32(value))


@register_observer("percentile")
class PercentileObserver(HistogramObserver):
    """Clip the tails: ``lo`` = the ``(100 - p)``-th and ``hi`` = the ``p``-th percentile of all values
    seen (read off the running histogram, linear inside a bin). ``percentile`` in (50, 100].
    Explained in notebooks/03_post_training_quantization.ipynb.
    """

    def __init__(self, percentile: float = 99.99, bins: int = 2048, bits: int = 8,
                 symmetric: bool = False, signed: bool = False):
        super().__init__(bins, bits, symmetric, signed)
        self.percentile = require_float("percentile", percentile, 50.0, 100.0, low_open=True)

    def _quantile(self, q: float) -> torch.Tensor:
        cdf = torch.cumsum(self.histogram.double(), 0) / self.histogram.sum().double()
        i = int(torch.searchsorted(cdf, torch.tensor([q], dtype=torch.float64)).clamp(max=self.bins - 1))
        below = cdf[i - 1].item() if i > 0 else 0.0
        inside = cdf[i].item() - below
        frac = 0.0 if inside <= 0 else min(max((q - below) / inside, 0.0), 1.0)
        width = (self.max_val - self.min_val) / self.bins
        return (self.min_val + width * (i + frac)).float()

    def range(self) -> tuple[torch.Tensor, torch.Tensor]:
        p = self.percentile / 100.0
        return self._quantile(1.0 - p), self._quantile(p)


@register_observer("mse")
class MSEObserver(HistogramObserver):
    """Search ``[α·min, α·max]`` for ``α`` in ``1/n, 2/n, ..., 1`` (``n = steps``) and keep the range
    with the smallest expected squared error ``Σ_i h_i (c_i - fq(c_i))²`` over the histogram's bin
    centres ``c_i`` (clipping error included). Explained in notebooks/03_post_training_quantization.ipynb.
    """

    def __init__(self, steps: int = 100, bins: int = 2048, bits: int = 8, symmetric: bool = False,
                 signed: bool = False):
        super().__init__(bins, bits, symmetric, signed)
        self.steps = require_int("steps", steps, 1, 10_000)

    def range(self) -> tuple[torch.Tensor, torch.Tensor]:
        centres, counts = self._bin_centres(), self.histogram
        best, best_range = math.inf, (self.min_val, self.max_val)
        for k in range(1, self.steps + 1):
            lo, hi = self.min_val * (k / self.steps), self.max_val * (k / self.steps)
            qp = qparams_from_range(lo, hi, self.bits, self.symmetric, self.signed)
            error = torch.sum(counts * (centres - fake_quantize(centres, qp)) ** 2).item()
            if error < best:
                best, best_range = error, (lo, hi)
        return best_range


@register_observer("entropy")
class EntropyObserver(HistogramObserver):
    """TensorRT's entropy calibration (Migacz, "8-bit Inference with TensorRT", 2017): histogram
    ``|x|`` over ``[0, max|x|]`` and choose the threshold ``T`` = edge of bin ``i`` that minimises
    ``KL(P ‖ Q)``. ``P`` is the histogram cut after ``i`` bins with the clipped tail added to its last
    bin; ``Q`` merges those ``i`` bins into as many chunks as there are levels on one side
    (``2^(b-1)`` if the data has negative values, else ``2^b``) and spreads each chunk's mass evenly
    back over its non-empty bins. ``i`` runs from ``max(start_bin, levels)`` to ``bins`` (below
    ``levels`` bins nothing is merged, ``Q = P`` except for the clipped tail, and a spike in the
    histogram can fake a tiny divergence); ties go to the larger ``T``. As in NVIDIA's calibrator, bin 0 gets bin 1's count first: otherwise the spike of
    exact zeros that ReLU leaves would dominate the divergence and drag ``T`` towards 0.
    Range: ``[-T, T]``, or ``[0, T]`` for non-negative data. Pitfall: a histogram with tall spikes
    (a convolution over a constant background outputs the same value many times) can make cutting
    just after a spike look cheap; check the accuracy, or prefer the MSE or percentile observer.
    Explained in notebooks/03_post_training_quantization.ipynb.
    """

    def __init__(self, bins: int = 2048, bits: int = 8, symmetric: bool = False, signed: bool = False,
                 start_bin: int = 128):
        super().__init__(bins, bits, symmetric, signed)
        self.start_bin = require_int("start_bin", start_bin, 1, None)
        self.register_buffer("signed_min", torch.tensor(math.inf))

    def _transform(self, x: torch.Tensor) -> torch.Tensor:
        self.signed_min = torch.minimum(self.signed_min, x.min())
        return x.abs()

    def _batch_range(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.zeros(()), x.max()  # the histogram of |x| always starts at 0

    def kl_curve(self) -> tuple[np.ndarray, np.ndarray]:
        """The search that ``range`` runs, as data: ``(thresholds, kl)``, two float64 arrays ``[n]``
        with ``kl[k] = KL(P ‖ Q)`` for the candidate threshold ``thresholds[k]`` (the edges of bins
        ``max(start_bin, levels) … bins``; ``inf`` where ``P`` has mass that ``Q`` lacks), computed on
        the histogram with bin 0 replaced by bin 1. Explained in notebooks/03_post_training_quantization.ipynb.
        """
        levels = 2 ** (self.bits - 1) if bool(self.signed_min < 0) else 2 ** self.bits
        hist = self.histogram.double().numpy().copy()  # bins over [0, max|x|]
        if len(hist) > 1:
            hist[0] = hist[1]
        first = min(max(self.start_bin, levels), self.bins)
        kl = _kl_per_threshold(hist, levels, first)  # kl[k]: threshold after first + k bins
        return np.arange(first, self.bins + 1) * (self.max_val.item() / self.bins), kl

    def range(self) -> tuple[torch.Tensor, torch.Tensor]:
        thresholds, kl = self.kl_curve()
        best_k = len(kl) - 1
        if np.isfinite(kl).any():
            # ties go to the larger T; "tie" allows for the last-digit noise of the prefix sums
            best = kl.min()
            best_k = int(np.flatnonzero(kl <= best + 1e-9 * max(1.0, abs(best)))[-1])
        t = torch.tensor(thresholds[best_k], dtype=torch.float32)
        return (-t if bool(self.signed_min < 0) else torch.zeros(())), t


def _kl_after_merge(head: np.ndarray, clipped: float, levels: int) -> float:
    """KL(P‖Q) for the threshold after ``len(head)`` bins (see ``EntropyObserver``), written out for
    one threshold as the definition reads. ``range`` uses ``_kl_per_threshold``, which computes the
    same numbers for every threshold at once (the tests check that the two agree)."""
    i = len(head)
    p = head.copy()
    p[-1] += clipped
    nonzero = head != 0
    chunk = np.digitize(np.arange(i), np.linspace(0, i, levels + 1)) - 1  # bin j → chunk floor(j·levels/i)
    mass = np.bincount(chunk, weights=head, minlength=levels)
    count = np.bincount(chunk, weights=nonzero, minlength=levels)
    q = np.where(nonzero, mass[chunk] / np.maximum(count[chunk], 1), 0.0)
    if p.sum() == 0 or q.sum() == 0:
        return math.inf
    p, q = p / p.sum(), q / q.sum()
    support = p > 0
    if np.any(q[support] == 0):  # P puts mass where Q has none: infinite divergence
        return math.inf
    return float(np.sum(p[support] * np.log(p[support] / q[support])))


def _kl_per_threshold(hist: np.ndarray, levels: int, first: int) -> np.ndarray:
    """``_kl_after_merge(hist[:i], hist[i:].sum(), levels)`` for every ``i`` in ``first..len(hist)``,
    as one array, from prefix sums instead of a Python loop over ~2 000 thresholds (a widget redraws
    in milliseconds instead of a second).

    With ``h`` the histogram, ``q_j = mass_c / count_c`` for bin ``j`` of chunk ``c`` (its non-empty
    bins), ``P = Σ p = h.sum()`` (the tail is folded into the last bin) and ``Q = Σ q = Σ_{j<i} h_j``:
    ``KL = (1/P) Σ_j p_j log(p_j / q_j) + log(Q / P)``, and for the unclipped bins
    ``Σ_j h_j log(h_j / q_j) = Σ_j h_j log h_j − Σ_c mass_c log(mass_c / count_c)``. Chunk ``c`` of
    threshold ``i`` covers bins ``[⌈c·i/L⌉, ⌈(c+1)·i/L⌉)``, i.e. bin ``j`` lies in chunk ``⌊j·L/i⌋``.
    """
    i = np.arange(first, len(hist) + 1)                      # [n] candidate thresholds
    nonzero = hist > 0
    prefix = lambda v: np.concatenate([[0.0], np.cumsum(v)])  # prefix(v)[j] = Σ_{k<j} v_k
    mass_below, count_below = prefix(hist), prefix(nonzero)
    hlogh_below = prefix(np.where(nonzero, hist * np.log(np.where(nonzero, hist, 1.0)), 0.0))
    edges = -((-np.arange(levels + 1)[None, :] * i[:, None]) // levels)   # [n, L+1] = ⌈c·i/L⌉
    mass = mass_below[edges[:, 1:]] - mass_below[edges[:, :-1]]            # [n, L]
    count = count_below[edges[:, 1:]] - count_below[edges[:, :-1]]
    safe_mass = np.where(mass > 0, mass, 1.0)
    head = hlogh_below[i] - np.sum(np.where(mass > 0, mass * np.log(safe_mass / np.maximum(count, 1)), 0.0), 1)
    # the last bin of the head also receives the clipped tail
    total, last = mass_below[-1], i - 1
    tail, h_last = total - mass_below[i], hist[last]
    rows = np.arange(len(i))
    chunk = (last * levels) // i
    q_last = safe_mass[rows, chunk] / np.maximum(count[rows, chunk], 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        before = np.where(h_last > 0, h_last * np.log(h_last / q_last), 0.0)
        after = np.where(h_last + tail > 0, (h_last + tail) * np.log((h_last + tail) / q_last), 0.0)
        kl = (head - before + after) / total + np.log(mass_below[i] / total)
    infinite = (h_last == 0) & (tail > 0) | (mass_below[i] == 0) | (total == 0)  # P where Q is 0
    return np.where(infinite, math.inf, kl)


def make_observer(name: str, bits: int = 8, symmetric: bool = False, signed: bool = False, **kwargs) -> Observer:
    """Build an observer by name (one of ``OBSERVERS``: minmax, moving_average, histogram,
    percentile, mse, entropy); ``kwargs`` go to its constructor. Explained in notebooks/03_post_training_quantization.ipynb."""
    require_choice("observer", name, tuple(OBSERVERS))
    return OBSERVERS[name](bits=bits, symmetric=symmetric, signed=signed, **kwargs)


_register_saving(PerChannelMinMaxObserver)  # saveable, but not a name of its own (minmax, granularity='channel')
