"""A small decoder-only transformer (GPT-style) written from scratch, for chapter 16.

``TinyGPT(GPTConfig(...))`` maps token ids ``[B, T]`` (int64, ``T <= config.context``) to next-token
logits ``[B, T, vocab_size]``. Each of ``n_layer`` blocks is pre-LayerNorm (Radford et al. 2019)::

    x = x + attn.proj( causal_softmax(q kᵀ / √d_head) v )     q, k, v = attn.qkv(ln1(x)).split(d)
    x = x + mlp.fc2( gelu( mlp.fc1(ln2(x)) ) )

Decoding one token at a time can keep the keys and values of the positions already seen
(``KVCache``; ``model(ids, cache=cache)``): each step then runs every linear layer on one position
(a matrix-vector product) instead of the whole window — the regime where weight memory, not
arithmetic, sets the speed.

The four ``nn.Linear`` layers of every block (``attn.qkv`` d→3d, ``attn.proj`` d→d, ``mlp.fc1`` d→4d,
``mlp.fc2`` 4d→d) hold almost every weight; they are what GPTQ, AWQ, SmoothQuant and LLM.int8()
quantize (``linear_layers``). The embeddings and the output head stay in float32, as in those papers.

Explained in notebooks/16_transformer_compression.ipynb
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

from labkit.validate import require_bool, require_float, require_int


@dataclass(frozen=True)
class GPTConfig:
    """Sizes of a ``TinyGPT``: vocabulary, context length ``T``, width ``d``, heads, blocks."""

    vocab_size: int = 103
    context: int = 64
    d_model: int = 128
    n_head: int = 4
    n_layer: int = 3

    def __post_init__(self):
        for name, low in (("vocab_size", 2), ("context", 1), ("d_model", 2), ("n_head", 1), ("n_layer", 1)):
            require_int(name, getattr(self, name), low, None)
        if self.d_model % self.n_head:
            raise ValueError(f"n_head must divide d_model={self.d_model}, got {self.n_head}")

    def to_dict(self) -> dict:
        return asdict(self)


class KVCache:
    """The keys and values a ``TinyGPT`` computed for the positions it has seen, per block: float32
    ``[B, n_head, length, d_head]`` each. ``model(ids, cache=cache)`` appends the new positions and
    attends over all of them, so a decoding step costs one position, not the window. ``length``: the
    positions held (at most the model's context; the positional embeddings end there)."""

    def __init__(self, n_layer: int):
        n_layer = require_int("n_layer", n_layer, 1, None)
        self.keys: list = [None] * n_layer
        self.values: list = [None] * n_layer

    @property
    def length(self) -> int:
        return 0 if self.keys[-1] is None else self.keys[-1].shape[2]

    def extend(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append block ``layer``'s new keys/values ``[B, H, t, d_h]``; returns all of them ``[B, H, past + t, d_h]``."""
        if self.keys[layer] is not None:
            k, v = torch.cat([self.keys[layer], k], dim=2), torch.cat([self.values[layer], v], dim=2)
        self.keys[layer], self.values[layer] = k, v
        return k, v


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention: ``proj(softmax(q kᵀ/√d_h + mask) v)`` on ``[B, T, d]``; with a
    ``KVCache`` the ``T`` new positions attend to the cached ones too (position ``past + i`` sees ``0 … past + i``)."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.n_head = config.n_head
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model)
        self.proj = nn.Linear(config.d_model, config.d_model)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=2)
        q, k, v = (z.view(b, t, self.n_head, d // self.n_head).transpose(1, 2) for z in (q, k, v))
        past = 0 if cache is None or cache.keys[layer] is None else cache.keys[layer].shape[2]
        if cache is not None:
            k, v = cache.extend(layer, k, v)
        if past == 0:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        elif t == 1:                       # one new position: it sees every cached one, no mask
            y = F.scaled_dot_product_attention(q, k, v)
        else:
            mask = torch.ones(t, past + t, dtype=torch.bool).tril(past)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.proj(y.transpose(1, 2).reshape(b, t, d))


class MLP(nn.Module):
    """``fc2(gelu(fc1(x)))`` with a hidden width of ``4d``."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.fc1 = nn.Linear(config.d_model, 4 * config.d_model)
        self.fc2 = nn.Linear(4 * config.d_model, config.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    """One pre-LayerNorm transformer block: ``x + attn(ln1(x))`` then ``x + mlp(ln2(x))``."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(config.d_model)
        self.attn = CausalSelfAttention(config)
        self.ln2 = nn.LayerNorm(config.d_model)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), cache, layer)
        return x + self.mlp(self.ln2(x))


