"""Robustness of compressed models: adversarial attacks, the fake-quantized twin, adversarial fine-tuning,
and distribution shift.

- ``attacks``      FGSM and PGD under an L∞ budget, robust accuracy, transfer between models, and the
                   refusal to attack models whose gradient is masked by rounding
- ``twin``         ``straight_through_twin``: a quantized model's twin with straight-through gradients
- ``adversarial``  ``adversarial_finetune``: a short adversarial fine-tuning (Goodfellow's mixed loss)
- ``shift``        corrupted / shifted images and out-of-distribution scores (max softmax, AUROC)
- ``variants``     the compressed versions of one model that the chapter compares (one per method)

Import direction: ``robust`` uses ``train``, ``stats``, ``quant``, ``prune``, ``distill``, ``lowrank`` and ``validate``.
Explained in notebooks/15_robustness_faq_trends.ipynb.
"""
from labkit.robust.attacks import (ATTACKS, adversarial_examples, check_attackable, check_eps, fgsm, input_gradient,
                                   pgd, robust_correct)
from labkit.robust.adversarial import adversarial_finetune
from labkit.robust.shift import CORRUPTIONS, auroc, corrupt, corrupted, max_softmax, paired_auroc_difference
from labkit.robust.twin import StraightThroughQuantized, straight_through_twin
from labkit.robust.variants import VARIANTS, attack_view, compressed_variants, training_subset

__all__ = ["ATTACKS", "CORRUPTIONS", "StraightThroughQuantized", "VARIANTS", "adversarial_examples",
           "adversarial_finetune", "attack_view", "auroc", "check_attackable", "check_eps", "compressed_variants",
           "corrupt", "corrupted", "fgsm", "input_gradient", "max_softmax", "paired_auroc_difference", "pgd",
           "robust_correct", "straight_through_twin", "training_subset"]
