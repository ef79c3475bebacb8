"""The text a small language model learns: Python's own documentation, character by character.

``load_text()`` returns the English documentation topics that CPython ships as ``pydoc_data`` (the pages
``help("if")`` prints), shipped here as ``data/pydoc_topics.txt.gz`` (PSF licence, see
``data/README.md``) and checked against its SHA-256. A ``CharVocab`` maps each of its 103 distinct
characters to an integer id; ``split_ids`` cuts the id sequence into a training part and a held-out
tail (the last ``held_out`` fraction, never seen in training); ``random_windows`` draws the training
batches (``[B, T+1]`` windows: inputs are the first ``T`` ids, targets the last ``T``).

Explained in notebooks/16_transformer_compression.ipynb
"""
from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch

from labkit.validate import require_float, require_int

TEXT_PATH = Path(__file__).resolve().parent / "data" / "pydoc_topics.txt.gz"
TEXT_SHA256 = "71f2ff5d99bdc1f9c48c5c2353ad138201c5ca1c377e0226857ef8fa89b8bcee"
HELD_OUT = 0.1


class CorpusError(ValueError):
    """The shipped text is missing or differs from the one the checkpoint was trained on."""


@lru_cache(maxsize=1)
def load_text() -> str:
    """The corpus as one string (465,126 characters), verified against ``TEXT_SHA256``."""
    try:
        raw = gzip.decompress(TEXT_PATH.read_bytes())
    except (OSError, EOFError) as err:
        raise CorpusError(f"cannot read the corpus {TEXT_PATH}: {err}; reinstall labkit") from err
    digest = hashlib.sha256(raw).hexdigest()
    if digest != TEXT_SHA256:
        raise CorpusError(f"{TEXT_PATH} has SHA-256 {digest}, expected {TEXT_SHA256}; reinstall labkit")
    return raw.decode("utf-8")


@dataclass(frozen=True)
class CharVocab:
    """Characters ↔ integer ids (``chars[i]`` is id ``i``, sorted by code point)."""

    chars: str

    @classmethod
    def from_text(cls, text: str) -> "CharVocab":
        """The vocabulary of every distinct character in ``text``."""
        if not isinstance(text, str) or not text:
            raise ValueError("text must be a non-empty str")
        return cls("".join(sorted(set(text))))

    @property
    def size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> torch.Tensor:
        """``text`` → int64 ids ``[len(text)]``; a character outside the vocabulary raises ``ValueError``."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        index = {c: i for i, c in enumerate(self.chars)}
        unknown = sorted(set(text) - index.keys())
        if unknown:
            raise ValueError(f"text holds characters outside the vocabulary: {''.join(unknown[:10])!r}")
        return torch.tensor([index[c] for c in text], dtype=torch.int64)

    def decode(self, ids) -> str:
        """int ids (any 1-D sequence or tensor) → text."""
        ids = torch.as_tensor(ids).reshape(-1).tolist()
        if any(not 0 <= i < self.size for i in ids):
            raise ValueError(f"ids must lie in [0, {self.size - 1}]")
        return "".join(self.chars[i] for i in ids)


def vocab() -> CharVocab:
    """The vocabulary of the shipped corpus (103 characters)."""
    return CharVocab.from_text(load_text())


@lru_cache(maxsize=1)
def _encoded_corpus() -> torch.Tensor:
    return vocab().encode(load_text())


def split_ids(held_out: float = HELD_OUT) -> tuple[torch.Tensor, torch.Tensor]:
    """``(train_ids, held_out_ids)``: the corpus encoded (once per process), cut at ``1 - held_out``
    of its length; fresh copies, so changing them changes nothing for the next caller."""
    held_out = require_float("held_out", held_out, 0.0, 1.0, low_open=True, high_open=True)
    ids = _encoded_corpus()
    cut = int(len(ids) * (1 - held_out))
    return ids[:cut].clone(), ids[cut:].clone()


def random_windows(ids: torch.Tensor, batch_size: int, context: int, generator: torch.Generator) -> torch.Tensor:
    """``batch_size`` windows of ``context + 1`` consecutive ids at random offsets: int64 ``[B, T+1]``."""
    batch_size = require_int("batch_size", batch_size, 1, None)
    context = require_int("context", context, 1, None)
    if len(ids) < context + 1:
        raise ValueError(f"ids must hold at least context + 1 = {context + 1} ids, got {len(ids)}")
    starts = torch.randint(0, len(ids) - context, (batch_size,), generator=generator)
    return torch.stack([ids[s:s + context + 1] for s in starts.tolist()])
