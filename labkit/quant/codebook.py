"""Codebook quantization: k-means weight sharing with centroid fine-tuning, and product quantization.

Papers:
- Han, Mao, Dally. "Deep Compression: Compressing Deep Neural Networks with Pruning, Trained
  Quantization and Huffman Coding." ICLR 2016 (stage 2: k-means weight sharing).
- Gong, Liu, Yang, Bourdev. "Compressing Deep Convolutional Networks using Vector Quantization."
  arXiv:1412.6115, 2014; Jégou, Douze, Schmid. "Product Quantization for Nearest Neighbor
  Search." TPAMI 2011 (product quantization).

Weight sharing stores, per layer, a small *codebook* of ``k = 2^b`` float centroids and one ``b``-bit
*index* per weight; the layer computes with ``W = codebook[indices]``. The indices are fixed after
clustering and only the centroids are fine-tuned: the gradient of a centroid is the sum of the
gradients of the weights that share it, ``∂L/∂c_k = Σ_{i: idx_i = k} ∂L/∂W_i``.

Bit widths here run from 1 to 8 (``ValueError`` otherwise, unlike the 1–16 of ``affine``): at most
``2^8 = 256`` codebook entries per layer or sub-space and an index that fits in one byte, which
covers Deep Compression's choices (8 bits for conv, 5 for fully connected layers).

Explained in notebooks/06_mixed_precision_vector_quantization.ipynb
"""
from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from labkit import architecture, measure
from labkit.quant.affine import check_bits
from labkit.validate import require_choice, require_float, require_float_tensor, require_int, require_module

INITS = ("linear", "density", "random")

INDEX_BITS = (1, 8)  # bits per codebook index: 2..256 centroids, an index packs into at most one byte

__all__ = [
    "INITS", "kmeans_quantize", "cluster_gradients", "WeightSharing", "apply_weight_sharing",
    "codebook_parameters", "finetune_codebooks", "ProductQuantized", "product_quantize",
    "pq_compression_ratio", "packed_index_bytes", "pack_indices", "unpack_indices",
    "weight_sharing_bytes", "weight_sharing_compression_ratio", "storage_report",
]


# --------------------------------------------------------------------------- 1-D k-means (scalar codebook)
def _init_centroids(values: torch.Tensor, k: int, init: str, generator: torch.Generator) -> torch.Tensor:
    """Han et al. §3.1: three ways to place the k initial centroids on the 1-D weights."""
    if init == "linear":      # evenly spaced over [min, max]: keeps a few centroids for the rare large weights
        return torch.linspace(values.min().item(), values.max().item(), k, dtype=values.dtype)
    if init == "density":     # evenly spaced on the CDF's y-axis: quantiles, crowded where weights are
        ranks = torch.linspace(0, values.numel() - 1, k).round().long()
        return values.sort().values[ranks]
    pick = torch.randint(values.numel(), (k,), generator=generator) if values.numel() < k \
        else torch.randperm(values.numel(), generator=generator)[:k]
    return values[pick].sort().values  # "random" (Forgy): k weights drawn from the data


def _assign_1d(values: torch.Tensor, sorted_centroids: torch.Tensor) -> torch.Tensor:
    """Nearest centroid of every value: in 1-D the boundaries are the midpoints of sorted centroids."""
    mid = (sorted_centroids[1:] + sorted_centroids[:-1]) / 2
    return torch.bucketize(values, mid)


def _lloyd_1d(values: torch.Tensor, k: int, init: str, iters: int, generator: torch.Generator):
    """Lloyd's algorithm on a 1-D float64 tensor -> (sorted centroids [k], indices [n])."""
    c = _init_centroids(values, k, init, generator).sort().values
    for _ in range(iters):
        idx = _assign_1d(values, c)
        sums = torch.zeros(k, dtype=values.dtype).index_add_(0, idx, values)
        counts = torch.bincount(idx, minlength=k).to(values.dtype)
        new = torch.where(counts > 0, sums / counts.clamp_min(1), c)   # an empty cluster keeps its centroid
        new = new.sort().values
        if torch.equal(new, c):
            break
        c = new
    return c, _assign_1d(values, c)


