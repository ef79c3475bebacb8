"""Shared fixtures for the labkit.pipeline tests: the digits dataset and its shipped zoo models."""
from __future__ import annotations

import pytest

from labkit import data, zoo


@pytest.fixture(scope="session")
def digits_train():
    return data.load("digits", "train")


@pytest.fixture(scope="session")
def digits_test():
    return data.load("digits", "test")


@pytest.fixture
def lenet300():
    return zoo.pretrained("lenet300", "digits", progress=False)


@pytest.fixture
def lenet5():
    return zoo.pretrained("lenet5", "digits", progress=False)
