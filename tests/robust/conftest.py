"""Shared fixtures for the labkit.robust tests: digits (1,438 / 359 real images) and the shipped digits
LeNet-300-100, so attacks are measured on a real trained model in well under a second."""
from __future__ import annotations

import pytest

from labkit import data, zoo


@pytest.fixture(scope="session")
def digits():
    """``(train, test)`` TensorDatasets of digits at 28×28."""
    return data.load("digits", "train"), data.load("digits", "test")


@pytest.fixture()
def lenet300():
    """A fresh copy of the shipped digits LeNet-300-100 (eval mode)."""
    return zoo.pretrained("lenet300", "digits", train_if_missing=False, progress=False)