def kmeans_quantize(w: torch.Tensor, bits: int, init: str = "linear", iters: int = 30,
                    keep_zeros: bool = False, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Cluster the values of ``w`` into ``k = 2^bits`` centroids with Lloyd's k-means.

    Minimises ``Σ_i (w_i - c_{idx_i})²``: alternately assign each weight to its nearest centroid and
    move each centroid to the mean of its weights. ``init``: ``"linear"`` (evenly over
    ``[min w, max w]``, the paper's choice), ``"density"`` (quantiles) or ``"random"`` (seeded by
    ``seed``). With ``keep_zeros`` (weights pruned before) exact zeros are not clustered: entry 0 of
    the codebook is fixed at 0.0 and they point at it; the other ``k - 1`` centroids cluster the
    non-zeros. Returns ``(codebook [k] float32 sorted, indices int64 of w's shape)`` with
    ``codebook[indices] ≈ w``. ``bits`` in [1, 8].
    Explained in notebooks/06_mixed_precision_vector_quantization.ipynb
    """
    require_float_tensor("w", w, allow_empty=False)
    bits = check_bits(bits, *INDEX_BITS)
    require_choice("init", init, INITS)
    iters = require_int("iters", iters, 0, 10_000)
    if not isinstance(keep_zeros, bool):
        raise TypeError(f"keep_zeros must be a bool, got {type(keep_zeros).__name__}")
    generator = torch.Generator().manual_seed(require_int("seed", seed, 0))
    values = w.detach().reshape(-1).cpu().double()
    k = 2 ** bits
    if not keep_zeros:
        codebook, idx = _lloyd_1d(values, k, init, iters, generator)
    else:
        nz = values != 0
        codebook = torch.zeros(k, dtype=values.dtype)
        idx = torch.zeros(values.numel(), dtype=torch.int64)
        if nz.any() and k > 1:
            c, i = _lloyd_1d(values[nz], k - 1, init, iters, generator)
            codebook[1:], idx[nz] = c, i + 1
    return codebook.float().to(w.device), idx.reshape(w.shape).to(w.device)


def cluster_gradients(grad: torch.Tensor, indices: torch.Tensor, num_clusters: int) -> torch.Tensor:
    """Gradient of each centroid: ``g_k = Σ_{i: indices_i = k} grad_i`` (Han et al. Fig. 3), ``[num_clusters]``.

    Autograd computes exactly this for ``codebook[indices]`` (the backward of a gather is a
    scatter-add); this explicit version is for the notebook and the tests.
    Explained in notebooks/06_mixed_precision_vector_quantization.ipynb
    """
    if grad.shape != indices.shape:
        raise ValueError(f"indices must have the shape of grad {tuple(grad.shape)}, got {tuple(indices.shape)}")
    num_clusters = require_int("num_clusters", num_clusters, 1)
    out = torch.zeros(num_clusters, dtype=grad.dtype, device=grad.device)
    return out.index_add_(0, indices.reshape(-1), grad.reshape(-1))


# --------------------------------------------------------------------------- the weight-sharing layer
class WeightSharing(nn.Module):
    """A Linear or Conv2d whose weight is ``codebook[indices]``: ``k`` trainable floats + fixed indices.

    ``codebook`` is an ``nn.Parameter [2^bits]``, ``indices`` an int64 buffer of the weight's shape,
    ``bias`` a copy of the layer's bias (frozen during :func:`finetune_codebooks` unless asked).
    The backward of the gather ``codebook[indices]`` sums the weight gradients per cluster, which is
    Han et al.'s centroid update. With ``keep_zeros`` codebook entry 0 stays exactly 0. ``bits`` in [1, 8].
    Explained in notebooks/06_mixed_precision_vector_quantization.ipynb
    """

    def __init__(self, module: nn.Module, bits: int, init: str = "linear", iters: int = 30,
                 keep_zeros: bool = False, seed: int = 0):
        super().__init__()
        if not isinstance(module, (nn.Linear, nn.Conv2d)):
            raise TypeError(f"module must be an nn.Linear or nn.Conv2d, got {type(module).__name__}")
        if isinstance(module, nn.Conv2d) and module.padding_mode != "zeros":
            raise ValueError(f"module.padding_mode must be 'zeros', got {module.padding_mode!r}")
        codebook, indices = kmeans_quantize(module.weight.detach(), bits, init, iters, keep_zeros, seed)
        self.bits, self.keep_zeros = bits, keep_zeros
        self.codebook = nn.Parameter(codebook.to(module.weight.dtype))
        self.register_buffer("indices", indices)
        fixed = torch.zeros(codebook.numel(), dtype=torch.bool, device=codebook.device)
        fixed[0] = keep_zeros
        self.register_buffer("fixed_zero", fixed)
        bias = None if module.bias is None else nn.Parameter(module.bias.detach().clone())
        self.register_parameter("bias", bias)
        self.kind = "linear" if isinstance(module, nn.Linear) else "conv2d"
        if self.kind == "conv2d":
            self.conv_args = dict(stride=module.stride, padding=module.padding, dilation=module.dilation,
                                  groups=module.groups)

    @property
    def weight(self) -> torch.Tensor:
        """The shared weight ``codebook[indices]`` (entry 0 forced to 0 when ``keep_zeros``)."""
        codebook = torch.where(self.fixed_zero, torch.zeros_like(self.codebook), self.codebook)
        return codebook[self.indices]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "linear":
            return F.linear(x, self.weight, self.bias)
        return F.conv2d(x, self.weight, self.bias, **self.conv_args)

    def extra_repr(self) -> str:
        return f"{self.kind}, weight={tuple(self.indices.shape)}, bits={self.bits}, keep_zeros={self.keep_zeros}"


def _describe_sharing(m: WeightSharing) -> dict:
    """The shape of the shared layer, its bits and whether entry 0 is a fixed zero (labkit.architecture)."""
    shape = list(m.indices.shape)
    args = {"kind": m.kind, "shape": shape, "bits": m.bits, "keep_zeros": m.keep_zeros, "bias": m.bias is not None}
    if m.kind == "conv2d":
        args["conv_args"] = {k: list(v) if isinstance(v, tuple) else v for k, v in m.conv_args.items()}
    return args


def _build_sharing(args: dict, children: dict) -> WeightSharing:
    """A WeightSharing layer of the described shape; its codebook, indices and bias are loaded after."""
    out_f, in_f = args["shape"][0], args["shape"][1]
    if args["kind"] == "linear":
        layer = nn.Linear(in_f, out_f, bias=args["bias"])
    else:
        conv = {k: tuple(v) if isinstance(v, list) else v for k, v in args["conv_args"].items()}
        layer = nn.Conv2d(in_f * conv["groups"], out_f, tuple(args["shape"][2:]), bias=args["bias"], **conv)
    return WeightSharing(layer, args["bits"], iters=0, keep_zeros=args["keep_zeros"])


architecture.register_module(WeightSharing, _describe_sharing, _build_sharing)  # zoo.save_checkpoint works


def apply_weight_sharing(model: nn.Module, bits, init: str = "linear", iters: int = 30,
                         keep_zeros: bool = False, seed: int = 0) -> nn.Module:
    """A deep copy of ``model`` with every Linear / Conv2d replaced by a :class:`WeightSharing` layer.

    ``bits`` is an int for every layer, or a ``{layer name: bits}`` mapping (layers left out stay
    float; Han et al. used 8 bits for conv and 5 for fully connected layers), each in [1, 8].
    ``model`` is not changed.
    Explained in notebooks/06_mixed_precision_vector_quantization.ipynb
    """
    require_module("model", model)
    names = [n for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    if isinstance(bits, Mapping):
        unknown = sorted(set(bits) - set(names))
        if unknown:
            raise ValueError(f"bits names layers that are not Linear/Conv2d in model: {unknown}; "
                             f"valid names: {names}")
        plan = {n: check_bits(b, *INDEX_BITS) for n, b in bits.items()}
    else:
        plan = {n: check_bits(bits, *INDEX_BITS) for n in names}
    if not plan:
        raise ValueError("model has no nn.Linear or nn.Conv2d layer to quantize")
    model = copy.deepcopy(model)
    for name, b in plan.items():
        model.set_submodule(name, WeightSharing(model.get_submodule(name), b, init, iters, keep_zeros, seed))
    return model


def codebook_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The ``codebook`` parameters of every :class:`WeightSharing` layer in ``model``."""
    return [m.codebook for m in model.modules() if isinstance(m, WeightSharing)]


def _batches(data, batch_size: int, generator: torch.Generator):
    if isinstance(data, torch.utils.data.Dataset):
        return torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=True, generator=generator)
    if isinstance(data, tuple) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data):
        return [data]
    return data   # any iterable of (x, y) batches, e.g. a DataLoader


