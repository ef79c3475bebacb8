"""The compressed versions of one trained model that chapter 15 attacks, each made by its chapter's code.

``compressed_variants(base, train_data, seed=s)`` returns ``{name: model}`` for the names in
``VARIANTS``: the base itself and seven compressed copies, each a thin call into the chapter that
teaches the method, followed by the same short fine-tuning — one pass (Adam, lr 1e-3, batch 64) over a
seeded ``finetune_images`` subset of the training set (the seed fixes the subset, the order and any
initialisation), so that differences between variants come from the method, not from unequal training:

=================== ======================================================================= ==========
name                what                                                                     chapter
=================== ======================================================================= ==========
base                the trained model                                                        00
pruned 90 %         global magnitude pruning of 90 % of the weights (masks kept) + FT        07
structured 50 %     half of every hidden layer's neurons/channels removed (L1) + FT           09
int8 PTQ            static PTQ, int8 weights (per channel) and activations, no FT            03
4-bit QAT           4-bit weights and activations, STE QAT for the same pass, converted      05
binary              XNOR binary weights (α·sign w, α per output) in every layer + FT          02
distilled           an MLP student (784-100-10) distilled from the base (T = 4, α = 0.9)      11
low-rank            the largest Linear factorised by SVD at rank 32 + FT                     13
=================== ======================================================================= ==========

``int8 PTQ`` and ``4-bit QAT`` round their activations: attack them through
``labkit.robust.straight_through_twin`` (``attack_view`` does it). The student starts from random
weights, so it trains longer: ``student_epochs`` passes over the whole training set (Adam, lr 3e-3,
cosine schedule) — 97.27 % on MNIST with seed 0, against the base's 98.41 %.
Explained in notebooks/15_robustness_faq_trends.ipynb.
"""
from __future__ import annotations

import copy

import torch
from torch import nn
from torch.utils.data import TensorDataset

from labkit import distill, lowrank, prune, quant, train
from labkit.quant import binary
from labkit.quant.modules import QuantizedLayer
from labkit.robust.twin import straight_through_twin
from labkit.validate import require_choice, require_int, require_module

VARIANTS = ("base", "pruned 90 %", "structured 50 %", "int8 PTQ", "4-bit QAT", "binary", "distilled", "low-rank")
LR, BATCH_SIZE, STUDENT_LR = 1e-3, 64, 3e-3


def training_subset(train_data: TensorDataset, images: int, seed: int) -> TensorDataset:
    """The first ``images`` of a permutation of ``train_data`` seeded with ``seed`` (x, y tensors).
    Explained in notebooks/15_robustness_faq_trends.ipynb."""
    x, y = train_data.tensors
    images = require_int("images", images, 1, len(x))
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(require_int("seed", seed, 0, 2**63 - 1)))
    return TensorDataset(x[order[:images]], y[order[:images]])


def _tuned(model: nn.Module, subset: TensorDataset, seed: int, **fit_options) -> nn.Module:
    train.fit(model, subset, epochs=1, lr=LR, batch_size=BATCH_SIZE, seed=seed, progress=False, **fit_options)
    return model.eval()


def _largest_linear(model: nn.Module) -> str:
    linears = {name: m for name, m in model.named_modules() if isinstance(m, nn.Linear)}
    if not linears:
        raise ValueError("model has no nn.Linear layer to factorise")
    return max(linears, key=lambda name: linears[name].weight.numel())


def _builders(base: nn.Module, full: TensorDataset, subset: TensorDataset, seed: int, student_epochs: int) -> dict:
    def pruned():
        model = copy.deepcopy(base)
        prune.global_magnitude_prune(model, 0.9)
        return _tuned(model, subset, seed, after_step=prune.reapply_masks)

    def structured():
        return _tuned(prune.structured_prune(base, 0.5, "l1", linear=True)[0], subset, seed)

    def qat4():
        train.set_seed(seed)
        return quant.convert(_tuned(quant.prepare_qat(base, weight_bits=4, act_bits=4), subset, seed))

    def binarized():
        model = binary.binarize_model(base, "xnor", per_channel=True, skip_first_last=False)
        return _tuned(model, subset, seed, after_step=binary.clip_latent_weights)

    def distilled():
        train.set_seed(seed)
        student = distill.MLPStudent((100,), *_config(base))
        distill.distill(student, base, full, T=4.0, alpha=0.9, epochs=student_epochs, lr=STUDENT_LR,
                        batch_size=BATCH_SIZE, seed=seed, progress=False, lr_schedule="cosine")
        return student.eval()

    def low_rank():
        return _tuned(lowrank.factorised_copy(base, ranks={_largest_linear(base): 32})[0], subset, seed)

    return {"base": lambda: copy.deepcopy(base).eval(), "pruned 90 %": pruned, "structured 50 %": structured,
            "int8 PTQ": lambda: quant.quantize_static(base, subset, num_batches=4),
            "4-bit QAT": qat4, "binary": binarized, "distilled": distilled, "low-rank": low_rank}


def _config(model: nn.Module) -> tuple[int, int, int]:
    config = model.config() if hasattr(model, "config") else {}
    return config.get("in_channels", 1), config.get("num_classes", 10), config.get("image_size", 28)


def compressed_variants(base: nn.Module, train_data: TensorDataset, *, seed: int = 0, names=VARIANTS,
                        finetune_images: int = 12_800, student_epochs: int = 3) -> dict[str, nn.Module]:
    """``{name: model}`` for each of ``names`` (a subset of ``VARIANTS``, in that order), all in eval mode.

    ``base`` is a trained float32 model (LeNet-300-100 or LeNet-5: hidden Linear layers or convs);
    ``train_data`` a ``TensorDataset`` of training images; ``seed`` fixes the fine-tuning subset of
    ``finetune_images`` images, its order and every initialisation. ``base`` is never modified.
    Explained in notebooks/15_robustness_faq_trends.ipynb.
    """
    require_module("base", base, dtypes=(torch.float32,))
    names = tuple(names)
    for name in names:
        require_choice("names", name, VARIANTS)
    seed = require_int("seed", seed, 0, 2**31 - 1)
    student_epochs = require_int("student_epochs", student_epochs, 1, 100)
    subset = training_subset(train_data, finetune_images, seed)
    builders = _builders(copy.deepcopy(base).eval(), train_data, subset, seed, student_epochs)
    return {name: builders[name]() for name in VARIANTS if name in names}


def attack_view(model: nn.Module) -> nn.Module:
    """What a gradient attack should differentiate: ``straight_through_twin(model)`` when the model holds
    quantized layers (their roundings would mask the gradient), else ``model`` itself.
    Explained in notebooks/15_robustness_faq_trends.ipynb."""
    if any(isinstance(m, QuantizedLayer) for m in model.modules()):
        return straight_through_twin(model)
    return model
