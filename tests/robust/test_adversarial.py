"""Adversarial fine-tuning buys robust accuracy on a real model; bad arguments are named."""
from __future__ import annotations

import copy

import pytest

from labkit import quant, robust, train


def test_adversarial_finetuning_raises_robust_accuracy_against_plain_finetuning(lenet300, digits):
    train_set, test_set = digits
    control, hardened = copy.deepcopy(lenet300), copy.deepcopy(lenet300)
    train.fit(control, train_set, epochs=2, lr=1e-3, seed=0, progress=False)
    history = robust.adversarial_finetune(hardened, train_set, 0.1, epochs=2, seed=0)
    assert len(history) == 2 and not hardened.training
    robust_control = robust.robust_correct(control, test_set, 0.1).float().mean().item()
    robust_hardened = robust.robust_correct(hardened, test_set, 0.1).float().mean().item()
    assert robust_hardened > robust_control + 0.2
    assert train.evaluate(hardened, test_set) > 0.85


def test_eps_zero_with_mix_is_ordinary_training_and_seeds_repeat(lenet300, digits):
    a, b = copy.deepcopy(lenet300), copy.deepcopy(lenet300)
    ha = robust.adversarial_finetune(a, digits[0], 0.05, epochs=1, seed=1)
    hb = robust.adversarial_finetune(b, digits[0], 0.05, epochs=1, seed=1)
    assert ha == hb
    assert all((pa == pb).all() for pa, pb in zip(a.parameters(), b.parameters()))


def test_bad_arguments_are_refused(lenet300, digits):
    for kwargs, match in (({"mix": 1.5}, "mix"), ({"attack": "cw"}, "attack"), ({"steps": 0}, "steps"),
                          ({"epochs": 0}, "epochs"), ({"lr": 0.0}, "lr")):
        with pytest.raises(ValueError, match=match):
            robust.adversarial_finetune(lenet300, digits[0], 0.1, **kwargs)
    with pytest.raises(ValueError, match="eps"):
        robust.adversarial_finetune(lenet300, digits[0], -0.1)
    with pytest.raises(TypeError, match="rounds its activations"):
        robust.adversarial_finetune(quant.quantize_static(lenet300, digits[0].tensors[0][:64]), digits[0], 0.1)
