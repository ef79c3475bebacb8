"""Knowledge distillation: a small student learns from a large, frozen teacher.

- ``losses``   response-based losses (soft targets at temperature T, KD = T²·KL with batchmean,
               Hinton's α-mix with cross-entropy, the high-T logit-matching limit); chapter 12 adds
               the feature-based ones (FitNets hints, attention transfer, relational KD).
- ``trainer``  ``distill``: the training loop with the teacher in eval mode under no_grad, its
               logits cached once; ``teacher_logits``.
- ``students`` ``MLPStudent``: a narrow MLP whose widths are an argument.

Import direction: ``distill`` uses ``data``, ``models``, ``train``, ``measure`` and ``validate`` only.
Explained in notebooks/11_distillation_soft_labels.ipynb.
"""
from labkit.distill.losses import (RESPONSE_LOSSES, distillation_loss, kd_logit_gradient, kd_loss,
                                   logit_matching_loss, soft_targets)
from labkit.distill.students import MLPStudent
from labkit.distill.trainer import distill, teacher_logits

__all__ = ["MLPStudent", "RESPONSE_LOSSES", "distill", "distillation_loss", "kd_logit_gradient", "kd_loss",
           "logit_matching_loss", "soft_targets", "teacher_logits"]
