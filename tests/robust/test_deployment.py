"""Deployment footprints counted by hand, and verdicts against the stated device budgets."""
from __future__ import annotations

import pytest

from labkit import deployment, measure, zoo


def test_peak_activations_by_hand():
    lenet300 = zoo.pretrained("lenet300", "digits", train_if_missing=False, progress=False)
    assert deployment.peak_activation_values(lenet300, (1, 28, 28)) == 784 + 300          # fc1
    lenet5 = zoo.pretrained("lenet5", "digits", train_if_missing=False, progress=False)
    # conv1 784 → 6·28·28 = 4704; pool1 4704 → 1176; conv2 1176 → 1600; pool2 1600 → 400; fc 400 → 120 ...
    assert deployment.peak_activation_values(lenet5, (1, 28, 28)) == 4704 + 1176           # pool1


def test_footprint_reads_the_bytes_on_disk_and_the_macs():
    lenet5 = zoo.pretrained("lenet5", "digits", train_if_missing=False, progress=False)
    row = deployment.footprint(lenet5, (1, 28, 28), "int8")
    assert row["weight_bytes"] == measure.size_on_disk(lenet5, "int8")
    assert row["macs"] == measure.total_macs(lenet5, (1, 28, 28))
    assert row["peak_activation_bytes"] == 5880                       # one byte per int8 activation
    assert deployment.footprint(lenet5, (1, 28, 28))["peak_activation_bytes"] == 4 * 5880


def test_verdicts_name_the_limit_that_is_broken():
    mcu, phone, server = deployment.DEVICES
    row = {"weight_bytes": 2 * mcu.storage_bytes, "macs": int(mcu.macs_per_second), "peak_activation_bytes": 1000}
    v = deployment.verdicts(row, latency_ms=20.0)
    assert v[mcu.name].startswith("no: weights 2.00× its storage") and "1000 ms > 100 ms" in v[mcu.name]
    assert v[phone.name] == "fits"
    assert v[server.name] == "no: 20 ms > 15 ms"
    small = {"weight_bytes": 1000, "macs": 1000, "peak_activation_bytes": 1000}
    assert set(deployment.verdicts(small, 1.0).values()) == {"fits"}


def test_every_device_states_its_source():
    for device in deployment.DEVICES:
        assert device.source and device.memory_bytes > 0


def test_bad_arguments_are_named():
    lenet300 = zoo.pretrained("lenet300", "digits", train_if_missing=False, progress=False)
    with pytest.raises(ValueError, match="fmt"):
        deployment.footprint(lenet300, (1, 28, 28), "int3")
    with pytest.raises(ValueError, match="activation_bytes"):
        deployment.footprint(lenet300, (1, 28, 28), activation_bytes=0)
    with pytest.raises(ValueError, match="latency_ms"):
        deployment.verdicts({"weight_bytes": 1, "macs": 1, "peak_activation_bytes": 1}, -1.0)
    with pytest.raises(ValueError, match="input_shape"):
        deployment.peak_activation_values(lenet300, (1, 0, 28))
