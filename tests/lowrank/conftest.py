"""Shared fixtures for the labkit.lowrank tests: one intra-op thread (the machine is shared)."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="package", autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
