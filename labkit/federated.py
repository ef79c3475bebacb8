"""Federated learning's communication cost: FedAvg with client updates compressed before they are sent.

In federated learning (McMahan, Moore, Ramage, Hampson, Agüera y Arcas, "Communication-Efficient
Learning of Deep Networks from Decentralized Data", AISTATS 2017 — FedAvg) the training data stay on
the clients. Each round the server sends the global weights ``w``; each client ``k`` trains a copy on
its own shard for a few local steps and sends back its update ``Δ_k = w_k − w``; the server averages
the updates weighted by shard size, ``w ← w + Σ_k (n_k/n)·Δ_k``. The uplink — every client sending a
whole model every round — is the bottleneck, which is why seed 000 §5.4 and seed 002 §8.2.2 list
compression for federated learning. An ``UpdateCodec`` turns ``Δ_k`` into the bytes a client would
really send and back; the server only ever sees the decoded bytes, so "bytes sent" is ``len(payload)``,
not a formula:

- ``float32``: the raw update, 4 bytes a weight;
- ``quantize`` to ``bits`` ∈ [1, 8] per weight, per tensor: for b ≥ 2 a scale ``s = max|Δ|`` and codes
  ``c = ⌊Δ·L/s + u⌋ ∈ [−L, L]``, ``L = 2^(b−1) − 1``, ``u ~ U[0, 1)`` (stochastic rounding: unbiased,
  ``E[c·s/L] = Δ`` — QSGD, Alistarh et al. NeurIPS 2017); for b = 1 the sign with the scale ``mean|Δ|``
  (signSGD-like, biased); codes bit-packed (``labkit.measure.pack_bits``) after a float32 scale;
- ``topk``: the ``keep_fraction`` of entries largest in magnitude, per tensor, sent as uint32 indices
  and float32 values (8 bytes each) — the rest is dropped;
- ``error_feedback``: a client adds to its next update what compression dropped from its last one
  (Seide et al. 2014's 1-bit SGD; Stich, Cordonnier & Jaggi, NeurIPS 2018), so nothing is lost for good.

Only the uplink is compressed; the downlink (the server's model) is float32 and is counted apart.
Explained in notebooks/15_robustness_faq_trends.ipynb.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import TensorDataset
from tqdm.auto import tqdm

from labkit import measure, train
from labkit.validate import require_choice, require_float, require_int, require_module

METHODS = ("float32", "quantize", "topk")


@dataclass(frozen=True)
class UpdateCodec:
    """How a client encodes its update: ``method`` in ``METHODS``, ``bits`` (quantize, 1–8),
    ``keep_fraction`` (topk, in (0, 1]) and ``error_feedback``. ``encode``/``decode`` are exact inverses
    up to the compression itself. Explained in notebooks/15_robustness_faq_trends.ipynb."""

    method: str = "float32"
    bits: int = 8
    keep_fraction: float = 0.1
    error_feedback: bool = False

    def __post_init__(self):
        require_choice("method", self.method, METHODS)
        require_int("bits", self.bits, 1, 8)
        require_float("keep_fraction", self.keep_fraction, 0.0, 1.0, low_open=True)
        if not isinstance(self.error_feedback, bool):
            raise TypeError(f"error_feedback must be a bool, got {type(self.error_feedback).__name__}")

    @property
    def label(self) -> str:
        """A short name: ``float32``, ``8-bit``, ``top 1 %``, with ``+ EF`` for error feedback."""
        text = {"float32": "float32", "quantize": f"{self.bits}-bit", "topk": f"top {self.keep_fraction:.0%}"}
        return text[self.method] + (" + EF" if self.error_feedback else "")

    def encode(self, update: dict[str, torch.Tensor], generator: torch.Generator) -> bytes:
        """The bytes sent for ``update`` (``{name: float tensor}``, in a fixed order)."""
        return b"".join(self._encode_tensor(t.detach().float().reshape(-1), generator) for t in update.values())

    def decode(self, payload: bytes, like: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The update the server reconstructs from ``payload``; ``like`` gives names and shapes."""
        out, view, offset = {}, memoryview(payload), 0
        for name, t in like.items():
            flat, offset = self._decode_tensor(view, offset, t.numel())
            out[name] = flat.reshape(t.shape)
        if offset != len(payload):
            raise ValueError(f"payload holds {len(payload)} bytes, the update needs {offset}")
        return out

    def _encode_tensor(self, x: torch.Tensor, generator: torch.Generator) -> bytes:
        if self.method == "float32":
            return x.numpy().astype("<f4").tobytes()
        if self.method == "topk":
            k = max(1, round(self.keep_fraction * x.numel()))
            index = x.abs().topk(k).indices.sort().values
            return index.numpy().astype("<u4").tobytes() + x[index].numpy().astype("<f4").tobytes()
        if self.bits == 1:
            scale = x.abs().mean()
            codes = (x >= 0).to(torch.int64)
        else:
            levels, scale = 2 ** (self.bits - 1) - 1, x.abs().max()
            scaled = x * levels / scale if scale > 0 else torch.zeros_like(x)
            codes = torch.floor(scaled + torch.rand(x.shape, generator=generator)).clamp(-levels, levels)
            codes = codes.to(torch.int64) + levels
        return np.float32(scale).tobytes() + measure.pack_bits(codes.numpy(), self.bits)

    def _decode_tensor(self, view: memoryview, offset: int, count: int) -> tuple[torch.Tensor, int]:
        if self.method == "float32":
            end = offset + 4 * count
            return torch.from_numpy(np.frombuffer(view[offset:end], "<f4").copy()), end
        if self.method == "topk":
            k = max(1, round(self.keep_fraction * count))
            index = np.frombuffer(view[offset:offset + 4 * k], "<u4").astype(np.int64)
            values = np.frombuffer(view[offset + 4 * k:offset + 8 * k], "<f4")
            flat = torch.zeros(count)
            flat[torch.from_numpy(index)] = torch.from_numpy(values.copy())
            return flat, offset + 8 * k
        scale = float(np.frombuffer(view[offset:offset + 4], "<f4")[0])
        n_bytes = -(-count * self.bits // 8)
        codes = torch.from_numpy(measure.unpack_bits(view[offset + 4:offset + 4 + n_bytes], self.bits, count)
                                 .astype(np.int64))
        if self.bits == 1:
            return (2 * codes - 1).float() * scale, offset + 4 + n_bytes
        levels = 2 ** (self.bits - 1) - 1
        return (codes - levels).float() * (scale / levels), offset + 4 + n_bytes


def split_clients(data: TensorDataset, clients: int, seed: int = 0) -> list[TensorDataset]:
    """``data`` shuffled with ``seed`` and cut into ``clients`` ≥ 1 shards of (almost) equal size — an
    IID split (every client sees every class). Explained in notebooks/15_robustness_faq_trends.ipynb."""
    x, y = data.tensors
    clients = require_int("clients", clients, 1, len(x))
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(require_int("seed", seed, 0, 2**63 - 1)))
    return [TensorDataset(x[part], y[part]) for part in order.tensor_split(clients)]


