"""Adversarial examples under an L∞ budget: FGSM and PGD, written from scratch.

An *adversarial example* is an input ``x' = x + δ`` that a model misclassifies although ``δ`` is
tiny: here every pixel moves by at most ε (the L∞ ball ``‖δ‖_∞ ≤ ε``) and stays a valid pixel in
``[0, 1]``. Both attacks climb the cross-entropy loss ``L(f(x'), y)`` using its gradient with
respect to the *input* (the weights stay fixed):

- **FGSM** (fast gradient sign method; Goodfellow, Shlens, Szegedy, "Explaining and Harnessing
  Adversarial Examples", ICLR 2015) — one step to a corner of the ball:
  ``x' = clip_[0,1](x + ε·sign(∇ₓL(f(x), y)))``.
- **PGD** (projected gradient descent; Madry, Makelov, Schmidt, Tsipras, Vladu, "Towards Deep
  Learning Models Resistant to Adversarial Attacks", ICLR 2018) — a random start
  ``x⁰ = x + U(−ε, ε)``, then ``steps`` signed steps of size α, each projected back onto the ball
  and the pixel range: ``xᵗ⁺¹ = Π(xᵗ + α·sign(∇ₓL(f(xᵗ), y)))`` with
  ``Π(v) = clip_[0,1](clip_[x−ε, x+ε](v))``. The default α = 2.5·ε/steps lets the iterate cross the
  ball and come back. One PGD step of size ε without the random start *is* FGSM.

The *robust accuracy* at ε is the accuracy on the attacked test set (``robust_correct``); examples
crafted on one model and scored on another measure *transfer* (``source=``).

A gradient attack needs a gradient. A quantizer's rounding has derivative 0 almost everywhere, so a
model that quantizes its activations (``quant.quantize_static``, ``quant.quantize_dynamic``) or runs
on integers (``quant.integer.IntegerModel``) would *look* robust — FGSM's ``sign(0) = 0`` moves no
pixel (gradient masking; Athalye, Carlini, Wagner, ICML 2018). ``check_attackable`` refuses such
models and says how to attack them: through their fake-quantized twin with a straight-through
gradient (``labkit.robust.twin.straight_through_twin``), then score the examples on the real model.
Explained in notebooks/15_robustness_faq_trends.ipynb.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import TensorDataset
from tqdm.auto import tqdm

from labkit import train
from labkit.quant.integer import IntegerModel
from labkit.quant.modules import DynamicQuantLinear, QuantizedLayer
from labkit.robust.twin import StraightThroughQuantized
from labkit.validate import require_choice, require_float, require_float_tensor, require_int, require_module

ATTACKS = ("fgsm", "pgd")
TWIN_HINT = ("attack its fake-quantized twin instead — labkit.robust.straight_through_twin(model) has the same "
             "forward pass with a straight-through gradient through every rounding — and score the adversarial "
             "images on the real model (robust_correct(model, data, eps, source=twin))")


def check_attackable(model) -> nn.Module:
    """Return ``model`` if a gradient attack on it means something; else raise ``TypeError``.

    Refused: an ``IntegerModel`` (numpy integer kernels: no autograd at all), and any module holding
    a ``DynamicQuantLinear`` or a ``QuantizedLinear``/``QuantizedConv2d`` that rounds its activations
    — their input gradient is 0 almost everywhere, so an attack would report a robustness that is
    only a masked gradient. The message names the layer and says how to attack it (its twin).
    Weight-only quantized layers (``quant.apply_bit_allocation``) and QAT models (STE) are accepted.
    Explained in notebooks/15_robustness_faq_trends.ipynb.
    """
    if isinstance(model, IntegerModel):
        raise TypeError("model is an IntegerModel: its integer-only layers run on numpy int8/int32 kernels and "
                        "have no gradient; " + TWIN_HINT.replace("straight_through_twin(model)",
                                                                "straight_through_twin(quant.quantize_static("
                                                                "float_model, calib_data))"))
    require_module("model", model, dtypes=(torch.float32, torch.float64))
    for name, module in _modules_outside_twins(model):
        rounds = isinstance(module, DynamicQuantLinear) or (
            isinstance(module, QuantizedLayer) and (module.input_qparams is not None or module.output_qparams is not None))
        if rounds:
            raise TypeError(f"model layer {name!r} ({type(module).__name__}) rounds its activations, whose gradient "
                            f"is 0 almost everywhere (an attack would only see a masked gradient); " + TWIN_HINT)
    return model


def _modules_outside_twins(module: nn.Module, prefix: str = ""):
    """``named_modules`` that does not look inside a ``StraightThroughQuantized`` (its rounding has an STE)."""
    yield prefix, module
    if isinstance(module, StraightThroughQuantized):
        return
    for name, child in module.named_children():
        yield from _modules_outside_twins(child, f"{prefix}.{name}" if prefix else name)


def _check_batch(x, y) -> tuple[torch.Tensor, torch.Tensor]:
    x = require_float_tensor("x", x, allow_empty=False)
    if x.dim() < 2:
        raise ValueError(f"x must be a batch [N, ...] of images, got shape {list(x.shape)}")
    if float(x.min()) < 0 or float(x.max()) > 1:
        raise ValueError(f"x must hold pixels in [0, 1] (labkit.data's convention), got values in "
                         f"[{float(x.min()):.3g}, {float(x.max()):.3g}]")
    if not isinstance(y, torch.Tensor) or y.dtype != torch.int64 or y.shape != x.shape[:1]:
        raise TypeError(f"y must be an int64 tensor of {x.shape[0]} class labels, got "
                        f"{getattr(y, 'dtype', type(y).__name__)} of shape {list(getattr(y, 'shape', []))}")
    return x, y


def check_eps(eps) -> float:
    """``eps`` as a float in [0, 1] (pixels live in [0, 1]); ``TypeError``/``ValueError`` otherwise,
    also for NaN and ±inf. Explained in notebooks/15_robustness_faq_trends.ipynb."""
    return require_float("eps", eps, 0.0, 1.0)


def input_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``∇ₓ Σᵢ CE(f(xᵢ), yᵢ)``: the gradient of the summed cross-entropy with respect to the input.

    ``x`` float ``[N, C, H, W]`` in [0, 1], ``y`` int64 ``[N]``; returns a tensor of ``x``'s shape. The
    sum (not the mean) makes each image's gradient independent of the batch size. The model runs in
    eval mode (BatchNorm statistics, no dropout) and its mode is restored; parameter gradients are
    not touched. For a linear model ``f(x) = Wx + b`` this is ``Wᵀ(softmax(f(x)) − e_y)`` per image.
    Explained in notebooks/15_robustness_faq_trends.ipynb.
    """
    check_attackable(model)
    x, y = _check_batch(x, y)
    was_training = model.training
    trainable = [p for p in model.parameters() if p.requires_grad]
    model.eval()
    try:
        for p in trainable:  # no parameter gradients: faster, and a pruning mask's ``weight`` stays a plain tensor
            p.requires_grad_(False)
        with torch.enable_grad():
            x = x.detach().clone().requires_grad_(True)
            loss = F.cross_entropy(model(x), y, reduction="sum")
            (grad,) = torch.autograd.grad(loss, x)
    finally:
        for p in trainable:
            p.requires_grad_(True)
        model.train(was_training)
    return grad


