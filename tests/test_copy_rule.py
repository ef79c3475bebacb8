"""CONTRIBUTING.md's one rule for passing models (issue 10): a function that returns a model returns a new one
and leaves its argument exactly as it was — weights, buffers, module types and train/eval mode."""
import pytest
import torch

from labkit import data, lowrank, models, prune, robust, train
from labkit.quant import binary, mixed, ptq, qat


def snapshot(model):
    return ({k: v.clone() for k, v in model.state_dict().items()},
            [type(m).__name__ for m in model.modules()], model.training)


def same(model, before):
    state, types, training = before
    after = model.state_dict()
    assert list(after) == list(state) and all(torch.equal(after[k], state[k]) for k in state)
    assert [type(m).__name__ for m in model.modules()] == types and model.training == training


@pytest.fixture(scope="module")
def calib():
    x, y = data.load("digits", "train").tensors
    return x[:64], y[:64]


def vgg():
    train.set_seed(0)
    return models.build("vgg").train()


CONVERSIONS = {
    "fold_batchnorm": lambda m, d: ptq.fold_batchnorm(m),
    "quantize_static": lambda m, d: ptq.quantize_static(m, d, num_batches=1, batch_size=32),
    "quantize_dynamic": lambda m, d: ptq.quantize_dynamic(m),
    "prepare_qat": lambda m, d: qat.prepare_qat(m),
    "convert": lambda m, d: qat.convert(m),
    "apply_bit_allocation": lambda m, d: mixed.apply_bit_allocation(m, {"fc2": 4}),
    "binarize_model": lambda m, d: binary.binarize_model(m, "xnor"),
    "structured_prune": lambda m, d: prune.structured_prune(m, 0.5)[0],
    "factorised_copy": lambda m, d: lowrank.factorised_copy(m, energy=0.9)[0],
    "straight_through_twin": lambda m, d: robust.straight_through_twin(m),
}


@pytest.mark.parametrize("name", sorted(CONVERSIONS))
def test_a_conversion_returns_a_new_model_and_leaves_its_argument_unchanged(name, calib):
    model = vgg()
    if name == "convert":
        model = qat.prepare_qat(model)
    if name == "straight_through_twin":
        model = ptq.quantize_static(model.eval(), calib, num_batches=1, batch_size=32)
    model(calib[0][:2])         # a forward pass first: BN statistics and observers hold data
    before = snapshot(model)
    result = CONVERSIONS[name](model, calib)
    assert result is not model
    same(model, before)


def test_an_edit_changes_the_model_in_place_and_returns_what_it_measured():
    model = vgg().eval()
    masks = prune.global_prune(model, 0.5)
    assert isinstance(masks, dict) and prune.sparsity(model)["global"] == pytest.approx(0.5, abs=0.01)