def finetune_codebooks(model: nn.Module, data, epochs: int = 1, lr: float = 1e-3, loss_fn=None,
                       optimizer: str = "adam", train_bias: bool = False, batch_size: int = 64,
                       seed: int = 0) -> list[float]:
    """Fine-tune only the centroids of the :class:`WeightSharing` layers; indices stay fixed.

    ``data`` is a Dataset, a DataLoader / iterable of ``(x, y)`` batches, or one ``(x, y)`` tuple.
    Each step: ``c_k ← c_k - lr · Σ_{i: idx_i = k} ∂L/∂W_i`` (plain ``"sgd"``; ``"adam"`` rescales the
    step). Every other parameter is frozen for the duration (biases too unless ``train_bias``) and
    its ``requires_grad`` restored afterwards. ``loss_fn(output, y)`` defaults to cross-entropy.
    Returns the mean training loss of each epoch. The model is left in ``eval()`` mode.
    Explained in notebooks/06_mixed_precision_vector_quantization.ipynb
    """
    from labkit import train  # lazily, as qat.fit_progressive: `import labkit.quant` stays light

    require_module("model", model)
    epochs = require_int("epochs", epochs, 1)
    lr = require_float("lr", lr, 0.0, None, low_open=True)
    require_choice("optimizer", optimizer, ("adam", "sgd"))
    batch_size = require_int("batch_size", batch_size, 1)
    loss_fn = F.cross_entropy if loss_fn is None else loss_fn
    layers = [m for m in model.modules() if isinstance(m, WeightSharing)]
    if not layers:
        raise ValueError("model has no WeightSharing layer: call apply_weight_sharing first")
    trainable = [m.codebook for m in layers] + ([m.bias for m in layers if m.bias is not None] if train_bias else [])
    saved = {p: p.requires_grad for p in model.parameters()}
    generator = torch.Generator().manual_seed(require_int("seed", seed, 0))
    opt_cls = torch.optim.Adam if optimizer == "adam" else torch.optim.SGD
    opt = opt_cls(trainable, lr=lr)
    history = []
    try:
        for p in model.parameters():
            p.requires_grad_(any(p is t for t in trainable))
        model.train()
        for _ in range(epochs):
            batches = _batches(data, batch_size, generator)
            loss, _ = train.run_epoch(batches, lambda batch: (loss_fn(model(batch[0]), batch[1]), None, batch[1]), opt,
                                      advice=f"lower lr (got {lr}) or check loss_fn")
            history.append(loss)
    finally:
        for p, flag in saved.items():
            p.requires_grad_(flag)
        model.eval()
    return history


