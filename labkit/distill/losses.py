"""Distillation losses: what the student is asked to match in the teacher.

Response-based (chapter 11, Hinton, Vinyals & Dean, "Distilling the Knowledge in a Neural Network",
2015): the student matches the teacher's *softened* class probabilities.

- ``soft_targets(logits, T)``      softmax(z / T), the teacher's "dark knowledge" made visible.
- ``kd_loss(s, t, T)``             T² · KL(softmax(t/T) ‖ softmax(s/T)), averaged over the batch.
- ``distillation_loss(...)``       α · kd_loss + (1 − α) · cross-entropy with the hard labels.
- ``kd_logit_gradient(s, t, T)``   the closed-form gradient of ``kd_loss`` w.r.t. the student logits.
- ``logit_matching_loss(s, t)``    the T → ∞ limit of ``kd_loss`` (Hinton §2.1; Bucila/Caruana).

Feature-based losses (FitNets hints, attention transfer, relational KD; chapter 12) follow the same
conventions: plain functions ``(student_x, teacher_x, ...) -> scalar tensor``, arguments checked at
the top with the helpers of this module, the teacher's tensor treated as a constant target (the
trainer computes it under ``no_grad``), so every loss can be mixed with cross-entropy by a weight.
The per-sample quantities are averaged over the batch (the hint loss, like ``F.mse_loss``, over
every element).

Feature-based (chapter 12): the student matches what the teacher computes *inside*.

- ``hint_loss(s, t, regressor)``        FitNets (Romero et al. 2015): MSE(r(student feature), teacher feature).
- ``attention_map(F, p)``               Σ_c |F_c|^p, a spatial map [N, H, W] (Zagoruyko & Komodakis 2017).
- ``normalized_attention(F, p)``        that map flattened and divided by its L2 norm, [N, H·W].
- ``attention_transfer_loss(s, t, p)``  (1/N) Σ_n ‖q̂_s,n − q̂_t,n‖², on the normalised maps.
- ``rkd_distance_matrix(e)``            pairwise distances divided by their mean (Park et al. 2019).
- ``rkd_distance_loss(s, t)``           Huber between the two normalised distance matrices.
- ``rkd_angle_loss(s, t)``              Huber between the cosines of the angles of all triplets.

Explained in notebooks/11_distillation_soft_labels.ipynb and notebooks/12_distillation_features.ipynb.
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


# Response-based losses by name.
RESPONSE_LOSSES = {"kd": kd_loss, "logit_matching": logit_matching_loss}


# ----------------------------------------------------------------------------- feature-based KD
def check_features(name: str, x, dims: tuple[int, ...] = (2, 4)) -> torch.Tensor:
    """``x`` must be a finite float tensor with one of ``dims`` dimensions and a batch N ≥ 1."""
    require_float_tensor(name, x)
    if x.dim() not in dims or x.shape[0] < 1 or x.numel() == 0:
        wanted = " or ".join({2: "[N, D]", 4: "[N, C, H, W]", 3: "[N, H, W]"}[d] for d in dims)
        raise ValueError(f"{name} must have shape {wanted} with N >= 1, got {tuple(x.shape)}")
    return x


def check_p(p) -> float:
    """``p`` as a float in (0, 16]: the power of |F_c| in the attention map."""
    return require_float("p", p, 0.0, 16.0, low_open=True)


def hint_loss(student_features: torch.Tensor, teacher_features: torch.Tensor, regressor=None) -> torch.Tensor:
    """FitNets hint loss ``mean((r(s) − t)²)`` over every element, a scalar tensor.

    ``student_features`` float ``[N, C_s, H, W]`` (or ``[N, D_s]``), ``teacher_features`` float
    ``[N, C_t, H, W]`` (or ``[N, D_t]``); ``regressor`` (an ``nn.Module``, e.g. ``features.Regressor``:
    a 1×1 conv or a linear layer) maps the student's width to the teacher's; None means identity, and
    then the shapes must already be equal. The teacher's feature is a constant target (detached).
    Romero et al. (2015) write ½‖u_h − r(v_g)‖²; the element mean here only rescales that by a
    constant, absorbed in the loss weight. Explained in notebooks/12_distillation_features.ipynb.
    """
    check_features("student_features", student_features)
    check_features("teacher_features", teacher_features)
    if regressor is not None:
        if not isinstance(regressor, torch.nn.Module) and not callable(regressor):
            raise TypeError(f"regressor must be a torch.nn.Module or None, got {type(regressor).__name__}")
        student_features = regressor(student_features)
    if student_features.shape != teacher_features.shape:
        raise ValueError(f"student_features (after the regressor) and teacher_features must have the same shape, "
                         f"got {tuple(student_features.shape)} and {tuple(teacher_features.shape)}; "
                         "use a Regressor to map the student's channels to the teacher's")
    return F.mse_loss(student_features, teacher_features.detach())


def attention_map(features: torch.Tensor, p: float = 2.0) -> torch.Tensor:
    """Spatial attention ``A[n, h, w] = Σ_c |F[n, c, h, w]|^p``, float ``[N, H, W]``.

    ``features`` float ``[N, C, H, W]``, ``p`` in (0, 16]. Large where many channels fire strongly:
    *where* the network looks. p = 2 is Zagoruyko & Komodakis's default; a larger p weights the
    most active positions more. Explained in notebooks/12_distillation_features.ipynb.
    """
    p = check_p(p)
    check_features("features", features, dims=(4,))
    return features.abs().pow(p).sum(dim=1)


def normalized_attention(features: torch.Tensor, p: float = 2.0) -> torch.Tensor:
    """``q̂ = vec(A) / ‖vec(A)‖₂`` with ``A = attention_map(features, p)``: float ``[N, H·W]``, unit rows.

    Dividing by the norm makes the map independent of the features' scale (and of the number of
    channels, up to the map's shape), so a narrow student can match a wide teacher.
    Explained in notebooks/12_distillation_features.ipynb.
    """
    a = attention_map(features, p).flatten(1)
    return F.normalize(a, p=2.0, dim=1, eps=1e-12)


def attention_transfer_loss(student_features: torch.Tensor, teacher_features: torch.Tensor,
                            p: float = 2.0) -> torch.Tensor:
    """Attention transfer ``(1/N) Σ_n ‖q̂_s,n − q̂_t,n‖²₂``, a scalar tensor in [0, 2].

    ``student_features`` float ``[N, C_s, H, W]`` and ``teacher_features`` ``[N, C_t, H, W]``: the
    channel counts may differ (the sum over c removes them), the batch and the spatial size may
    not. ``q̂ = normalized_attention(F, p)``. Zagoruyko & Komodakis (2017) write β/2 · ‖q̂_s − q̂_t‖₂;
    their code (and this function) squares it. The teacher's map is a constant target.
    Explained in notebooks/12_distillation_features.ipynb.
    """
    check_features("student_features", student_features, dims=(4,))
    check_features("teacher_features", teacher_features, dims=(4,))
    s, t = student_features.shape, teacher_features.shape
    if s[0] != t[0] or s[2:] != t[2:]:
        raise ValueError(f"student_features and teacher_features must have the same batch and spatial size "
                         f"[N, ·, H, W], got {tuple(s)} and {tuple(t)}")
    q_s = normalized_attention(student_features, p)
    q_t = normalized_attention(teacher_features.detach(), p)
    return (q_s - q_t).pow(2).sum(dim=1).mean()


def _check_embeddings(student, teacher) -> None:
    check_features("student_embeddings", student, dims=(2,))
    check_features("teacher_embeddings", teacher, dims=(2,))
    if student.shape[0] != teacher.shape[0]:
        raise ValueError(f"student_embeddings and teacher_embeddings must hold the same N samples, got "
                         f"{student.shape[0]} and {teacher.shape[0]}")


def _gram_distances(embeddings: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(G, D)``: the Gram matrix ``G = e eᵀ`` of the batch-centred embeddings and the pairwise
    distances ``D[i, j] = sqrt(G_ii + G_jj − 2 G_ij)`` (0 on the diagonal and, below the rounding error
    of ``G``, for coinciding points), both ``[N, N]``. Through the
    Gram matrix the cost is O(N²·D) with no ``[N, N, D]`` tensor; centring (distances and angles
    ignore a shift) keeps the subtraction well conditioned."""
    e = embeddings - embeddings.mean(dim=0, keepdim=True)
    g = e @ e.T
    sq = g.diagonal()
    d2 = sq[:, None] + sq[None, :] - 2 * g
    # below rounding error of the Gram entries two points coincide: distance exactly 0 (and no 0⁻½ gradient)
    close = d2 <= 64 * torch.finfo(e.dtype).eps * sq.detach().max()
    close |= torch.eye(len(e), dtype=torch.bool, device=e.device)
    return g, torch.where(close, torch.zeros_like(d2), d2.masked_fill(close, 1.0).sqrt())