def _signed_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    grad = input_gradient(model, x, y)
    if not bool(grad.any()):
        raise ValueError("the input gradient is exactly 0 for every image of the batch: the model masks its "
                         "gradient (a rounding or a saturated output), so a gradient attack cannot move; "
                         + TWIN_HINT)
    return grad.sign()


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    """FGSM: ``clip_[0,1](x + ε·sign(∇ₓL(f(x), y)))`` (Goodfellow et al. 2015), float ``[N, C, H, W]``.

    ``eps`` in [0, 1] (ε = 0 returns ``x``). Each pixel moves by exactly ε (or less at the ends of
    [0, 1], or 0 where its gradient is 0). Explained in notebooks/15_robustness_faq_trends.ipynb.
    """
    eps = check_eps(eps)
    x, y = _check_batch(x, y)
    if eps == 0:
        return x.detach().clone()
    return (x + eps * _signed_gradient(model, x, y)).clamp(0.0, 1.0).detach()


def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, *, steps: int = 10,
        step_size: float | None = None, random_start: bool = True, seed: int = 0) -> torch.Tensor:
    """PGD under ``‖x' − x‖_∞ ≤ ε`` (Madry et al. 2018): float ``[N, C, H, W]``, the last iterate.

    ``x⁰ = clip(x + U(−ε, ε))`` if ``random_start`` (noise from a generator seeded with ``seed``),
    then ``steps`` ≥ 1 times ``xᵗ⁺¹ = Π(xᵗ + α·sign(∇ₓL))`` with ``α = step_size`` (default
    2.5·ε/steps) and ``Π`` the projection onto the ε-ball around ``x`` intersected with [0, 1].
    With ``steps=1, step_size=eps, random_start=False`` it equals ``fgsm``.
    Explained in notebooks/15_robustness_faq_trends.ipynb.
    """
    eps = check_eps(eps)
    steps = require_int("steps", steps, 1, 10_000)
    alpha = 2.5 * eps / steps if step_size is None else require_float("step_size", step_size, 0.0, 1.0,
                                                                       low_open=True)
    seed = require_int("seed", seed, 0, 2**63 - 1)
    x, y = _check_batch(x, y)
    if eps == 0:
        return x.detach().clone()
    low, high = (x - eps).clamp(min=0.0), (x + eps).clamp(max=1.0)
    x_adv = x.detach().clone()
    if random_start:
        noise = torch.rand(x.shape, generator=torch.Generator().manual_seed(seed), dtype=x.dtype)
        x_adv = torch.max(torch.min(x_adv + (2 * noise - 1) * eps, high), low)
    for _ in range(steps):
        x_adv = torch.max(torch.min(x_adv + alpha * _signed_gradient(model, x_adv, y), high), low)
    return x_adv.detach()