# --------------------------------------------------------------------------- product quantization
@dataclass
class ProductQuantized:
    """A product-quantized weight: ``codebooks [m, k, d]``, ``codes [rows, m]`` int64, original ``shape``.

    Row ``r`` is rebuilt as the concatenation ``[codebooks[0, codes[r,0]], …, codebooks[m-1, codes[r,m-1]]]``.
    """
    codebooks: torch.Tensor
    codes: torch.Tensor
    shape: tuple

    def reconstruct(self) -> torch.Tensor:
        """The approximate weight, of the original shape."""
        m = self.codebooks.shape[0]
        picked = self.codebooks[torch.arange(m).unsqueeze(0), self.codes]    # [rows, m, d]
        return picked.reshape(self.shape)

    def storage_bytes(self) -> int:
        """float32 codebooks plus codes packed at ``log2 k`` bits each."""
        m, k, d = self.codebooks.shape
        return 4 * m * k * d + packed_index_bytes(self.codes.numel(), int(math.log2(k)))


def _kmeans_vectors(x: torch.Tensor, k: int, iters: int, generator: torch.Generator):
    """Batched Lloyd's k-means: ``x [m, n, d]`` -> centroids ``[m, k, d]``, codes ``[m, n]``."""
    m, n, d = x.shape
    start = torch.stack([torch.randperm(n, generator=generator)[:k] for _ in range(m)])   # Forgy init
    c = torch.gather(x, 1, start.unsqueeze(-1).expand(m, k, d)).clone()
    offset = (torch.arange(m) * k).unsqueeze(1)           # flatten (sub-space, cluster) to one index
    for _ in range(iters + 1):
        codes = torch.cdist(x, c).argmin(dim=2)            # [m, n]
        if _ == iters:
            break
        flat = (codes + offset).reshape(-1)
        sums = torch.zeros(m * k, d, dtype=x.dtype).index_add_(0, flat, x.reshape(-1, d))
        counts = torch.bincount(flat, minlength=m * k).to(x.dtype).unsqueeze(1)
        new = torch.where(counts > 0, sums / counts.clamp_min(1), c.reshape(-1, d)).reshape(m, k, d)
        if torch.equal(new, c):
            break
        c = new
    return c, codes