def rkd_distance_matrix(embeddings: torch.Tensor) -> torch.Tensor:
    """``ψ_D[i, j] = ‖e_i − e_j‖₂ / μ`` with ``μ`` the mean distance over the N(N−1) pairs i ≠ j.

    ``embeddings`` float ``[N, D]`` with N ≥ 2; returns float ``[N, N]`` (zero diagonal, mean of the
    off-diagonal entries 1). Dividing by μ makes ψ_D blind to a global scale (Park et al. 2019);
    distances are already blind to rotations and translations.
    Explained in notebooks/12_distillation_features.ipynb.
    """
    check_features("embeddings", embeddings, dims=(2,))
    n = embeddings.shape[0]
    if n < 2:
        raise ValueError(f"embeddings must hold at least N = 2 samples for a distance, got N = {n}")
    d = _gram_distances(embeddings)[1]
    mu = d.sum() / (n * (n - 1))
    return d / mu.clamp_min(1e-12)


def rkd_distance_loss(student_embeddings: torch.Tensor, teacher_embeddings: torch.Tensor) -> torch.Tensor:
    """Distance-wise RKD ``mean_{i≠j} Huber(ψ_D^s[i, j] − ψ_D^t[i, j])``, a scalar tensor.

    Inputs float ``[N, D_s]`` and ``[N, D_t]`` (widths may differ; N ≥ 2). Huber is torch's
    ``smooth_l1`` (β = 1), as in Park et al. (2019). The student matches the *shape* of the batch —
    which samples are near each other — not the coordinates. Explained in notebooks/12_distillation_features.ipynb.
    """
    _check_embeddings(student_embeddings, teacher_embeddings)
    n = student_embeddings.shape[0]
    off = ~torch.eye(n, dtype=torch.bool)
    with torch.no_grad():
        t = rkd_distance_matrix(teacher_embeddings.detach())
    s = rkd_distance_matrix(student_embeddings)
    return F.smooth_l1_loss(s[off], t[off])


