"""compressed_variants: each variant is what its name says, made from the base without changing it."""
from __future__ import annotations

import pytest
import torch

from labkit import measure, prune, quant, robust
from labkit.quant import binary


@pytest.fixture(scope="module")
def variants():
    from labkit import data, zoo
    base = zoo.pretrained("lenet300", "digits", train_if_missing=False, progress=False)
    before = {k: v.clone() for k, v in base.state_dict().items()}
    out = robust.compressed_variants(base, data.load("digits", "train"), seed=0, finetune_images=640,
                                     student_epochs=1)
    assert all(torch.equal(before[k], v) for k, v in base.state_dict().items())   # base untouched
    return out


def test_every_variant_is_what_its_name_says(variants):
    assert list(variants) == list(robust.VARIANTS)
    base = variants["base"]
    assert prune.sparsity(variants["pruned 90 %"])["global"] == pytest.approx(0.9, abs=1e-3)
    structured = variants["structured 50 %"]
    assert (structured.fc1.out_features, structured.fc2.out_features) == (150, 50)
    assert isinstance(variants["int8 PTQ"].fc1, quant.QuantizedLinear)
    assert variants["int8 PTQ"].fc1.weight_qparams.bits == 8
    assert variants["4-bit QAT"].fc2.weight_qparams.bits == 4 and variants["4-bit QAT"].fc2.output_qparams.bits == 4
    levels = binary.weight_levels(variants["binary"], per_channel=True)
    assert levels and max(levels.values()) <= 2                        # ±α per output row
    assert measure.count_parameters(variants["distilled"]) == 784 * 100 + 100 + 100 * 10 + 10
    assert measure.count_parameters(variants["low-rank"]) < measure.count_parameters(base)
    assert all(not m.training for m in variants.values())


def test_attack_view_is_the_twin_only_for_models_that_round(variants):
    assert isinstance(robust.attack_view(variants["int8 PTQ"]).fc1, robust.StraightThroughQuantized)
    assert robust.attack_view(variants["pruned 90 %"]) is variants["pruned 90 %"]


def test_names_and_seeds_are_checked(lenet300, digits):
    with pytest.raises(ValueError, match="names"):
        robust.compressed_variants(lenet300, digits[0], names=["pruned 99 %"])
    with pytest.raises(ValueError, match="images"):
        robust.training_subset(digits[0], 10**6, 0)
    with pytest.raises(ValueError, match="seed"):
        robust.compressed_variants(lenet300, digits[0], seed=-1)
