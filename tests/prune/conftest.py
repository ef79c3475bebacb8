"""Shared fixtures for the labkit.prune tests: a small conv + linear model, a toy task."""
from __future__ import annotations

import pytest
import torch
from torch import nn


def make_model(seed: int = 0) -> nn.Sequential:
    """conv(1→4, 3×3) → ReLU → flatten → fc(144→32) → ReLU → fc(32→10), on 1×8×8 inputs."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 32), nn.ReLU(),
                         nn.Linear(32, 10))


@pytest.fixture
def model():
    return make_model()


@pytest.fixture
def model_factory():
    """``model_factory(seed)`` builds a fresh ``make_model(seed)`` (tests import no conftest module)."""
    return make_model


@pytest.fixture(scope="session")
def blobs():
    """10 classes of noisy 8×8 images around fixed random centres: ``(x [600,1,8,8], y [600])``."""
    centres = torch.rand(10, 64, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(1)
    y = torch.randint(0, 10, (600,), generator=g)
    x = (centres[y] + 0.5 * torch.randn(600, 64, generator=g)).clamp(0, 1).reshape(600, 1, 8, 8)
    return x, y
