"""Distribution shift: corrupted and shifted test images, and out-of-distribution scores.

"Does quantization hurt generalisation?" (seed 002 §9.2) has two measurable halves. *Covariate
shift*: the same classes, drawn differently — noisier, blurred, moved, rotated, with less contrast —
where accuracy still means something; ``corrupted(data, kind, severity)`` makes such a test set,
deterministically (in the spirit of Hendrycks & Dietterich's ImageNet-C, ICLR 2019, and Mu & Gilmer's
MNIST-C, 2019). *Out-of-distribution inputs*: images of no class the model knows (Fashion-MNIST for an
MNIST model), where the question is whether the model *notices*: the maximum softmax probability
(Hendrycks & Gimpel, ICLR 2017) should be lower on them, and ``auroc`` measures how well it separates
the two sets (0.5 = not at all, 1 = perfectly).

Corruptions (``CORRUPTIONS``; images float ``[N, 1, H, W]`` in [0, 1], severity in its own unit):
``noise`` (Gaussian, σ in pixel units), ``blur`` (Gaussian kernel σ in pixels), ``shift`` (whole pixels
right and down, zeros come in), ``rotate`` (degrees, bilinear), ``contrast`` (``x ↦ m + c·(x − m)`` with
``m`` the image mean, 0 < c ≤ 1). Explained in notebooks/15_robustness_faq_trends.ipynb.
"""
from __future__ import annotations

from statistics import NormalDist

import numpy as np
import torch
from torch.utils.data import TensorDataset
from torchvision.transforms import functional as TF

from labkit.stats import Estimate
from labkit.validate import require_choice, require_float, require_float_tensor, require_int

CHUNK = 1000   # images blurred or rotated at a time (bounds the memory of torchvision's batched kernels)
CORRUPTIONS = {"noise": (0.0, 1.0), "blur": (0.0, 5.0), "shift": (0, 14), "rotate": (-180.0, 180.0),
               "contrast": (0.0, 1.0)}


def corrupt(x: torch.Tensor, kind: str, severity: float, seed: int = 0) -> torch.Tensor:
    """A corrupted copy of the images ``x`` float ``[N, C, H, W]`` in [0, 1], clipped back into [0, 1].

    ``kind`` in ``CORRUPTIONS``; ``severity`` in that kind's range (severity 0 — or 1 for contrast —
    returns ``x`` unchanged); ``seed`` fixes the noise. Explained in notebooks/15_robustness_faq_trends.ipynb.
    """
    require_choice("kind", kind, tuple(CORRUPTIONS))
    x = require_float_tensor("x", x)
    if x.dim() != 4:
        raise ValueError(f"x must be a batch of images [N, C, H, W], got shape {list(x.shape)}")
    low, high = CORRUPTIONS[kind]
    if kind == "shift":
        severity = require_int("severity", severity, low, high)
    else:
        severity = require_float("severity", severity, low, high, low_open=(kind == "contrast"))
    if kind == "noise":
        generator = torch.Generator().manual_seed(require_int("seed", seed, 0, 2**63 - 1))
        out = x + severity * torch.randn(x.shape, generator=generator, dtype=x.dtype)
    elif kind == "blur":   # in chunks: torchvision's blur of 10,000 images at once peaks at ~0.5 GB
        size = 2 * int(np.ceil(3 * severity)) + 1
        out = x if severity == 0 else torch.cat([TF.gaussian_blur(c, kernel_size=size, sigma=severity)
                                                 for c in x.split(CHUNK)])
    elif kind == "shift":
        out = torch.zeros_like(x)
        out[..., severity:, severity:] = x[..., :x.shape[-2] - severity, :x.shape[-1] - severity]
    elif kind == "rotate":
        out = torch.cat([TF.rotate(c, severity, interpolation=TF.InterpolationMode.BILINEAR) for c in x.split(CHUNK)])
    else:
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        out = mean + severity * (x - mean)
    return out.clamp(0.0, 1.0)


