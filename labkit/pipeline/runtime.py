"""A model that is not a torch module — the integer-only model, an onnxruntime session — seen as one.

``labkit.measure.latency`` and ``compare_latency`` time ``nn.Module``s. ``RuntimeModule(fn)`` wraps any
callable ``fn(x: numpy float32 [N, C, H, W]) -> numpy logits`` so that the int8 kernels and onnxruntime
are timed with the same loop, in the same interleaved rounds, as torch's fp32 model: one table, ratios
measured side by side in one process.

Explained in notebooks/14_pipeline_tradeoffs_export.ipynb
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn

__all__ = ["RuntimeModule", "predict_logits"]


class RuntimeModule(nn.Module):
    """``forward(x)`` = ``torch.from_numpy(fn(x.numpy()))``; ``name`` says which runtime it is."""

    def __init__(self, fn: Callable, name: str = "runtime"):
        super().__init__()
        if not callable(fn):
            raise TypeError(f"fn must be callable fn(x) -> logits, got {type(fn).__name__}")
        self.fn, self.name = fn, name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.fn(x.detach().cpu().numpy())
        return torch.from_numpy(np.asarray(out))

    def extra_repr(self) -> str:
        return self.name


def predict_logits(model, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Logits ``[N, classes]`` (float64 for the integer model's int32 accumulators) of a torch module,
    an ``IntegerModel`` or any callable on numpy, ``batch_size`` images at a time."""
    outs = []
    for start in range(0, len(x), batch_size):
        batch = x[start:start + batch_size]
        if isinstance(model, nn.Module):
            with torch.no_grad():
                was = model.training
                model.eval()
                outs.append(model(batch).double())
                model.train(was)
        else:
            outs.append(torch.from_numpy(np.asarray(model(batch.numpy()), dtype=np.float64)))
    return torch.cat(outs)
