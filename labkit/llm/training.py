"""Training ``TinyGPT`` on the documentation corpus: AdamW, warm-up then cosine learning rate, seeded.

``train_lm(config, steps, ...)`` draws random ``[B, T+1]`` windows from the training ids and minimises
the mean next-character cross-entropy. The shipped model (``checkpoint.RECIPE``: batch 32, 1,500 steps,
one thread) took 20 minutes of wall time on a busy 2-core machine; ``checkpoint.pretrained()`` ships
the result so that no notebook trains.

Explained in notebooks/16_transformer_compression.ipynb
"""
from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from labkit.llm.corpus import random_windows, split_ids
from labkit.llm.model import GPTConfig, TinyGPT
from labkit.validate import require_float, require_int


def lr_at(step: int, steps: int, lr: float, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to ``lr/10`` at ``steps``."""
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def train_lm(config: GPTConfig = GPTConfig(), steps: int = 1500, *, batch_size: int = 32, lr: float = 3e-3,
             warmup: int = 100, weight_decay: float = 0.1, seed: int = 0, log_every: int = 0) -> TinyGPT:
    """A ``TinyGPT`` trained for ``steps`` AdamW steps on the corpus's training ids (seeded: same
    seed, same thread count → same weights). ``log_every > 0`` prints the training loss that often."""
    steps = require_int("steps", steps, 1, None)
    lr = require_float("lr", lr, 0.0, None, low_open=True)
    torch.manual_seed(seed)
    model = TinyGPT(config)
    train_ids, _ = split_ids()
    gen = torch.Generator().manual_seed(seed)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=lr, betas=(0.9, 0.95))
    model.train()
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, steps, lr, warmup)
        window = random_windows(train_ids, batch_size, config.context, gen)
        logits = model(window[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, config.vocab_size), window[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if log_every and (step % log_every == 0 or step == steps - 1):
            print(f"step {step:5d}  loss {loss.item():.4f}  lr {group['lr']:.2e}", flush=True)
    return model.eval()
