"""The shipped, trained ``TinyGPT``: ``pretrained()`` loads and verifies it; ``train_again()`` rebuilds it.

The checkpoint (``data/tinygpt-pydoc.pt``) is a plain dict — ``config``, ``state_dict``, ``recipe``,
``held_out_ppl`` and ``weights_sha256`` (``labkit.zoo.weights_digest``) — read with
``torch.load(weights_only=True)``; a changed byte in the weights raises ``labkit.zoo.CheckpointError``.
If the file is missing, ``pretrained()`` trains the model with ``RECIPE`` (tens of minutes on one core).

Explained in notebooks/16_transformer_compression.ipynb
"""
from __future__ import annotations

from pathlib import Path

import torch

from labkit.files import atomic_write
from labkit.llm.model import GPTConfig, TinyGPT
from labkit.llm.training import train_lm
from labkit.zoo import CheckpointError, weights_digest

CHECKPOINT_PATH = Path(__file__).resolve().parent / "data" / "tinygpt-pydoc.pt"
RECIPE = {"steps": 1500, "batch_size": 32, "lr": 3e-3, "warmup": 100, "weight_decay": 0.1, "seed": 0}


def train_again(config: GPTConfig = GPTConfig(), log_every: int = 0) -> TinyGPT:
    """Train the shipped model from scratch with ``RECIPE`` (seeded; one torch thread gives the same weights)."""
    return train_lm(config, log_every=log_every, **RECIPE)


def save(model: TinyGPT, path=None, **meta) -> Path:
    """Write ``model`` with its config, recipe, ``meta`` and weight digest, atomically (default: the shipped file)."""
    path = Path(CHECKPOINT_PATH if path is None else path)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    blob = {"config": model.config.to_dict(), "state_dict": state, "recipe": dict(RECIPE),
            "weights_sha256": weights_digest(state), **meta}
    with atomic_write(path) as f:
        torch.save(blob, f)
    return path


def load(path=None) -> tuple[TinyGPT, dict]:
    """``(model in eval mode, checkpoint dict)`` from ``path`` (default: the shipped file), weights verified."""
    path = Path(CHECKPOINT_PATH if path is None else path)
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise CheckpointError(f"checkpoint {path} cannot be read ({err}); delete it and run train_again()") from err
    if not isinstance(blob, dict) or not {"config", "state_dict", "weights_sha256"} <= blob.keys():
        raise CheckpointError(f"{path} is not a TinyGPT checkpoint")
    if weights_digest(blob["state_dict"]) != blob["weights_sha256"]:
        raise CheckpointError(f"checkpoint {path} fails its checksum: its weights changed after it was written")
    model = TinyGPT(GPTConfig(**blob["config"]))
    model.load_state_dict(blob["state_dict"])
    return model.eval(), blob


def pretrained(train_if_missing: bool = True) -> TinyGPT:
    """The shipped trained model (verified); trained with ``RECIPE`` and saved if the file is missing."""
    if not CHECKPOINT_PATH.is_file():
        if not train_if_missing:
            raise FileNotFoundError(f"no checkpoint at {CHECKPOINT_PATH}; call pretrained(train_if_missing=True)")
        save(train_again())
    return load()[0]
