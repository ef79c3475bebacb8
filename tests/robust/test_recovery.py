"""recovery_curve: the checkpoints of one fine-tuning run after pruning, on every evaluation set."""
from __future__ import annotations

import copy

import pytest
import torch

from labkit import prune, train
from labkit.prune.recovery import recovery_curve


def test_step_zero_is_the_one_shot_pruned_model_and_fine_tuning_recovers(lenet300, digits):
    train_set, test_set = digits
    before = copy.deepcopy(lenet300.state_dict())
    curve = recovery_curve(lenet300, 0.95, train_set, {"test": test_set}, (0, 5, 20), seed=0)
    assert sorted(curve) == [0, 5, 20]
    one_shot = copy.deepcopy(lenet300)
    prune.global_magnitude_prune(one_shot, 0.95)
    assert torch.equal(curve[0]["test"], train.correct(one_shot, test_set))
    acc = {s: float(r["test"].float().mean()) for s, r in curve.items()}
    assert acc[20] > acc[0] + 0.05
    assert all(torch.equal(before[k], v) for k, v in lenet300.state_dict().items())


def test_checkpoints_lie_on_one_trajectory(lenet300, digits):
    long = recovery_curve(lenet300, 0.9, digits[0], {"t": digits[1]}, (3, 10), seed=1)
    short = recovery_curve(lenet300, 0.9, digits[0], {"t": digits[1]}, (3,), seed=1)
    assert torch.equal(long[3]["t"], short[3]["t"])
    several_epochs = recovery_curve(lenet300, 0.9, digits[0], {"t": digits[1]}, (30,), seed=1)  # 30·64 > 1,438
    assert sorted(several_epochs) == [30]


def test_bad_arguments_are_named(lenet300, digits):
    with pytest.raises(ValueError, match="amount"):
        recovery_curve(lenet300, 1.0, digits[0], {"t": digits[1]})
    with pytest.raises(ValueError, match="checkpoints"):
        recovery_curve(lenet300, 0.5, digits[0], {"t": digits[1]}, (-1, 5))
    with pytest.raises(ValueError, match="eval_sets"):
        recovery_curve(lenet300, 0.5, digits[0], {}, (0,))