def rkd_angle_matrix(embeddings: torch.Tensor) -> torch.Tensor:
    """``ψ_A[i, j, k] = cos ∠(e_i, e_j, e_k) = ⟨e_i − e_j, e_k − e_j⟩ / (‖e_i − e_j‖·‖e_k − e_j‖)``, ``[N, N, N]``.

    The angle at vertex ``e_j``, 0 for a degenerate triplet (i = j or k = j); blind to scale, rotation
    and translation. ``embeddings`` float ``[N, D]``. The inner product is read off the Gram matrix,
    ``⟨e_i − e_j, e_k − e_j⟩ = G_ik − G_ij − G_jk + G_jj``, so no ``[N, N, D]`` tensor of differences is
    built (Park et al. 2019 normalise the differences explicitly; the result is the same).
    Explained in notebooks/12_distillation_features.ipynb.
    """
    check_features("embeddings", embeddings, dims=(2,))
    g, d = _gram_distances(embeddings)
    sq = g.diagonal()
    inner = g[:, None, :] - g[:, :, None] - g[None, :, :] + sq[None, :, None]      # [i, j, k]
    lengths = d[:, :, None] * d[None, :, :]                                        # ‖e_i − e_j‖·‖e_k − e_j‖
    degenerate = lengths == 0
    return torch.where(degenerate, torch.zeros_like(inner), inner / lengths.masked_fill(degenerate, 1.0))


def rkd_angle_loss(student_embeddings: torch.Tensor, teacher_embeddings: torch.Tensor) -> torch.Tensor:
    """Angle-wise RKD ``mean_{i,j,k} Huber(ψ_A^s − ψ_A^t)`` over all N³ triplets, a scalar tensor.

    Inputs float ``[N, D_s]`` and ``[N, D_t]``; degenerate triplets (a repeated index) give 0 on both
    sides. Park et al. (2019) weight it λ_A = 50 against λ_D = 25 for the distance loss.
    Explained in notebooks/12_distillation_features.ipynb.
    """
    _check_embeddings(student_embeddings, teacher_embeddings)
    with torch.no_grad():
        t = rkd_angle_matrix(teacher_embeddings.detach())
    return F.smooth_l1_loss(rkd_angle_matrix(student_embeddings), t)


# Feature-based losses by name (chapter 12).
FEATURE_LOSSES = {"hint": hint_loss, "attention": attention_transfer_loss,
                  "rkd_distance": rkd_distance_loss, "rkd_angle": rkd_angle_loss}
