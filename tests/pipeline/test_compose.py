"""Pipelines: steps validated, orders that cannot compose refused with the reason, runs measured."""
from __future__ import annotations

import copy

import pytest
import torch

from labkit import distill, prune
from labkit.pipeline.compose import Pipeline, PipelineOrderError
from labkit.pipeline.steps import STEPS, make_step

TUNE = ("finetune", {"epochs": 1, "train_size": 512})


def test_unknown_steps_and_settings_are_named():
    with pytest.raises(ValueError, match="unknown step 'prnue'; the steps are prune, structured"):
        Pipeline([("prnue", {})])
    with pytest.raises(ValueError, match="no setting 'amnt'; its settings are amount, criterion, scope"):
        make_step("prune", amnt=0.5)
    with pytest.raises(TypeError, match=r"steps\[0\]"):
        Pipeline([42])


@pytest.mark.parametrize("name, settings, message", [
    ("prune", {"amount": 1.0}, r"amount must be a finite number in \[0.0, 1.0\)"),
    ("prune", {"criterion": "taylor"}, "criterion must be one of"),
    ("structured", {"amount": -0.1}, "amount"),
    ("lowrank", {"energy": 0.0}, r"energy must be a finite number in \(0.0, 1.0\]"),
    ("finetune", {"epochs": 0}, r"epochs must be an integer in \[1, 100\]"),
    ("distill", {"T": 0}, "T must be"),
    ("distill", {"alpha": 1.5}, "alpha"),
    ("ptq", {"weight_bits": 1}, r"weight_bits must be an integer in \[2, 8\]"),
    ("qat", {"quantizer": "magic"}, "quantizer must be one of"),
    ("kmeans", {"bits": 9}, r"bits must be an integer in \[1, 8\]"),
    ("kmeans", {"bits": {"fc": 4}}, "keys 'conv' and 'linear'"),
    ("integer", {"calib_size": 0}, "calib_size"),
])
def test_out_of_range_settings(name, settings, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make_step(name, **settings)



def test_ptq_step_takes_every_registered_observer():
    from labkit.quant import observers
    assert make_step("ptq", observer="moving_average").observer == "moving_average"    # was refused
    with pytest.raises(ValueError, match="observer must be one of 'minmax', 'moving_average', 'histogram'"):
        make_step("ptq", observer="kl")

    @observers.register_observer("test_absmax_for_ptq")
    class AbsMax(observers.MinMaxObserver):
        pass
    try:
        assert make_step("ptq", observer="test_absmax_for_ptq").observer == "test_absmax_for_ptq"
    finally:
        del observers.OBSERVERS["test_absmax_for_ptq"]

@pytest.mark.parametrize("steps, position, reason", [
    (["ptq", "finetune"], 2, "a converted model holds integer codes"),
    (["integer", "distill"], 2, "seed 000 §4 fine-tunes after int8 conversion"),
    (["ptq", "prune"], 2, "prune before quantizing"),
    (["prune", "lowrank"], 2, "factors of a pruned matrix are dense"),
    (["prune", "structured"], 2, "would drop the pruning masks"),
    (["kmeans", "ptq"], 2, "already shared"),
    (["qat", "finetune", "ptq"], 3, "already qat"),
    (["qat"], 1, "not followed by a finetune or distill"),
    (["ptq", "integer"], 2, "already quantized"),
])
def test_orders_that_cannot_compose_are_refused_before_anything_runs(steps, position, reason):
    with pytest.raises(PipelineOrderError, match=reason) as info:
        Pipeline(steps)
    assert f"step {position} " in str(info.value)


def test_every_step_has_a_home_and_a_readable_spec():
    pipe = Pipeline([("prune", {"amount": 0.8}), TUNE, ("kmeans", {"bits": {"conv": 8, "linear": 5}}), TUNE])
    assert pipe.spec()[2] == ["kmeans", {"bits": {"conv": 8, "linear": 5}}]
    assert Pipeline.from_spec(pipe.spec()).spec() == pipe.spec()
    assert pipe.final_stage == "shared"
    assert set(STEPS) == {"prune", "structured", "lowrank", "finetune", "distill", "ptq", "qat", "kmeans", "integer"}


def test_prune_finetune_ptq_is_measured_honestly(lenet300, digits_train, digits_test):
    pipe = Pipeline([("prune", {"amount": 0.9}), TUNE, ("ptq", {"weight_bits": 4})])
    r = pipe.run(lenet300, train_data=digits_train, test_data=digits_test, measure_steps=True, latency_batch=32)
    assert r.stage == "quantized" and r.runtime == "torch (simulated integers)"
    assert r.accuracy.n == len(digits_test) and r.accuracy.low <= r.accuracy.value <= r.accuracy.high
    assert r.correct.shape == (len(digits_test),) and abs(r.correct.float().mean() - r.accuracy.value) < 1e-6
    assert r.macs == 784 * 300 + 300 * 100 + 100 * 10
    assert r.nonzero_macs == pytest.approx(0.1 * r.macs, rel=0.01)            # 90 % of the weights are zero
    assert r.ratio > 25                                                         # 4-bit codes of 10 % of the weights
    assert [row["stage"] for row in r.rows] == ["float", "float", "float", "quantized"]
    assert r.rows[1]["bytes"] < r.rows[0]["bytes"] and r.rows[-1]["bytes"] == r.bytes
    assert all(row["getsizeof"] < 100 for row in r.rows)                         # the Python wrapper, not the model
    assert r.latency["median_ms"] > 0
    # the teacher / input model is untouched
    assert not any(prune.is_pruned(m) for m in lenet300.modules())


def test_qat_keeps_the_zeros_of_pruning_through_training(lenet300, digits_train, digits_test):
    pipe = Pipeline([("qat", {"weight_bits": 4}), TUNE, ("prune", {"amount": 0.8}), TUNE,
                     ("distill", {"epochs": 1, "train_size": 512})])
    r = pipe.run(lenet300, train_data=digits_train, test_data=digits_test, latency_batch=None)
    codes = torch.cat([m.weight_codes.reshape(-1) for m in r.model.modules() if hasattr(m, "weight_codes")])
    assert r.stage == "quantized"
    assert (codes == 0).float().mean() >= 0.8                                   # still ≥ 80 % zeros after training
    assert r.accuracy.value > 0.8


def test_distill_after_step_keeps_masked_weights_at_zero(lenet300, digits_train):
    student = lenet300
    masks = prune.global_prune(student, 0.7)
    prune.remove_all(student)

    @torch.no_grad()
    def keep(model):
        for name, mask in masks.items():
            model.get_submodule(name).weight.mul_(mask)

    distill.distill(student, copy.deepcopy(student), digits_train, epochs=1, progress=False,
                    after_step=keep)
    assert prune.sparsity(student)["global"] >= 0.7
    with pytest.raises(TypeError, match="after_step"):
        distill.distill(student, None, digits_train, cached_logits=torch.zeros(len(digits_train), 10),
                        after_step=3)


def test_structured_then_integer_runs_on_the_int8_kernels(lenet300, digits_train, digits_test):
    r = Pipeline([("structured", {"amount": 0.5}), TUNE, "integer"]).run(
        lenet300, train_data=digits_train, test_data=digits_test, latency_batch=16)
    assert r.stage == "integer" and r.runtime == "labkit int8 kernels"
    assert r.macs == 784 * 150 + 150 * 50 + 50 * 10                            # half the neurons of each hidden layer
    assert r.accuracy.value > 0.8 and r.latency["median_ms"] > 0


def test_a_run_refuses_a_model_that_is_not_a_module(digits_train, digits_test):
    with pytest.raises(TypeError, match="model must be a float torch.nn.Module"):
        Pipeline(["finetune"]).run("lenet300", train_data=digits_train, test_data=digits_test)