def product_quantize(w: torch.Tensor, sub_dim: int, bits: int, iters: int = 30, seed: int = 0) -> ProductQuantized:
    """Product quantization of a weight ``[rows, cols]`` (a conv weight is viewed as ``[out, in·kh·kw]``).

    Each row is split into ``m = cols / sub_dim`` sub-vectors of ``sub_dim`` consecutive columns;
    sub-space ``j`` gets its own k-means codebook of ``k = 2^bits`` codewords (fitted on the ``rows``
    sub-vectors), and each sub-vector is stored as the ``bits``-bit code of its nearest codeword.
    Storage ``32·m·k·d + rows·m·bits`` bits instead of ``32·rows·cols`` (:func:`pq_compression_ratio`).
    ``sub_dim`` must divide ``cols``; ``2^bits`` must not exceed ``rows``; ``bits`` in [1, 8].
    Explained in notebooks/06_mixed_precision_vector_quantization.ipynb
    """
    require_float_tensor("w", w, allow_empty=False)
    if w.dim() < 2:
        raise ValueError(f"w must have at least 2 dimensions [rows, cols, ...], got shape {tuple(w.shape)}")
    bits = check_bits(bits, *INDEX_BITS)
    rows, cols = w.shape[0], w[0].numel()
    sub_dim = require_int("sub_dim", sub_dim, 1, cols)
    if cols % sub_dim:
        raise ValueError(f"sub_dim must divide the number of columns {cols}, got {sub_dim}")
    k = 2 ** bits
    if k > rows:
        raise ValueError(f"bits must satisfy 2**bits <= rows ({rows}) so every codeword can be a row's "
                         f"sub-vector, got bits={bits} (2**bits={k})")
    iters = require_int("iters", iters, 0, 10_000)
    generator = torch.Generator().manual_seed(require_int("seed", seed, 0))
    m = cols // sub_dim
    x = w.detach().reshape(rows, m, sub_dim).transpose(0, 1).cpu().float()      # [m, rows, d]
    codebooks, codes = _kmeans_vectors(x, k, iters, generator)
    return ProductQuantized(codebooks.to(w.dtype), codes.T.contiguous(), tuple(w.shape))