def _local_update(model: nn.Module, shard: TensorDataset, steps: int, lr: float, batch_size: int,
                  generator: torch.Generator) -> dict[str, torch.Tensor]:
    """``steps`` of plain SGD on random mini-batches of ``shard``; returns ``w_local − w`` per parameter."""
    start = {name: p.detach().clone() for name, p in model.named_parameters()}
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    x, y = shard.tensors
    model.train()
    for _ in range(steps):
        batch = torch.randint(len(x), (min(batch_size, len(x)),), generator=generator)
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x[batch]), y[batch]).backward()
        opt.step()
    return {name: p.detach() - start[name] for name, p in model.named_parameters()}


def federated_averaging(model: nn.Module, client_data: list[TensorDataset], test_data, *, rounds: int = 20,
                        local_steps: int = 10, lr: float = 0.1, batch_size: int = 32,
                        codec: UpdateCodec = UpdateCodec(), seed: int = 0, progress: bool = False) -> dict:
    """Train ``model`` in place with FedAvg over ``client_data`` (one shard per client) for ``rounds``.

    Every round every client copies the global model, runs ``local_steps`` of SGD (``lr``,
    ``batch_size``), encodes its update with ``codec``; the server decodes each payload and adds the
    shard-weighted average. Returns ``{"rounds": [{"round", "uplink_bytes", "accuracy"}],
    "uplink_bytes", "downlink_bytes", "correct"}``: cumulative bytes sent by all clients, test accuracy
    after each round and the final per-image results bool ``[N]`` (for ``labkit.stats``). ``seed`` fixes
    the mini-batches and the stochastic rounding. Explained in notebooks/15_robustness_faq_trends.ipynb.
    """
    require_module("model", model, dtypes=(torch.float32,))
    if not isinstance(client_data, (list, tuple)) or not client_data:
        raise ValueError("client_data must be a non-empty list of client shards (clients >= 1); "
                         "use split_clients(data, clients)")
    rounds, local_steps = require_int("rounds", rounds, 1, 10_000), require_int("local_steps", local_steps, 1, 100_000)
    lr, batch_size = require_float("lr", lr, 0.0, 10.0, low_open=True), require_int("batch_size", batch_size, 1, None)
    if not isinstance(codec, UpdateCodec):
        raise TypeError(f"codec must be an UpdateCodec, got {type(codec).__name__}")
    generator = torch.Generator().manual_seed(require_int("seed", seed, 0, 2**63 - 1))
    weights = torch.tensor([len(d) for d in client_data], dtype=torch.float32) / sum(len(d) for d in client_data)
    residuals = [None] * len(client_data)
    history, sent, model_bytes = [], 0, 4 * sum(p.numel() for p in model.parameters())
    for r in tqdm(range(1, rounds + 1), desc=f"FedAvg {codec.label}", disable=not progress, leave=False):
        total = {name: torch.zeros_like(p) for name, p in model.named_parameters()}
        for k, shard in enumerate(client_data):
            update = _local_update(copy.deepcopy(model), shard, local_steps, lr, batch_size, generator)
            if codec.error_feedback and residuals[k] is not None:
                update = {name: u + residuals[k][name] for name, u in update.items()}
            payload = codec.encode(update, generator)
            received = codec.decode(payload, update)
            if codec.error_feedback:
                residuals[k] = {name: update[name] - received[name] for name in update}
            sent += len(payload)
            for name in total:
                total[name] += weights[k] * received[name]
        with torch.no_grad():
            for name, p in model.named_parameters():
                p.add_(total[name])
        history.append({"round": r, "uplink_bytes": sent, "accuracy": train.evaluate(model, test_data)})
    return {"rounds": history, "uplink_bytes": sent, "downlink_bytes": rounds * len(client_data) * model_bytes,
            "correct": train.correct(model, test_data)}
