"""Distillation losses: what the student is asked to match in the teacher.

Response-based (chapter 11, Hinton, Vinyals & Dean, "Distilling the Knowledge in a Neural Network",
2015): the student matches the teacher's *softened* class probabilities.

- ``soft_targets(logits, T)``      softmax(z / T), the teacher's "dark knowledge" made visible.
- ``kd_loss(s, t, T)``             T² · KL(softmax(t/T) ‖ softmax(s/T)), averaged over the batch.
- ``distillation_loss(...)``       α · kd_loss + (1 − α) · cross-entropy with the hard labels.
- ``kd_logit_gradient(s, t, T)``   the closed-form gradient of ``kd_loss`` w.r.t. the student logits.
- ``logit_matching_loss(s, t)``    the T → ∞ limit of ``kd_loss`` (Hinton §2.1; Bucila/Caruana).

Feature-based losses (FitNets hints, attention transfer, relational KD; chapter 12) go below the
response-based ones with the same conventions: plain functions ``(student_x, teacher_x, ...) ->
scalar tensor``, arguments checked at the top with the helpers of this module, the teacher's tensor
treated as a constant target (the trainer computes it under ``no_grad``), the batch mean taken
over samples only, so every loss can be mixed with cross-entropy by a weight.

Explained in notebooks/11_distillation_soft_labels.ipynb.
"""
from __future__ import annotations

import torch
from torch.nn import functional as F

from labkit.validate import require_float, require_float_tensor


# ----------------------------------------------------------------------------- argument checks
def check_temperature(T) -> float:
    """``T`` as a float in (0, inf); a zero or negative temperature has no softmax."""
    return require_float("T", T, 0.0, None, low_open=True)


def check_alpha(alpha) -> float:
    """``alpha`` as a float in [0, 1] (weight of the soft-label term)."""
    return require_float("alpha", alpha, 0.0, 1.0)


def check_logits(name: str, logits) -> torch.Tensor:
    """``logits`` must be a finite floating-point tensor ``[N, C]`` with N ≥ 1 and C ≥ 2."""
    require_float_tensor(name, logits)
    if logits.dim() != 2 or logits.shape[0] < 1 or logits.shape[1] < 2:
        raise ValueError(f"{name} must have shape [N, C] with N >= 1 samples and C >= 2 classes, "
                         f"got {tuple(logits.shape)}")
    return logits


def check_pair(student_logits, teacher_logits) -> None:
    """Both logits valid and of the same shape ``[N, C]``."""
    check_logits("student_logits", student_logits)
    check_logits("teacher_logits", teacher_logits)
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"student_logits and teacher_logits must have the same shape [N, C], got "
                         f"{tuple(student_logits.shape)} and {tuple(teacher_logits.shape)}")


def check_labels(labels, n: int, num_classes: int) -> torch.Tensor:
    """``labels`` must be an integer tensor ``[N]`` with values in [0, C)."""
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"labels must be a torch.Tensor of class indices, got {type(labels).__name__}")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise TypeError(f"labels must be an integer tensor of class indices, got dtype {labels.dtype}")
    if labels.shape != (n,):
        raise ValueError(f"labels must have shape [N] = [{n}], got {tuple(labels.shape)}")
    if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must be class indices in [0, {num_classes - 1}], got values in "
                         f"[{int(labels.min())}, {int(labels.max())}]")
    return labels