def pq_compression_ratio(rows: int, cols: int, sub_dim: int, bits: int, float_bits: int = 32) -> float:
    """``(float_bits · rows · cols) / (float_bits · m · 2^bits · sub_dim + rows · m · bits)``, ``m = cols / sub_dim``.

    ``bits`` in [1, 8].
    Explained in notebooks/06_mixed_precision_vector_quantization.ipynb
    """
    rows, cols = require_int("rows", rows, 1), require_int("cols", cols, 1)
    sub_dim, bits = require_int("sub_dim", sub_dim, 1, cols), check_bits(bits, *INDEX_BITS)
    float_bits = require_int("float_bits", float_bits, 1, 64)
    if cols % sub_dim:
        raise ValueError(f"sub_dim must divide cols {cols}, got {sub_dim}")
    m = cols // sub_dim
    return (float_bits * rows * cols) / (float_bits * m * 2 ** bits * sub_dim + rows * m * bits)


# --------------------------------------------------------------------------- storage
def packed_index_bytes(num_indices: int, bits: int) -> int:
    """Bytes to store ``num_indices`` indices of ``bits`` bits each back to back: ``⌈n·b / 8⌉``;
    ``bits`` in [1, 8]."""
    return math.ceil(require_int("num_indices", num_indices, 0) * check_bits(bits, *INDEX_BITS) / 8)


def pack_indices(indices: torch.Tensor, bits: int) -> bytes:
    """Codebook indices in ``[0, 2^bits)`` as ``measure.pack_bits`` bytes: ``bits`` per index, LSB-first.

    The one bit order of every labkit file (``measure.pack_bits``: index ``i`` fills stream bits
    ``i·bits … i·bits + bits − 1``, least significant first; stream bit ``j`` is bit ``j % 8`` of byte
    ``j // 8``). ``len(result) == packed_index_bytes(indices.numel(), bits)``; :func:`unpack_indices`
    inverts it. ``indices`` an integer tensor of any shape (flattened); ``bits`` in [1, 8].
    Explained in notebooks/06_mixed_precision_vector_quantization.ipynb.
    """
    bits = check_bits(bits, *INDEX_BITS)
    if not isinstance(indices, torch.Tensor) or indices.is_floating_point() or indices.is_complex():
        raise TypeError("indices must be an integer torch.Tensor")
    return measure.pack_bits(indices.detach().reshape(-1).cpu().numpy(), bits, name="indices")


def unpack_indices(data: bytes, bits: int, count: int) -> torch.Tensor:
    """Inverse of :func:`pack_indices`: the first ``count`` indices, int64 ``[count]``; ``bits`` in [1, 8]."""
    bits = check_bits(bits, *INDEX_BITS)
    return torch.from_numpy(measure.unpack_bits(data, bits, count).astype(np.int64))


def weight_sharing_bytes(num_weights: int, bits: int, codebook_bytes_per_entry: int = 4) -> int:
    """Bytes of one shared layer: ``2^bits`` codebook entries plus ``⌈n·bits / 8⌉`` packed indices;
    ``bits`` in [1, 8]."""
    num_weights = require_int("num_weights", num_weights, 0)
    entry = require_int("codebook_bytes_per_entry", codebook_bytes_per_entry, 1, 8)
    return 2 ** check_bits(bits, *INDEX_BITS) * entry + packed_index_bytes(num_weights, bits)


def weight_sharing_compression_ratio(num_weights: int, bits: int) -> float:
    """Han et al.'s ratio ``r = 32·n / (n·bits + 32·2^bits)`` against float32 (codebook included);
    ``bits`` in [1, 8]."""
    num_weights = require_int("num_weights", num_weights, 1)
    return 4 * num_weights / weight_sharing_bytes(num_weights, bits)


def storage_report(model: nn.Module) -> dict[str, dict[str, float]]:
    """``{layer: {"num_weights", "bits", "fp32_bytes", "shared_bytes", "ratio"}}`` for each WeightSharing layer.

    Weights only (biases, kept in float32, are not counted on either side).
    Explained in notebooks/06_mixed_precision_vector_quantization.ipynb
    """
    require_module("model", model)
    report = {}
    for name, m in model.named_modules():
        if isinstance(m, WeightSharing):
            n = m.indices.numel()
            shared = weight_sharing_bytes(n, m.bits)
            report[name] = {"num_weights": n, "bits": m.bits, "fp32_bytes": 4 * n,
                            "shared_bytes": shared, "ratio": 4 * n / shared}
    return report
