"""Shared fixtures for the labkit.quant tests: a tiny, seeded classification task and an MLP
trained on it once per session (a few seconds), so PTQ / QAT / mixed-precision tests measure real
accuracy without downloading anything."""
from __future__ import annotations

import pytest
import torch
from torch import nn


def _blobs(n: int, seed: int, noise: float = 0.6):
    """10 classes of noisy 8×8 'images' in [0, 1] around fixed random centres (x [n,1,8,8], y [n])."""
    centres = torch.rand(10, 64, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 10, (n,), generator=g)
    x = (centres[y] + noise * torch.randn(n, 64, generator=g)).clamp(0, 1).reshape(n, 1, 8, 8)
    return x, y


@pytest.fixture(scope="session")
def blobs():
    """``{"train": (x, y), "test": (x, y)}`` with 2000 samples each."""
    return {"train": _blobs(2000, 1), "test": _blobs(2000, 2)}


def make_mlp() -> nn.Sequential:
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(),
                         nn.Linear(32, 10))


@pytest.fixture(scope="session")
def trained_mlp(blobs):
    """A 64-64-32-10 MLP trained for 6 epochs (≈ 92 % test accuracy); treat as read-only."""
    from labkit.train import fit, set_seed

    set_seed(0)
    model = make_mlp()
    fit(model, blobs["train"], epochs=6, lr=3e-3, batch_size=100, progress=False)
    return model.eval()