# ----------------------------------------------------------------------------- response-based KD
def soft_targets(logits: torch.Tensor, T: float) -> torch.Tensor:
    """Softmax at temperature ``T``: ``p_i = exp(z_i / T) / Σ_j exp(z_j / T)`` along the classes.

    ``logits`` float ``[N, C]``; returns probabilities ``[N, C]`` (rows sum to 1). ``T = 1`` is the
    ordinary softmax; a larger ``T`` flattens the distribution and reveals how the non-maximal
    classes are ranked (Hinton's "dark knowledge"); ``T → ∞`` gives the uniform 1/C.
    Explained in notebooks/11_distillation_soft_labels.ipynb.
    """
    T = check_temperature(T)
    check_logits("logits", logits)
    return F.softmax(logits / T, dim=1)


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, T: float) -> torch.Tensor:
    """Soft-label distillation loss ``T² · (1/N) Σ_n KL(p_t,n ‖ p_s,n)``, a scalar tensor.

    ``student_logits`` and ``teacher_logits`` are float ``[N, C]``; ``p_s = softmax(s/T)``,
    ``p_t = softmax(t/T)`` and ``KL(p_t ‖ p_s) = Σ_c p_t,c (log p_t,c − log p_s,c)``. The sum runs
    over the classes and the mean over the N samples only — torch's ``reduction="batchmean"``, not
    ``"mean"`` (which also divides by C). The factor T² keeps the gradient
    ``∂/∂s = (T/N)(p_s − p_t)`` of the same size as the hard-label gradient when T changes (Hinton
    et al. 2015). The teacher's logits are a constant target: no gradient flows into them.
    Explained in notebooks/11_distillation_soft_labels.ipynb.
    """
    T = check_temperature(T)
    check_pair(student_logits, teacher_logits)
    log_p_s = F.log_softmax(student_logits / T, dim=1)
    log_p_t = F.log_softmax(teacher_logits.detach() / T, dim=1)
    kl_per_sample = (log_p_t.exp() * (log_p_t - log_p_s)).sum(dim=1)
    return T * T * kl_per_sample.mean()


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
                      T: float, alpha: float) -> torch.Tensor:
    """Hinton's objective ``α · kd_loss(s, t, T) + (1 − α) · CE(s, y)``, a scalar tensor.

    ``student_logits``/``teacher_logits`` float ``[N, C]``, ``labels`` int64 ``[N]`` in [0, C); the
    cross-entropy uses the student's ordinary (T = 1) softmax and is averaged over the batch.
    ``alpha = 0`` is plain supervised training, ``alpha = 1`` learns from the teacher alone.
    Explained in notebooks/11_distillation_soft_labels.ipynb.
    """
    alpha = check_alpha(alpha)
    soft = kd_loss(student_logits, teacher_logits, T)
    check_labels(labels, student_logits.shape[0], student_logits.shape[1])
    hard = F.cross_entropy(student_logits, labels)
    return alpha * soft + (1.0 - alpha) * hard


def kd_logit_gradient(student_logits: torch.Tensor, teacher_logits: torch.Tensor, T: float,
                      t_squared: bool = True) -> torch.Tensor:
    """Closed-form ``∂ kd_loss / ∂ student_logits = (T / N) · (p_s − p_t)``, float ``[N, C]``.

    Without the T² factor (``t_squared=False``) it is ``(1 / (N·T)) · (p_s − p_t)``: the 1/T from
    the chain rule through ``s / T`` — so soft targets at T = 8 would push 64× less than with the
    factor. Explained in notebooks/11_distillation_soft_labels.ipynb.
    """
    T = check_temperature(T)
    check_pair(student_logits, teacher_logits)
    diff = F.softmax(student_logits.detach() / T, dim=1) - F.softmax(teacher_logits.detach() / T, dim=1)
    scale = T if t_squared else 1.0 / T
    return scale * diff / student_logits.shape[0]


def logit_matching_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """The high-temperature limit of ``kd_loss``: ``(1/N) Σ_n Σ_c (ŝ_n,c − t̂_n,c)² / (2C)``.

    ``ŝ = s − mean_c(s)`` and ``t̂ = t − mean_c(t)`` are the logits centred per sample (softmax
    ignores a shift). For T ≫ |logits|, ``exp(z/T) ≈ 1 + z/T`` and ``kd_loss → logit_matching_loss``
    (Hinton et al. 2015 §2.1): distillation at high T is matching logits. Inputs float ``[N, C]``.
    Explained in notebooks/11_distillation_soft_labels.ipynb.
    """
    check_pair(student_logits, teacher_logits)
    s = student_logits - student_logits.mean(dim=1, keepdim=True)
    t = teacher_logits.detach() - teacher_logits.detach().mean(dim=1, keepdim=True)
    return ((s - t) ** 2).sum(dim=1).mean() / (2 * student_logits.shape[1])


# Response-based losses by name; chapter 12 adds the feature-based ones here.
RESPONSE_LOSSES = {"kd": kd_loss, "logit_matching": logit_matching_loss}
