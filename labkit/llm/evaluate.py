"""Perplexity with an honest interval, and paired comparisons of two models on the same text.

The held-out ids are cut into non-overlapping windows of ``context + 1`` ids; in each the model predicts
the last ``context`` ids from the ones before. A window's mean negative log-likelihood (nats/char)
``ℓ_w`` is one observation; tokens inside a window are correlated, windows far less, so the interval is
a Student-t interval over windows (``labkit.stats.seed_interval``) of the mean NLL, mapped through
``exp``::

    PPL = exp(mean_w ℓ_w),      95 % interval = exp(mean ± t·std/√W)

Two models on the *same* windows are compared by the per-window differences ``ℓ_w(B) − ℓ_w(A)``:
the ratio ``PPL_B / PPL_A = exp(mean difference)`` with its paired interval, far tighter than two
separate intervals. ``resolved`` is True when the ratio's interval excludes 1.

Explained in notebooks/16_transformer_compression.ipynb
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from labkit.llm.model import TinyGPT
from labkit.stats import seed_interval
from labkit.validate import require_int


@dataclass(frozen=True)
class Perplexity:
    """``value`` with its 95 % interval ``[low, high]`` over ``windows`` windows (also used for ratios)."""

    value: float
    low: float
    high: float
    windows: int

    @property
    def resolved(self) -> bool:
        """For a ratio: True when the interval excludes 1."""
        return self.low > 1 or self.high < 1

    def __str__(self) -> str:
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}]"


def eval_windows(ids: torch.Tensor, context: int, max_windows: int | None = None) -> torch.Tensor:
    """Non-overlapping windows int64 ``[W, context + 1]`` from the start of ``ids`` (at most ``max_windows``)."""
    context = require_int("context", context, 1, None)
    count = (len(ids) - 1) // context
    if max_windows is not None:
        count = min(count, require_int("max_windows", max_windows, 2, None))
    if count < 2:
        raise ValueError(f"ids must hold at least 2 windows of {context + 1} ids, got {len(ids)} ids")
    starts = torch.arange(count) * context
    return torch.stack([ids[s:s + context + 1] for s in starts.tolist()])


@torch.no_grad()
def window_nll(model: TinyGPT, windows: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Mean next-id negative log-likelihood (nats) of each window ``[W, T+1]`` → float64 ``[W]``."""
    model.eval()
    out = []
    for chunk in windows.split(batch_size):
        logits = model(chunk[:, :-1])
        nll = F.cross_entropy(logits.transpose(1, 2), chunk[:, 1:], reduction="none")
        out.append(nll.double().mean(1))
    return torch.cat(out)


def perplexity(nll: torch.Tensor) -> Perplexity:
    """``exp`` of the mean window NLL with its Student-t interval over windows."""
    est = seed_interval(nll.tolist())
    return Perplexity(math.exp(est.value), math.exp(est.low), math.exp(est.high), est.n)


def perplexity_ratio(nll_a: torch.Tensor, nll_b: torch.Tensor) -> Perplexity:
    """``PPL_B / PPL_A`` on the same windows with its paired interval (``resolved``: excludes 1)."""
    if nll_a.shape != nll_b.shape:
        raise ValueError(f"nll_a and nll_b must come from the same windows, got {tuple(nll_a.shape)} and {tuple(nll_b.shape)}")
    return perplexity(nll_b - nll_a)
