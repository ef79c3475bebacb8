"""Adversarial fine-tuning: train on attacked images so that the attack stops working (as well).

Goodfellow, Shlens & Szegedy (ICLR 2015) train on the mixed loss
``mix·CE(f(x), y) + (1 − mix)·CE(f(x'), y)`` with ``x'`` an FGSM example of the *current* model, remade
at every step; Madry et al. (ICLR 2018) use PGD examples only (``mix = 0``). A one-step attack started
at a random point of the ε-ball with step 1.25·ε (Wong, Rice & Kolter, "Fast is better than free",
ICLR 2020) is almost as cheap as FGSM and avoids FGSM training's "catastrophic overfitting":
``attack="pgd", steps=1, step_size=1.25·eps`` — the default here. Training costs ``1 + steps``
forward/backward passes per batch instead of one.

``adversarial_finetune`` is the short version chapter 15 applies to an already trained (compressed)
model: a few hundred steps, then the robust accuracy is measured again with a *stronger* attack
(PGD-10) than the one trained against, so that the gain is not an artefact of the weaker attack.
Explained in notebooks/15_robustness_faq_trends.ipynb.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import TensorDataset
from tqdm.auto import tqdm

from labkit.robust.attacks import ATTACKS, check_attackable, check_eps, fgsm, pgd
from labkit.validate import require_choice, require_float, require_int


def adversarial_finetune(model: nn.Module, train_data: TensorDataset, eps: float, *, attack: str = "pgd",
                         steps: int = 1, step_size: float | None = None, mix: float = 0.5, epochs: int = 1,
                         lr: float = 1e-3, batch_size: int = 64, seed: int = 0,
                         after_step: Callable | None = None, progress: bool = False) -> list[dict]:
    """Fine-tune ``model`` in place on ``mix·CE(x) + (1 − mix)·CE(x')`` (left in eval mode); returns ``[{"epoch", "loss"}]``.

    ``train_data``: ``TensorDataset`` of x float ``[N, C, H, W]`` in [0, 1] and y int64 ``[N]``.
    ``x'`` is made for every batch from the current weights: ``fgsm`` at ``eps``, or ``pgd`` with
    ``steps`` steps of ``step_size`` (default 1.25·eps for one step, else 2.5·eps/steps) from a random
    start. Adam with ``lr``, mini-batches in an order seeded by ``seed`` (which also seeds the random
    starts); ``after_step(model)`` runs after every optimizer step (a binary model clips its latent
    weights there). ``mix`` in [0, 1]; ``eps`` in [0, 1]. Explained in notebooks/15_robustness_faq_trends.ipynb.
    """
    check_attackable(model)
    eps, mix = check_eps(eps), require_float("mix", mix, 0.0, 1.0)
    require_choice("attack", attack, ATTACKS)
    steps, epochs = require_int("steps", steps, 1, 1000), require_int("epochs", epochs, 1, 1000)
    if step_size is None:
        step_size = 1.25 * eps if steps == 1 else 2.5 * eps / steps
    lr, batch_size = require_float("lr", lr, 0.0, 1.0, low_open=True), require_int("batch_size", batch_size, 1, None)
    seed = require_int("seed", seed, 0, 2**31 - 1)
    x_all, y_all = train_data.tensors
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    generator, history, step = torch.Generator().manual_seed(seed), [], 0
    for epoch in range(1, epochs + 1):
        order, total = torch.randperm(len(x_all), generator=generator), 0.0
        for index in tqdm(order.split(batch_size), desc=f"adversarial epoch {epoch}", disable=not progress, leave=False):
            x, y = x_all[index], y_all[index]
            if eps == 0:
                x_adv = x
            elif attack == "fgsm":
                x_adv = fgsm(model, x, y, eps)
            else:
                x_adv = pgd(model, x, y, eps, steps=steps, step_size=min(step_size, 1.0), seed=seed * 1_000_003 + step)
            model.train()
            loss = mix * F.cross_entropy(model(x), y) + (1 - mix) * F.cross_entropy(model(x_adv), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if after_step is not None:
                after_step(model)
            total, step = total + loss.item() * len(y), step + 1
        history.append({"epoch": epoch, "loss": total / len(x_all)})
    model.eval()
    return history
