"""Knowledge distillation: a small student learns from a large, frozen teacher.

- ``losses``   response-based losses (soft targets at temperature T, KD = T²·KL with batchmean,
               Hinton's α-mix with cross-entropy, the high-T logit-matching limit); chapter 12 adds
               the feature-based ones (FitNets hints, attention transfer, relational KD).
- ``trainer``  ``distill``: the training loop with the teacher in eval mode under no_grad, its
               logits cached once; ``teacher_logits``; ``feature_distill`` adds hint, attention and
               relational terms (chapter 12).
- ``features`` ``FeatureTap`` (forward hooks on named layers), ``Regressor`` (FitNets' 1×1 conv /
               linear adapter), ``layer_features`` (a teacher's activations, computed once).
- ``students`` ``MLPStudent``: a narrow MLP whose widths are an argument.
- ``transfer`` transfer sets: ``random_subset`` (a few labelled images), ``split_labelled`` (a few
               labels per class and the rest of the images without labels).
- ``augment``  torchvision augmentation: ``jitter``, ``random_affine``, ``augmented_copies`` (a fixed,
               seeded set the teacher labels once), ``AugmentedDataset`` (fresh on every read).

Import direction: ``distill`` uses ``data``, ``models``, ``train``, ``measure`` and ``validate`` only.
Explained in notebooks/11_distillation_soft_labels.ipynb and notebooks/12_distillation_features.ipynb.
"""
from labkit.distill.augment import AugmentedDataset, augmented_copies, jitter, random_affine
from labkit.distill.features import FeatureTap, Regressor, layer_features, regressor_for
from labkit.distill.losses import (FEATURE_LOSSES, RESPONSE_LOSSES, attention_map, attention_transfer_loss,
                                   distillation_loss, hint_loss, kd_logit_gradient, kd_loss, logit_matching_loss,
                                   normalized_attention, rkd_angle_loss, rkd_angle_matrix, rkd_distance_loss,
                                   rkd_distance_matrix, soft_targets)
from labkit.distill.students import MLPStudent
from labkit.distill.trainer import distill, feature_distill, teacher_logits
from labkit.distill.transfer import random_subset, split_labelled

__all__ = ["AugmentedDataset", "FEATURE_LOSSES", "FeatureTap", "MLPStudent", "RESPONSE_LOSSES", "Regressor",
           "attention_map", "attention_transfer_loss", "augmented_copies", "distill", "distillation_loss",
           "feature_distill", "hint_loss", "jitter", "kd_logit_gradient", "kd_loss", "layer_features",
           "logit_matching_loss", "normalized_attention", "random_affine", "random_subset", "regressor_for",
           "rkd_angle_loss", "rkd_angle_matrix", "rkd_distance_loss", "rkd_distance_matrix", "soft_targets",
           "split_labelled", "teacher_logits"]