class TinyGPT(nn.Module):
    """Token + position embeddings → ``n_layer`` blocks → LayerNorm → linear head (logits)."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        if not isinstance(config, GPTConfig):
            raise TypeError(f"config must be a GPTConfig, got {type(config).__name__}")
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.d_model)
        self.pos_emb = nn.Embedding(config.context, config.d_model)
        self.blocks = nn.ModuleList([Block(config) for _ in range(config.n_layer)])
        self.ln_f = nn.LayerNorm(config.d_model)
        self.head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.apply(_init_weights)

    def forward(self, ids: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        """ids int64 ``[B, T]`` with ``1 <= T <= context`` and values in ``[0, vocab_size)`` → logits ``[B, T, V]``.
        With ``cache`` (a ``KVCache`` of this model's blocks) ``ids`` are the positions after the cached ones:
        they are appended, and ``cache.length + T`` must stay within the context."""
        ids = check_ids(ids, self.config)
        past = 0
        if cache is not None:
            if not isinstance(cache, KVCache) or len(cache.keys) != len(self.blocks):
                raise TypeError(f"cache must be a KVCache({len(self.blocks)}) of this model, got {cache!r}")
            past = cache.length
            if past + ids.shape[1] > self.config.context:
                raise ValueError(f"the KV cache holds {past} positions: {ids.shape[1]} more exceed the model's "
                                 f"context={self.config.context}")
        positions = torch.arange(past, past + ids.shape[1], device=ids.device)
        x = self.tok_emb(ids) + self.pos_emb(positions)
        for layer, block in enumerate(self.blocks):
            x = block(x, cache, layer)
        return self.head(self.ln_f(x))


def _init_weights(module: nn.Module) -> None:
    """GPT-2's initialisation: N(0, 0.02) for linear and embedding weights, zero biases."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)


def check_ids(ids, config: GPTConfig) -> torch.Tensor:
    """Refuse what the model cannot read: not an int tensor ``[B, T]``, ``T`` longer than the context,
    or ids outside the vocabulary (``TypeError``/``ValueError`` naming the limit)."""
    if not isinstance(ids, torch.Tensor) or ids.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"ids must be an int64 tensor [B, T], got {getattr(ids, 'dtype', type(ids).__name__)}")
    if ids.dim() != 2 or ids.shape[0] == 0 or ids.shape[1] == 0:
        raise ValueError(f"ids must have shape [B, T] with B, T >= 1, got {tuple(ids.shape)}")
    if ids.shape[1] > config.context:
        raise ValueError(f"the context T={ids.shape[1]} is longer than the model's context={config.context}; "
                         f"feed at most the last {config.context} ids")
    if int(ids.min()) < 0 or int(ids.max()) >= config.vocab_size:
        raise ValueError(f"ids must lie in [0, {config.vocab_size - 1}] (the vocabulary)")
    return ids.long()


def linear_layers(model: TinyGPT) -> dict[str, nn.Linear]:
    """The quantizable layers ``{"blocks.0.attn.qkv": nn.Linear, ...}`` in forward order (not the head)."""
    if not isinstance(model, TinyGPT):
        raise TypeError(f"model must be a TinyGPT, got {type(model).__name__}")
    names = ("attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2")
    return {f"blocks.{i}.{n}": block.get_submodule(n) for i, block in enumerate(model.blocks) for n in names}


@torch.no_grad()
def generate(model: TinyGPT, prompt_ids: torch.Tensor, new_tokens: int, *, temperature: float = 0.0,
             seed: int = 0, use_cache: bool = False) -> torch.Tensor:
    """Continue ``prompt_ids`` (int64 ``[T0]``) by ``new_tokens`` ids: greedy when ``temperature == 0``,
    otherwise sampled from ``softmax(logits / temperature)`` with a seeded generator. Returns ``[T0 + n]``;
    the model sees at most its last ``context`` ids. With ``use_cache`` the prompt runs once and each
    step feeds only the newest id (``KVCache``) while the sequence fits the context; past it the window
    slides, every position moves, and each step runs the whole window again (as without the cache).
    Both give the same logits within float32 rounding."""
    new_tokens = require_int("new_tokens", new_tokens, 0, 100_000)
    temperature = require_float("temperature", temperature, 0.0, None)
    if not isinstance(prompt_ids, torch.Tensor):
        raise TypeError(f"prompt_ids must be an int64 tensor [T0], got {type(prompt_ids).__name__}")
    check_ids(prompt_ids.reshape(1, -1)[:, -model.config.context:], model.config)   # refuse bad ids early
    ids = prompt_ids.reshape(-1).long().clone()
    gen = torch.Generator().manual_seed(seed)
    cache = KVCache(len(model.blocks)) if require_bool("use_cache", use_cache) else None
    for _ in range(new_tokens):
        if cache is not None and len(ids) <= model.config.context:
            logits = model(ids[cache.length:].unsqueeze(0), cache=cache)[0, -1]
        else:
            logits = model(ids[-model.config.context:].unsqueeze(0))[0, -1]
        if temperature == 0:
            nxt = logits.argmax()
        else:
            nxt = torch.multinomial(torch.softmax(logits / temperature, -1), 1, generator=gen)[0]
        ids = torch.cat([ids, nxt.view(1)])
    return ids
