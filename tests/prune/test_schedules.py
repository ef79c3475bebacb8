"""Schedules (one-shot, iterative, AGP), fine-tuning with masks, and the sensitivity scan."""
import pytest
import torch

from labkit import prune, train


def test_agp_formula_values():
    # s_t = s_f + (s_i - s_f)(1 - t/n)^3 with s_i = 0, s_f = 0.9, n = 4
    expected = [0.9 * (1 - (1 - t / 4) ** 3) for t in range(5)]
    assert [prune.agp_sparsity(t, 4, 0.9) for t in range(5)] == pytest.approx(expected)
    assert expected[1:] == pytest.approx([0.5203125, 0.7875, 0.8859375, 0.9])
    assert prune.agp_sparsity(0, 10, 0.8, initial=0.2) == pytest.approx(0.2)
    assert prune.agp_sparsity(5, 10, 0.8, initial=0.2) == pytest.approx(0.8 - 0.6 * 0.125)
    assert prune.agp_sparsity(99, 10, 0.8) == 0.8                       # clipped at n
    assert prune.agp_schedule(0.9, 4) == pytest.approx(expected[1:])


def test_one_shot_and_iterative_schedules():
    assert prune.one_shot_schedule(0.9) == [0.9]
    assert prune.iterative_schedule(0.9, 3) == pytest.approx([0.3, 0.6, 0.9])
    steps = prune.agp_schedule(0.95, 6)
    increments = [b - a for a, b in zip([0.0] + steps, steps)]
    assert all(x > y for x, y in zip(increments, increments[1:]))          # cubic: big steps first


@pytest.mark.parametrize("call, match", [
    (lambda: prune.agp_sparsity(1, 0, 0.9), "n_steps must be an integer >= 1"),
    (lambda: prune.agp_sparsity(1, 4, 1.2), "final must be"),
    (lambda: prune.agp_sparsity(-1, 4, 0.5), "step must be"),
    (lambda: prune.agp_schedule(float("nan"), 3), "final must be a finite number"),
    (lambda: prune.iterative_schedule(0.5, 0), "rounds must be"),
    (lambda: prune.one_shot_schedule(-0.2), "final must be"),
])
def test_schedule_bad_inputs(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_finetuning_keeps_exactly_the_pruned_zeros(blobs, model_factory):
    """Adam updates every weight it sees; with the masks the zero count after training is exact."""
    model = model_factory(0)
    history = prune.prune_and_finetune(model, blobs, prune.iterative_schedule(0.8, 2), epochs_per_round=2,
                                       lr=3e-3, val_data=blobs)
    total = prune.sparsity(model)["total"]
    assert [h["target"] for h in history] == pytest.approx([0.4, 0.8])
    assert prune.sparsity(model)["zeros"] == round(0.8 * total)
    for module in prune.prunable_layers(model).values():               # orig is zero there too
        assert torch.all(module.weight_orig[module.weight_mask == 0] == 0)
    assert history[-1]["val_acc"] > 0.3                                # chance is 0.1
    prune.remove_all(model)
    assert prune.sparsity(model)["zeros"] == round(0.8 * total)


def test_without_masks_adam_revives_zeroed_weights(blobs, model_factory):
    """The seed's way — write zeros into .weight once — does not survive one epoch of Adam."""
    model = model_factory(0)
    prune.global_magnitude_prune(model, 0.8)
    prune.remove_all(model)                                             # plain weights with zeros
    zeros = prune.sparsity(model)["zeros"]
    train.fit(model, blobs, epochs=1, lr=3e-3, progress=False)
    assert prune.sparsity(model)["zeros"] < zeros // 2     # (dead ReLUs keep a few at 0)


def test_prune_and_finetune_bad_inputs(blobs, model_factory):
    model = model_factory(0)
    with pytest.raises(TypeError, match="schedule must be a list"):
        prune.prune_and_finetune(model, blobs, 0.9)
    with pytest.raises(ValueError, match="empty"):
        prune.prune_and_finetune(model, blobs, [])
    with pytest.raises(ValueError, match=r"schedule\[1\] must be"):
        prune.prune_and_finetune(model, blobs, [0.5, 1.5])
    with pytest.raises(TypeError, match="model must be"):
        prune.prune_and_finetune("model", blobs, [0.5])
    assert prune.sparsity(model)["zeros"] == 0                          # nothing happened half-way


def test_sensitivity_scan(blobs, model_factory):
    model = model_factory(0)
    train.fit(model, blobs, epochs=3, lr=3e-3, progress=False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    scan = prune.sensitivity_scan(model, blobs, sparsities=[0.0, 0.5, 1.0], layers=["3", "5"])
    assert set(scan["layers"]) == {"3", "5"} and scan["sparsities"] == [0.0, 0.5, 1.0]
    for accs in scan["layers"].values():
        assert accs[0] == pytest.approx(scan["baseline"]) and accs[2] < scan["baseline"] - 0.3
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())   # model untouched
    with pytest.raises(ValueError, match="unknown layer"):
        prune.sensitivity_scan(model, blobs, layers=["fc9"])
    with pytest.raises(ValueError, match=r"sparsities\[0\] must be"):
        prune.sensitivity_scan(model, blobs, sparsities=[1.1])
    with pytest.raises(TypeError, match="model must be"):
        prune.sensitivity_scan(None, blobs)