def _dataset_tensors(data) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(data, TensorDataset) and len(data.tensors) == 2:
        return data.tensors[0], data.tensors[1]
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data):
        return data[0], data[1]
    raise TypeError(f"data must be a TensorDataset (x, y) or an (x, y) pair of tensors, got {type(data).__name__}")


def adversarial_examples(model: nn.Module, data, eps: float, *, attack: str = "pgd", steps: int = 10,
                         step_size: float | None = None, random_start: bool = True, seed: int = 0,
                         batch_size: int = 1000, progress: bool = False) -> TensorDataset:
    """The attacked copy of ``data``: a ``TensorDataset(x', y)`` with ``x'`` crafted on ``model``.

    ``data`` is a ``TensorDataset`` / ``(x, y)`` pair (x float ``[N, C, H, W]`` in [0, 1], y int64);
    ``attack`` is ``"fgsm"`` or ``"pgd"`` (``steps``, ``step_size``, ``random_start`` as in ``pgd``);
    batch ``i`` of ``batch_size`` images draws its PGD start from seed ``seed + i``, so the result
    does not depend on anything but the arguments. Explained in notebooks/15_robustness_faq_trends.ipynb.
    """
    require_choice("attack", attack, ATTACKS)
    eps, batch_size = check_eps(eps), require_int("batch_size", batch_size, 1, None)
    check_attackable(model)
    x, y = _dataset_tensors(data)
    batches = list(zip(x.split(batch_size), y.split(batch_size)))
    out = []
    for i, (xb, yb) in enumerate(tqdm(batches, desc=f"{attack} ε={eps:g}", disable=not progress, leave=False)):
        if attack == "fgsm":
            out.append(fgsm(model, xb, yb, eps))
        else:
            out.append(pgd(model, xb, yb, eps, steps=steps, step_size=step_size, random_start=random_start,
                           seed=seed + i))
    return TensorDataset(torch.cat(out), y)


def robust_correct(model, data, eps: float, *, source: nn.Module | None = None, **attack_options) -> torch.Tensor:
    """Per-image results bool ``[N]`` of ``model`` on ``data`` attacked at ``eps``.

    The examples are crafted on ``source`` (default: ``model`` itself, a *white-box* attack) with
    ``adversarial_examples(source, data, eps, **attack_options)``; with another ``source`` this is a
    *transfer* (black-box) attack. ``model`` may then be an ``IntegerModel``, scored on the pixels
    ``round(255·x')`` it reads. Feed the result to ``labkit.stats`` (``accuracy_interval``,
    ``paired_difference``). Explained in notebooks/15_robustness_faq_trends.ipynb.
    """
    attacked = adversarial_examples(source if source is not None else model, data, eps, **attack_options)
    if isinstance(model, IntegerModel):
        x, y = attacked.tensors
        return torch.from_numpy(model.predict(x)).long() == y
    return train.correct(model, attacked)