def corrupted(data: TensorDataset, kind: str, severity: float, seed: int = 0) -> TensorDataset:
    """``TensorDataset(corrupt(x, kind, severity, seed), y)`` for a labelled ``data``: same labels, shifted inputs.
    Explained in notebooks/15_robustness_faq_trends.ipynb."""
    x, y = data.tensors
    return TensorDataset(corrupt(x, kind, severity, seed), y)


@torch.no_grad()
def max_softmax(model, x: torch.Tensor, batch_size: int = 2000) -> torch.Tensor:
    """The confidence score ``max_c softmax(f(x))_c`` float ``[N]`` (Hendrycks & Gimpel 2017), eval mode.
    Explained in notebooks/15_robustness_faq_trends.ipynb."""
    was_training = model.training
    model.eval()
    try:
        return torch.cat([model(b).softmax(1).max(1).values for b in x.split(batch_size)])
    finally:
        model.train(was_training)


def auroc(in_scores, out_scores) -> float:
    """Area under the ROC curve of telling in-distribution (higher score) from out-of-distribution inputs.

    ``P(s_in > s_out) + ½·P(s_in = s_out)`` over all pairs — the Mann–Whitney U statistic divided by
    ``n_in·n_out``, computed from the mid-ranks of the pooled scores (``scipy.stats.rankdata``).
    Explained in notebooks/15_robustness_faq_trends.ipynb.
    """
    a, b = _scores("in_scores", in_scores), _scores("out_scores", out_scores)
    return float(_placements(a, b)[0].mean())


def _placements(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong's structural components: ``V10_i = P(a_i > b) + ½P(a_i = b)`` for each in-score and
    ``V01_j = P(a > b_j) + ½P(a = b_j)`` for each out-score; both average to the AUROC."""
    from scipy.stats import rankdata

    pooled = rankdata(np.concatenate([a, b]))
    v10 = (pooled[:a.size] - rankdata(a)) / b.size
    v01 = 1.0 - (pooled[a.size:] - rankdata(b)) / a.size
    return v10, v01


def paired_auroc_difference(in_a, out_a, in_b, out_b, confidence: float = 0.95) -> Estimate:
    """AUROC of model B minus model A scored on the *same* images, with DeLong's paired interval.

    ``in_a``/``in_b``: the two models' scores on the same in-distribution images (``[n_in]``),
    ``out_a``/``out_b`` on the same OOD images (``[n_out]``). With DeLong's components ``V10``/``V01``
    of each model (DeLong, DeLong & Clarke-Pearson, Biometrics 1988), the variance of the difference is
    ``var(V10_B − V10_A)/n_in + var(V01_B − V01_A)/n_out`` (sample variances), and the interval
    ``d ± z·√variance`` — paired, so that image difficulty cancels as in ``stats.paired_difference``.
    Explained in notebooks/15_robustness_faq_trends.ipynb.
    """
    in_a, in_b, out_a, out_b = (_scores(n, v) for n, v in (("in_a", in_a), ("in_b", in_b), ("out_a", out_a),
                                                           ("out_b", out_b)))
    if in_a.shape != in_b.shape or out_a.shape != out_b.shape or min(in_a.size, out_a.size) < 2:
        raise ValueError("in_a/in_b and out_a/out_b must score the same images (equal lengths, at least 2 each)")
    confidence = require_float("confidence", confidence, 0.0, 1.0, low_open=True, high_open=True)
    (v10_a, v01_a), (v10_b, v01_b) = _placements(in_a, out_a), _placements(in_b, out_b)
    d = float(v10_b.mean() - v10_a.mean())
    variance = np.var(v10_b - v10_a, ddof=1) / in_a.size + np.var(v01_b - v01_a, ddof=1) / out_a.size
    half = NormalDist().inv_cdf(0.5 + confidence / 2) * float(np.sqrt(variance))
    return Estimate(d, d - half, d + half, int(in_a.size + out_a.size), "paired (DeLong)", confidence)


def _scores(name: str, values) -> np.ndarray:
    x = np.asarray(values.detach().cpu().numpy() if hasattr(values, "detach") else values, dtype=np.float64)
    if x.ndim != 1 or x.size == 0 or not np.isfinite(x).all():
        raise ValueError(f"{name} must be a non-empty 1-D array of finite scores, got shape {x.shape}")
    return x
