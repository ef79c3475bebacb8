"""Measuring a model honestly: parameters, non-zeros, MACs, latency and real bytes on disk.

``sys.getsizeof(model)`` answers "how big is the Python object that *points* at the weights?" —
a few dozen bytes, the same for a 10-parameter and a 10-million-parameter network. The size of a
model is the size of the file you would ship, so this module writes that file, in one of
``STORAGE_FORMATS``, and asks the file system how long it is.

File layout (all integers little-endian; ``serialize`` writes it, ``load_serialized`` reads it)::

    file    = b"LKSZ" | uint8 version (=1) | uint32 tensor count | record * count
    record  = uint16 len(name) | name (utf-8) | uint8 len(encoding) | encoding (ascii)
              | uint8 ndim | uint32 * ndim (shape) | uint64 len(payload) | payload

so a record's header costs ``12 + len(name) + len(encoding) + 4 * ndim`` bytes
(``tensor_header_bytes``). The encodings and their payloads:

* ``fp32`` / ``fp16``: the raw little-endian floats.
* ``int1`` … ``int8``: per-tensor affine codes. The range ``[min(x, 0), max(x, 0)]`` is mapped onto
  ``0 … 2^K - 1``; payload = scale (fp32) | zero point (fp32) | the K-bit codes bit-packed
  (``pack_bits``, LSB-first).
* ``bitmask:V``: one bit per element (1 = non-zero), bit-packed, then the non-zero values in row-major
  order encoded as ``V`` (``fp32``, ``fp16`` or ``int8`` = scale | zero point | one byte per value).
* ``csr:V``: the tensor viewed as a matrix ``[shape[0], numel / shape[0]]`` (a conv weight
  ``[out, in, kh, kw]`` becomes ``[out, in * kh * kw]``); payload = uint8 itemsize of the row
  pointers | uint8 itemsize of the column indices | row pointers (rows + 1) | column indices (nnz) |
  values (``V`` as above). Each index array uses the smallest unsigned type that holds its largest
  entry (uint8, uint16, uint32 or uint64).
* ``raw:<dtype>``: integer and bool tensors (e.g. BatchNorm's ``num_batches_tracked``), byte for byte.
* ``alias``: a tensor that *is* an earlier one (tied weights: two layers sharing one Parameter);
  payload = the earlier tensor's name (utf-8). Shared weights are stored once, as ``torch.save``
  stores a shared storage once, so a tied model is not counted twice.

``load_serialized`` reads strictly: a truncated file, a payload whose length does not match its
shape and encoding, a tensor count that does not match the records, or bytes after the last record
raise ``ValueError`` naming the file (and the tensor), never a half-decoded state dict.

The chosen format applies to *weight* tensors only — floating-point tensors with at least two
dimensions (Linear and Conv weights). Every other floating-point tensor (biases, BatchNorm scales,
shifts and running statistics) is stored as ``fp32`` in every format. A pruned module's
``weight_orig`` and ``weight_mask`` are merged into the effective ``weight`` first.

The integer encodings here exist only to account for storage. They are deliberately minimal (one
per-tensor min/max range); the real quantizers — per-channel, observers, calibration — live in
``labkit.quant``.
"""
from __future__ import annotations

import html
import math
import os
import struct
import tempfile
import time
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from labkit.validate import require_choice, require_float, require_int, require_module

STORAGE_FORMATS = ("fp32", "fp16", "int8", "int4", "int2", "int1", "bitmask", "csr")
VALUES_FORMATS = ("fp32", "fp16", "int8")
FILE_MAGIC = b"LKSZ"
FILE_VERSION = 1
FILE_HEADER_BYTES = 9  # magic (4) + version (1) + tensor count (4)

_RAW_DTYPES = {torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64}
_TORCH_DTYPE_BY_NAME = {str(d).removeprefix("torch."): d for d in _RAW_DTYPES}


# --------------------------------------------------------------------------------------------
# Counting parameters and non-zeros
# --------------------------------------------------------------------------------------------

def count_parameters(model: nn.Module) -> int:
    """Number of scalar parameters, ``sum(p.numel() for p in model.parameters())``.

    Shared parameters count once; buffers (BatchNorm running statistics, pruning masks) do not
    count. A pruned weight still counts in full: pruning zeroes entries, it does not remove them.
    Counting needs only shapes, so a model on the ``meta`` device is counted too.
    Explained in notebooks/00_why_compress.ipynb.
    """
    require_module("model", model, allow_meta=True)
    return sum(p.numel() for p in model.parameters())


def count_nonzeros(model: nn.Module) -> int:
    """Number of non-zero scalar parameters, counting the *effective* weight of pruned modules.

    A module pruned with a re-parametrisation (``weight_orig`` parameter + ``weight_mask`` buffer,
    as ``torch.nn.utils.prune`` and ``labkit.prune`` do) contributes ``nnz(weight_orig * weight_mask)``.
    Explained in notebooks/00_why_compress.ipynb.
    """
    require_module("model", model)
    total, seen = 0, set()
    for module in model.modules():
        for key, tensor in _effective_parameters(module):
            if key not in seen:
                seen.add(key)
                total += int(torch.count_nonzero(tensor))
    return total


def sparsity(model: nn.Module) -> float:
    """Fraction of parameters that are zero, ``1 - count_nonzeros / count_parameters``, in [0, 1].

    Raises ``ValueError`` for a model without parameters. Explained in notebooks/00_why_compress.ipynb.
    """
    total = count_parameters(model)
    if total == 0:
        raise ValueError("model has no parameters, so its sparsity is undefined")
    return 1.0 - count_nonzeros(model) / total


def effective_state_dict(model_or_state_dict) -> dict[str, torch.Tensor]:
    """The state dict with every ``X_orig`` / ``X_mask`` pair replaced by ``X = X_orig * X_mask``.

    Takes an ``nn.Module`` or a mapping ``name -> Tensor``; returns a new ``dict`` (tensors detached,
    on the CPU) in the original order. This is what a pruned model would ship.
    Explained in notebooks/00_why_compress.ipynb.
    """
    state = _as_state_dict(model_or_state_dict)
    merged = {}
    for name, tensor in state.items():
        if name.endswith("_mask") and name[:-len("_mask")] + "_orig" in state:
            continue
        if name.endswith("_orig") and name[:-len("_orig")] + "_mask" in state:
            mask = state[name[:-len("_orig")] + "_mask"]
            name, tensor = name[:-len("_orig")], tensor * mask
        merged[name] = tensor.detach().cpu()
    return merged


def _effective_parameters(module: nn.Module):
    """Yield ``(key, tensor)`` for the module's own parameters, pruning masks applied.

    ``key`` identifies the parameter (its ``id``) so that shared parameters count once.
    """
    for name, param in module.named_parameters(recurse=False):
        mask = getattr(module, name[:-len("_orig")] + "_mask", None) if name.endswith("_orig") else None
        tensor = param.detach() * mask if isinstance(mask, torch.Tensor) else param.detach()
        yield id(param), tensor


# --------------------------------------------------------------------------------------------
# MACs, traced with forward hooks
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LayerMACs:
    """One call of a Linear or Conv layer during the traced forward pass (batch of one).

    ``output_shape`` excludes the batch dimension; ``params`` counts the layer's own parameters;
    ``macs`` = output elements × weight elements per output channel; ``nonzero_macs`` counts only
    the multiplications by a non-zero weight (what a perfect sparse kernel would execute).
    """

    name: str
    type: str
    output_shape: tuple
    params: int
    nonzeros: int
    macs: int
    nonzero_macs: int


def macs(model: nn.Module, input_shape) -> list[LayerMACs]:
    """Multiply-accumulates of every Linear and Conv1d/2d/3d call for one example of ``input_shape``.

    ``input_shape`` is the shape of one example without the batch dimension, e.g. ``(1, 28, 28)``.
    The model runs once (eval mode, no grad, mode restored) on zeros ``[1, *input_shape]``. For a
    layer with weight ``W`` of shape ``[C_out, ...]`` and per-example output ``Y``:
    ``MACs = Y.numel() * W[0].numel()``, which is ``H_out·W_out·C_out·(C_in/groups)·kh·kw`` for a
    conv (stride, padding and dilation enter through ``H_out, W_out``) and ``out·in`` for a Linear.
    Bias additions, activations, pooling and normalisation are not counted, as in most papers.
    Explained in notebooks/00_why_compress.ipynb.
    """
    return [_layer_macs(name, module, shape) for name, module, shape in _trace(model, input_shape)
            if _is_mac_layer(module)]


def total_macs(model: nn.Module, input_shape) -> int:
    """Sum of ``macs(model, input_shape)`` over all layers (one example). Explained in notebooks/00_why_compress.ipynb."""
    return sum(layer.macs for layer in macs(model, input_shape))


def nonzero_macs(model: nn.Module, input_shape) -> int:
    """MACs that multiply a non-zero weight: per layer ``(Y.numel() / C_out) * nnz(W)``, summed.

    The gap to ``total_macs`` is what unstructured sparsity could save with an ideal sparse kernel
    (padding positions are counted as if they held data). Explained in notebooks/00_why_compress.ipynb.
    """
    return sum(layer.nonzero_macs for layer in macs(model, input_shape))


def _is_mac_layer(module: nn.Module) -> bool:
    return isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d))


def _layer_macs(name: str, module: nn.Module, output_shape: tuple) -> LayerMACs:
    """Count the MACs of one Linear/Conv call from its effective weight and output shape."""
    weight = _effective_weight(module)
    # output elements per output channel, weights per output channel (a layer of width 0: none)
    positions = math.prod(output_shape) // weight.shape[0] if weight.shape[0] else 0
    fan_in = weight.numel() // weight.shape[0] if weight.shape[0] else 0
    params, nonzeros = _own_counts(module)
    return LayerMACs(name=name, type=type(module).__name__, output_shape=output_shape,
                     params=params, nonzeros=nonzeros,
                     macs=math.prod(output_shape) * fan_in,
                     nonzero_macs=positions * int(torch.count_nonzero(weight)))


def _effective_weight(module: nn.Module) -> torch.Tensor:
    """``weight_orig * weight_mask`` for a pruned module, else ``weight``."""
    mask = getattr(module, "weight_mask", None)
    if hasattr(module, "weight_orig") and isinstance(mask, torch.Tensor):
        return (module.weight_orig * mask).detach()
    return module.weight.detach()


def _own_counts(module: nn.Module) -> tuple[int, int]:
    """(parameters, effective non-zeros) owned by ``module`` itself, not by its children."""
    params = sum(p.numel() for p in module.parameters(recurse=False))
    nonzeros = sum(int(torch.count_nonzero(t)) for _, t in _effective_parameters(module))
    return params, nonzeros


def _trace(model: nn.Module, input_shape) -> list[tuple[str, nn.Module, tuple | None]]:
    """Run ``model`` on zeros ``[1, *input_shape]``; return (name, module, output shape) per leaf call."""
    require_module("model", model)
    shape = _check_input_shape(input_shape)
    calls = []

    def recorder(name):
        def hook(module, inputs, output):
            out_shape = tuple(output.shape[1:]) if isinstance(output, torch.Tensor) else None
            calls.append((name or "(model)", module, out_shape))
        return hook

    leaves = [(n, m) for n, m in model.named_modules() if next(m.children(), None) is None]
    handles = [m.register_forward_hook(recorder(n)) for n, m in leaves]
    try:
        with _inference_mode(model):
            model(_dummy_input(model, shape))
    except RuntimeError as error:
        raise ValueError(f"input_shape {shape} does not fit the model: {error}") from error
    finally:
        for handle in handles:
            handle.remove()
    return calls


def _dummy_input(model: nn.Module, shape: tuple) -> torch.Tensor:
    """Zeros ``[1, *shape]`` with the dtype and device of the model's first floating tensor."""
    tensors = [t for t in [*model.parameters(), *model.buffers()] if t.is_floating_point()]
    like = tensors[0] if tensors else torch.zeros(())
    return torch.zeros((1, *shape), dtype=like.dtype, device=like.device)


@contextmanager
def _inference_mode(model: nn.Module):
    """``eval()`` + ``no_grad`` for the duration; every submodule's own mode is restored after."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for module, mode in modes:
            module.training = mode


# --------------------------------------------------------------------------------------------
# Latency (for benchmarks and notebooks — never for timed asserts in tests)
# --------------------------------------------------------------------------------------------

def latency(model: nn.Module, example_input: torch.Tensor, *, warmup: int = 5, repeats: int = 30,
            threads: int | None = None) -> dict:
    """Wall-clock time of ``model(example_input)``: ``median_ms``, ``p10_ms``, ``p90_ms``, ``repeats``.

    Runs ``warmup`` untimed calls, then ``repeats`` timed ones (``time.perf_counter``), in eval mode
    under ``no_grad``; the model's modes are restored afterwards. ``threads`` sets
    ``torch.set_num_threads`` for the measurement only. An ``example_input`` the model cannot take
    (wrong shape or dtype) raises ``ValueError`` naming it. Timings depend on the machine and its
    load: use them in notebooks and ``benchmarks/``, never in a test assert.
    Explained in notebooks/00_why_compress.ipynb.
    """
    require_module("model", model)
    if not isinstance(example_input, torch.Tensor):
        raise TypeError(f"example_input must be a torch.Tensor, got {type(example_input).__name__}")
    warmup = require_int("warmup", warmup, 0)
    repeats = require_int("repeats", repeats, 1)
    if threads is not None:
        threads = require_int("threads", threads, 1)
    with _torch_threads(threads):
        times_ms = _call_times(model, example_input, warmup, repeats)
    p10, median, p90 = np.percentile(times_ms, [10, 50, 90])
    return {"median_ms": float(median), "p10_ms": float(p10), "p90_ms": float(p90), "repeats": repeats}


def _call_times(model: nn.Module, example_input: torch.Tensor, warmup: int, repeats: int) -> list[float]:
    """Milliseconds of ``repeats`` timed calls after ``warmup`` untimed ones (eval mode, no_grad)."""
    times_ms = []
    try:
        with _inference_mode(model):
            for _ in range(warmup):
                model(example_input)
            for _ in range(repeats):
                start = time.perf_counter()
                model(example_input)
                times_ms.append((time.perf_counter() - start) * 1e3)
    except (RuntimeError, IndexError) as error:  # a shape or dtype the model's layers refuse
        raise ValueError(f"example_input (shape {list(example_input.shape)}, {example_input.dtype}) does not fit "
                         f"the model: {str(error).splitlines()[0]}") from error
    return times_ms


def compare_latency(models: Mapping, example_input: torch.Tensor, *, rounds: int = 10, repeats: int = 3,
                    warmup: int = 2, reference: str | None = None, threads: int | None = None,
                    noise_limit: float = 0.25) -> dict:
    """Latency of several models measured *together*: interleaved rounds, each model's spread, speed-ups.

    ``models`` maps names to modules that all take ``example_input``. After ``warmup`` untimed calls
    each, every one of ``rounds`` rounds times ``repeats`` calls of each model, in an order rotated
    from round to round — so a busy moment of the machine hits every model alike instead of the one
    that happened to be measured then. Per model: ``median_ms``, ``p10_ms``, ``p90_ms`` over its
    ``rounds·repeats`` calls, ``spread = (p90 − p10)/median``, and against ``reference`` (default: the
    first model) the per-round speed-ups ``t_ref/t_model`` (round medians), summarised as ``speedup``
    (their median) and ``speedup_p10``/``speedup_p90``. ``noisy`` is True when the model's spread or
    the relative width ``(speedup_p90 − speedup_p10)/speedup`` exceeds ``noise_limit``: report such a
    number as a noisy measurement, not as a fact. Returns ``{name: {...}}`` in the order of ``models``.
    Never assert on timings in tests. Explained in notebooks/09_structured_pruning.ipynb.
    """
    if not isinstance(models, Mapping) or not models:
        raise TypeError("models must be a non-empty dict {name: nn.Module}")
    for model in models.values():
        require_module("model", model)
    if not isinstance(example_input, torch.Tensor):
        raise TypeError(f"example_input must be a torch.Tensor, got {type(example_input).__name__}")
    rounds, repeats = require_int("rounds", rounds, 2), require_int("repeats", repeats, 1)
    warmup = require_int("warmup", warmup, 0)
    names = list(models)
    reference = names[0] if reference is None else require_choice("reference", reference, tuple(names))
    noise_limit = require_float("noise_limit", noise_limit, 0.0, low_open=True)
    times = {name: [] for name in names}
    with _torch_threads(None if threads is None else require_int("threads", threads, 1)):
        for name in names:
            _call_times(models[name], example_input, warmup, 0)
        for r in range(rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:   # rotate who goes first
                times[name].append(_call_times(models[name], example_input, 0, repeats))
    return {name: _latency_summary(times[name], times[reference], noise_limit) for name in names}


def _latency_summary(rounds_ms: list, reference_ms: list, noise_limit: float) -> dict:
    """Percentiles of one model's calls and its per-round speed-ups over the reference's rounds."""
    flat = np.concatenate(rounds_ms)
    p10, median, p90 = np.percentile(flat, [10, 50, 90])
    speedups = np.array([np.median(r) for r in reference_ms]) / np.array([np.median(r) for r in rounds_ms])
    s10, speedup, s90 = np.percentile(speedups, [10, 50, 90])
    spread = float((p90 - p10) / median)
    return {"median_ms": float(median), "p10_ms": float(p10), "p90_ms": float(p90), "spread": spread,
            "speedup": float(speedup), "speedup_p10": float(s10), "speedup_p90": float(s90),
            "noisy": bool(spread > noise_limit or (s90 - s10) / speedup > noise_limit), "calls": int(flat.size)}


@contextmanager
def _torch_threads(threads: int | None):
    """Temporarily ``torch.set_num_threads(threads)`` (no-op for None)."""
    if threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# --------------------------------------------------------------------------------------------
# Bit packing
# --------------------------------------------------------------------------------------------

def pack_bits(codes, bits: int, *, name: str = "codes") -> bytes:
    """Pack unsigned integer codes (each ``< 2**bits``) into ``ceil(len * bits / 8)`` bytes, LSB-first.

    Code ``i`` occupies bits ``i*bits … i*bits + bits - 1`` of the stream, its least significant bit
    first; stream bit ``j`` is bit ``j % 8`` (value ``2**(j % 8)``) of byte ``j // 8``. The last byte is
    padded with zero bits. Example: ``pack_bits([1, 2, 3], 2) == bytes([0b111001])``. This is labkit's
    one bit packer (codebook indices, binary/ternary codes, sparse masks, compressed-model streams);
    ``name`` is the caller's argument name for error messages.
    Explained in notebooks/00_why_compress.ipynb.
    """
    bits = require_int("bits", bits, 1, 32)
    codes = np.asarray(codes)
    if codes.size and codes.dtype.kind not in "ui":
        raise TypeError(f"{name} must be an array of integers, got dtype {codes.dtype}")
    codes = codes.reshape(-1)
    if codes.size and (codes.min() < 0 or codes.max() >= 2 ** bits):
        raise ValueError(f"{name} must lie in [0, {2 ** bits - 1}] for bits={bits}, "
                         f"got values in [{codes.min()}, {codes.max()}]")
    codes = codes.astype(np.uint32)
    n_bits = codes.size * bits
    stream = np.zeros(-(-n_bits // 8) * 8, dtype=np.uint8)  # one entry per bit, padded to bytes
    for b in range(bits):
        stream[b:n_bits:bits] = (codes >> b) & 1
    packed = np.zeros(stream.size // 8, dtype=np.uint8)
    for j in range(8):
        packed |= stream[j::8] << j
    return packed.tobytes()


def unpack_bits(data, bits: int, count: int) -> np.ndarray:
    """Inverse of ``pack_bits``: read ``count`` codes of ``bits`` bits, LSB-first, from ``data``.

    ``data`` is any bytes-like object holding at least ``ceil(count * bits / 8)`` bytes (extra bytes
    are ignored). Returns a 1-D array of the smallest unsigned dtype that holds ``2**bits - 1``.
    Explained in notebooks/00_why_compress.ipynb.
    """
    bits = require_int("bits", bits, 1, 32)
    count = require_int("count", count, 0)
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes-like, got {type(data).__name__}")
    n_bits = count * bits
    n_bytes = -(-n_bits // 8)
    packed = np.frombuffer(data, dtype=np.uint8)
    if packed.size < n_bytes:
        raise ValueError(f"data holds {packed.size} bytes; {count} codes of {bits} bits need {n_bytes}")
    stream = np.empty(n_bytes * 8, dtype=np.uint8)
    for j in range(8):
        stream[j::8] = (packed[:n_bytes] >> j) & 1
    codes = np.zeros(count, dtype=np.uint32)
    for b in range(bits):
        codes |= stream[b:n_bits:bits].astype(np.uint32) << b
    return codes.astype(_smallest_uint(2 ** bits - 1))


def _smallest_uint(max_value: int) -> np.dtype:
    """The smallest little-endian unsigned dtype that holds ``max_value``."""
    for dtype in ("<u1", "<u2", "<u4", "<u8"):
        if max_value <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    raise ValueError(f"{max_value} does not fit in 64 bits")


# --------------------------------------------------------------------------------------------
# Encodings: numpy float32 array <-> payload bytes
# --------------------------------------------------------------------------------------------

def _encode_affine(x: np.ndarray, bits: int) -> bytes:
    """scale (fp32) | zero point (fp32) | bit-packed codes of ``q = clip(round(x/scale) + zp, 0, 2^bits-1)``."""
    lo = min(float(x.min()), 0.0) if x.size else 0.0
    hi = max(float(x.max()), 0.0) if x.size else 0.0
    levels = 2 ** bits - 1
    scale = np.float32((hi - lo) / levels) if hi > lo else np.float32(1.0)
    zero_point = np.float32(round(-lo / float(scale)))
    codes = np.clip(np.rint(x / scale) + zero_point, 0, levels).astype(np.uint32)
    return struct.pack("<ff", scale, zero_point) + pack_bits(codes, bits)


def _decode_affine(buf: memoryview, offset: int, bits: int, count: int) -> tuple[np.ndarray, int]:
    """Read an ``_encode_affine`` block at ``offset``; return (float32 values, offset after it)."""
    scale, zero_point = struct.unpack_from("<ff", buf, offset)
    offset += 8
    codes = unpack_bits(buf[offset:], bits, count)
    values = (codes.astype(np.float32) - np.float32(zero_point)) * np.float32(scale)
    return values, offset + -(-count * bits // 8)


def _encode_values(values: np.ndarray, values_fmt: str) -> bytes:
    """The non-zero values of a sparse encoding as fp32, fp16 or int8 (affine, 8 bits)."""
    if values_fmt == "int8":
        return _encode_affine(values, 8)
    return values.astype("<f4" if values_fmt == "fp32" else "<f2").tobytes()


def _decode_values(buf: memoryview, offset: int, values_fmt: str, count: int) -> tuple[np.ndarray, int]:
    """Inverse of ``_encode_values``; return (float32 values, offset after them)."""
    if values_fmt == "int8":
        return _decode_affine(buf, offset, 8, count)
    dtype = np.dtype("<f4" if values_fmt == "fp32" else "<f2")
    values = np.frombuffer(buf, dtype=dtype, count=count, offset=offset).astype(np.float32)
    return values, offset + count * dtype.itemsize


def _encode_bitmask(x: np.ndarray, values_fmt: str) -> bytes:
    """Packed 1-bit mask of ``x != 0`` followed by the non-zero values."""
    mask = x != 0
    return pack_bits(mask.astype(np.uint8), 1) + _encode_values(x[mask], values_fmt)


def _decode_bitmask(buf: memoryview, values_fmt: str, count: int) -> tuple[np.ndarray, int]:
    mask = unpack_bits(buf, 1, count).astype(bool)
    values, end = _decode_values(buf, -(-count // 8), values_fmt, int(mask.sum()))
    out = np.zeros(count, dtype=np.float32)
    out[mask] = values
    return out, end


def _encode_csr(matrix: np.ndarray, values_fmt: str) -> bytes:
    """Compressed sparse rows of a 2-D array, index arrays in their smallest unsigned types."""
    rows, cols = matrix.shape
    row_index, col_index = np.nonzero(matrix)  # row-major order
    row_ptr = np.concatenate([[0], np.cumsum(np.bincount(row_index, minlength=rows))])
    ptr_type, col_type = _smallest_uint(len(col_index)), _smallest_uint(cols - 1)
    return (struct.pack("<BB", ptr_type.itemsize, col_type.itemsize)
            + row_ptr.astype(ptr_type).tobytes() + col_index.astype(col_type).tobytes()
            + _encode_values(matrix[row_index, col_index], values_fmt))


def _decode_csr(buf: memoryview, values_fmt: str, rows: int, cols: int) -> tuple[np.ndarray, int]:
    ptr_size, col_size = struct.unpack_from("<BB", buf, 0)
    if ptr_size not in (1, 2, 4, 8) or col_size not in (1, 2, 4, 8):
        raise ValueError(f"index sizes {ptr_size}/{col_size} are not 1, 2, 4 or 8 bytes")
    row_ptr = np.frombuffer(buf, dtype=f"<u{ptr_size}", count=rows + 1, offset=2).astype(np.int64)
    nnz, offset = int(row_ptr[-1]), 2 + (rows + 1) * ptr_size
    if row_ptr[0] != 0 or np.any(np.diff(row_ptr) < 0) or nnz > rows * cols:
        raise ValueError("its row pointers are not an increasing sequence from 0 to at most rows·cols")
    col_index = np.frombuffer(buf, dtype=f"<u{col_size}", count=nnz, offset=offset).astype(np.int64)
    if nnz and int(col_index.max()) >= cols:
        raise ValueError(f"a column index {int(col_index.max())} is outside [0, {cols - 1}]")
    values, end = _decode_values(buf, offset + nnz * col_size, values_fmt, nnz)
    out = np.zeros((rows, cols), dtype=np.float32)
    out[np.repeat(np.arange(rows), np.diff(row_ptr)), col_index] = values
    return out, end


def _encoding_for(name: str, tensor: torch.Tensor, fmt: str, values_fmt: str) -> str:
    """The encoding string of one tensor: ``fmt`` for weights, fp32 for other floats, raw for ints."""
    if not tensor.is_floating_point():
        if tensor.dtype not in _RAW_DTYPES:
            raise TypeError(f"cannot serialise tensor {name!r} of dtype {tensor.dtype}")
        return "raw:" + str(tensor.dtype).removeprefix("torch.")
    if tensor.dim() < 2 or tensor.numel() == 0:
        return "fp32"
    encoding = f"{fmt}:{values_fmt}" if fmt in ("bitmask", "csr") else fmt
    _check_finite_for_codes(name, tensor, encoding)
    return encoding


def _check_finite_for_codes(name: str, tensor: torch.Tensor, encoding: str) -> None:
    """Integer codes map ``[min, max]`` onto ``0 … 2^K - 1``: one NaN or Inf makes that range
    meaningless (numpy would fail with "cannot convert float NaN to integer"), so say which tensor."""
    integer_codes = encoding.startswith("int") or encoding.endswith(":int8")
    if integer_codes and not torch.isfinite(tensor).all():
        bad = int((~torch.isfinite(tensor)).sum())
        raise ValueError(f"tensor {name!r} holds {bad} NaN or Inf value(s); the {encoding} format needs "
                         "finite weights to choose its integer range (fp32 and fp16 store them as they are)")


def _encode(tensor: torch.Tensor, encoding: str) -> bytes:
    """Payload bytes of ``tensor`` in ``encoding`` (see the module docstring)."""
    kind, _, values_fmt = encoding.partition(":")
    if kind == "raw":
        return tensor.contiguous().numpy().tobytes()  # numpy arrays here are little-endian (x86/ARM)
    x = tensor.detach().float().contiguous().numpy().reshape(-1)
    if kind in ("fp32", "fp16"):
        return x.astype("<f4" if kind == "fp32" else "<f2").tobytes()
    if kind == "bitmask":
        return _encode_bitmask(x, values_fmt)
    if kind == "csr":
        return _encode_csr(x.reshape(tensor.shape[0], -1), values_fmt)
    return _encode_affine(x, int(kind[3:]))


def _decode(payload: memoryview, encoding: str, shape: tuple) -> tuple[torch.Tensor, int]:
    """Inverse of ``_encode``: (a float32 tensor, or the raw dtype, of ``shape``; payload bytes used)."""
    kind, _, values_fmt = encoding.partition(":")
    count = math.prod(shape)
    if kind == "raw":
        dtype = torch.empty(0, dtype=_TORCH_DTYPE_BY_NAME[values_fmt]).numpy().dtype
        array = np.frombuffer(payload, dtype=dtype, count=count)
        return torch.from_numpy(array.copy()).reshape(shape), count * dtype.itemsize
    if kind in ("fp32", "fp16"):
        dtype = np.dtype("<f4" if kind == "fp32" else "<f2")
        array, end = np.frombuffer(payload, dtype=dtype, count=count), count * dtype.itemsize
    elif kind == "bitmask":
        array, end = _decode_bitmask(payload, values_fmt, count)
    elif kind == "csr":
        array, end = _decode_csr(payload, values_fmt, shape[0], count // shape[0])
    else:
        array, end = _decode_affine(payload, 0, int(kind[3:]), count)
    return torch.from_numpy(np.array(array, dtype=np.float32)).reshape(shape), end


# --------------------------------------------------------------------------------------------
# The file: serialize, load_serialized, size_on_disk
# --------------------------------------------------------------------------------------------

def tensor_header_bytes(name: str, encoding: str, ndim: int) -> int:
    """Bytes of one record's header: ``2 + len(name) + 1 + len(encoding) + 1 + 4*ndim + 8``.

    ``name`` counts in utf-8 bytes. A file's size is ``FILE_HEADER_BYTES`` plus, per tensor, this
    header plus its payload. Explained in notebooks/00_why_compress.ipynb.
    """
    return 12 + len(name.encode("utf-8")) + len(encoding.encode("ascii")) + 4 * ndim


def serialize(model_or_state_dict, fmt: str, path, *, values_fmt: str = "fp32") -> int:
    """Write the model's effective state dict to ``path`` in storage format ``fmt``; return its bytes.

    ``fmt`` is one of ``STORAGE_FORMATS`` and applies to weight tensors (floating, ≥ 2-D); other
    floating tensors are fp32 and integer tensors raw (module docstring: the byte layout).
    ``values_fmt`` (``fp32``, ``fp16`` or ``int8``) encodes the non-zero values of ``bitmask`` and
    ``csr``; other formats ignore it. A tensor shared by several names (tied weights) is written once
    and the other names become ``alias`` records. The file is written to a temporary file next to
    ``path`` and moved into place with ``os.replace``, so it is never half-written.
    Explained in notebooks/00_why_compress.ipynb.
    """
    fmt, values_fmt = _check_formats(fmt, values_fmt)
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    state = effective_state_dict(model_or_state_dict)
    aliases = shared_tensors(state)
    folder = os.path.dirname(os.path.abspath(path))
    handle = tempfile.NamedTemporaryFile(dir=folder, prefix=".labkit-", suffix=".tmp", delete=False)
    try:
        with handle:
            handle.write(FILE_MAGIC + struct.pack("<BI", FILE_VERSION, len(state)))
            for name, tensor in state.items():
                if name in aliases:
                    handle.write(_record(name, tensor, "alias", aliases[name].encode("utf-8")))
                else:
                    handle.write(_record(name, tensor, _encoding_for(name, tensor, fmt, values_fmt)))
        os.replace(handle.name, path)
    except BaseException:
        if os.path.exists(handle.name):
            os.remove(handle.name)
        raise
    return os.path.getsize(path)


def shared_tensors(state: Mapping[str, torch.Tensor]) -> dict[str, str]:
    """``{name: earlier name}`` for every tensor of ``state`` that views exactly the same memory as an
    earlier one (tied weights: ``m[2].weight = m[0].weight``); such a tensor is stored once.
    Explained in notebooks/00_why_compress.ipynb.
    """
    first, aliases = {}, {}
    for name, tensor in state.items():
        if tensor.numel() == 0 or tensor.is_meta:
            continue
        key = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape),
               tuple(tensor.stride()), tensor.dtype)
        if key in first:
            aliases[name] = first[key]
        else:
            first[key] = name
    return aliases


def _record(name: str, tensor: torch.Tensor, encoding: str, payload: bytes | None = None) -> bytes:
    """Header + payload of one tensor (layout in the module docstring)."""
    name_bytes, enc_bytes = name.encode("utf-8"), encoding.encode("ascii")
    if len(name_bytes) > 0xFFFF:
        raise ValueError(f"tensor name is {len(name_bytes)} bytes; the format allows 65535")
    payload = _encode(tensor, encoding) if payload is None else payload
    shape = tuple(tensor.shape)
    header = struct.pack(f"<H{len(name_bytes)}sB{len(enc_bytes)}sB{len(shape)}IQ", len(name_bytes),
                         name_bytes, len(enc_bytes), enc_bytes, len(shape), *shape, len(payload))
    return header + payload


def load_serialized(path) -> dict[str, torch.Tensor]:
    """Read a file written by ``serialize``: ``name -> tensor`` (weights dequantized to float32).

    Integer tensors come back in their own dtype; every floating tensor as float32; an ``alias``
    record is the very tensor it names. Raises ``ValueError`` naming the file for a file that is not
    in this format, is truncated, has a tensor count that does not match its records, trailing bytes,
    or a payload whose length does not fit its shape and encoding.
    Explained in notebooks/00_why_compress.ipynb.
    """
    with open(path, "rb") as file:
        data = memoryview(file.read())
    if not len(data):
        raise ValueError(f"{path} is empty (0 bytes): write it again with serialize")
    if bytes(data[:4]) != FILE_MAGIC[:len(data)]:
        raise ValueError(f"{path} is not a labkit storage file (magic {bytes(data[:4])!r})")
    version, count = struct.unpack_from("<BI", _take(data, 4, 5, path, "the file header"))
    if version != FILE_VERSION:
        raise ValueError(f"{path} has format version {version}; this labkit reads {FILE_VERSION}")
    tensors, offset = {}, FILE_HEADER_BYTES
    for index in range(count):
        if offset == len(data):
            raise ValueError(f"{path} is truncated or its tensor count is damaged: the header announces "
                             f"{count} tensors but the file ends after {index}")
        name, encoding, shape, payload, offset = _read_record(data, offset, path)
        if name in tensors:
            raise ValueError(f"{path} is damaged: tensor {name!r} appears twice")
        tensors[name] = _decode_checked(payload, encoding, shape, tensors, f"{path}, tensor {name!r}")
    if offset != len(data):
        raise ValueError(f"{path} has {len(data) - offset} bytes after the {count} tensors its header announces "
                         "(trailing garbage, or a damaged tensor count): refusing to guess which is right")
    return tensors


def _take(data: memoryview, offset: int, size: int, path, what: str) -> memoryview:
    """``data[offset: offset + size]``, or ``ValueError`` naming the file if it ends before that."""
    if offset + size > len(data):
        raise ValueError(f"{path} is truncated: {what} needs {size} bytes at offset {offset}, "
                         f"but the file has {len(data)} bytes")
    return data[offset: offset + size]


def _read_record(data: memoryview, offset: int, path):
    """Parse one record at ``offset``: (name, encoding, shape, payload view, next offset)."""
    what = f"the record at offset {offset}"
    (name_len,) = struct.unpack_from("<H", _take(data, offset, 2, path, what))
    name_bytes = bytes(_take(data, offset + 2, name_len, path, what))
    offset += 2 + name_len
    (enc_len,) = struct.unpack_from("<B", _take(data, offset, 1, path, what))
    enc_bytes = bytes(_take(data, offset + 1, enc_len, path, what))
    offset += 1 + enc_len
    (ndim,) = struct.unpack_from("<B", _take(data, offset, 1, path, what))
    shape = struct.unpack_from(f"<{ndim}I", _take(data, offset + 1, 4 * ndim, path, what))
    offset += 1 + 4 * ndim
    (payload_len,) = struct.unpack_from("<Q", _take(data, offset, 8, path, what))
    offset += 8
    try:
        name, encoding = name_bytes.decode("utf-8"), enc_bytes.decode("ascii")
    except UnicodeDecodeError as error:
        raise ValueError(f"{path} is damaged: {what} has an unreadable name or encoding ({error})") from None
    payload = _take(data, offset, payload_len, path, f"the payload of tensor {name!r}")
    return name, encoding, tuple(shape), payload, offset + payload_len


MAX_TENSOR_ELEMENTS = 2 ** 31  # 8 GiB as float32: a larger shape in a file is a damaged header


def _decode_checked(payload: memoryview, encoding: str, shape: tuple, earlier: dict, where: str) -> torch.Tensor:
    """``_decode`` with every inconsistency of a damaged file turned into one ``ValueError`` naming it."""
    kind, _, values_fmt = encoding.partition(":")
    known = kind in ("fp32", "fp16", "alias") or (kind in ("bitmask", "csr") and values_fmt in VALUES_FORMATS) \
        or (kind == "raw" and values_fmt in _TORCH_DTYPE_BY_NAME) or kind in {f"int{b}" for b in range(1, 9)}
    if not known:
        raise ValueError(f"{where}: unknown encoding {encoding!r} (a damaged or newer file)")
    if math.prod(shape) > MAX_TENSOR_ELEMENTS:
        raise ValueError(f"{where}: shape {list(shape)} has more than {MAX_TENSOR_ELEMENTS} elements (a damaged header)")
    if kind == "alias":
        target = bytes(payload).decode("utf-8", errors="replace")
        if target not in earlier or tuple(earlier[target].shape) != shape:
            raise ValueError(f"{where}: alias of {target!r}, which is not an earlier tensor of shape {list(shape)}")
        return earlier[target]
    try:
        tensor, end = _decode(payload, encoding, shape)
    except (ValueError, IndexError, ZeroDivisionError, struct.error) as error:
        raise ValueError(f"{where}: its {len(payload)}-byte {encoding} payload does not decode to shape "
                         f"{list(shape)} ({error})") from None
    if end != len(payload):
        raise ValueError(f"{where}: a {encoding} tensor of shape {list(shape)} takes {end} bytes, "
                         f"but its payload has {len(payload)}")
    return tensor


def size_on_disk(model_or_state_dict, fmt: str, *, values_fmt: str = "fp32") -> int:
    """Bytes of the file ``serialize(model_or_state_dict, fmt, ...)`` writes (into a temporary folder).

    This is the honest model size — compare it with ``sys.getsizeof(model)``, which measures only
    the Python wrapper object. Explained in notebooks/00_why_compress.ipynb.
    """
    with tempfile.TemporaryDirectory(prefix="labkit-size-") as folder:
        return serialize(model_or_state_dict, fmt, os.path.join(folder, f"model.{fmt}"),
                         values_fmt=values_fmt)


def size_report(model_or_state_dict, *, values_fmt: str = "fp32") -> dict[str, int]:
    """``{fmt: size_on_disk(model, fmt)}`` for every format in ``STORAGE_FORMATS``, in that order.

    Explained in notebooks/00_why_compress.ipynb.
    """
    _check_formats("fp32", values_fmt)
    state = effective_state_dict(model_or_state_dict)
    return {fmt: size_on_disk(state, fmt, values_fmt=values_fmt) for fmt in STORAGE_FORMATS}


def torch_save_bytes(model_or_state_dict) -> int:
    """Bytes of ``torch.save(state_dict)`` written to a temporary file (zip + pickle container).

    Compare with ``size_on_disk(model, "fp32")``: the difference is the container's overhead.
    Explained in notebooks/00_why_compress.ipynb.
    """
    state = _as_state_dict(model_or_state_dict)
    with tempfile.TemporaryDirectory(prefix="labkit-size-") as folder:
        path = os.path.join(folder, "model.pt")
        torch.save(state, path)
        return os.path.getsize(path)


# --------------------------------------------------------------------------------------------
# Report: one table per model
# --------------------------------------------------------------------------------------------

class Report:
    """Per-layer table of a model, with totals and (optionally) bytes on disk per storage format.

    ``rows`` is a list of dicts with keys ``name, type, output_shape, params, nonzeros, macs,
    nonzero_macs, fp32_bytes`` (one per leaf-module call); ``totals`` has ``params, nonzeros,
    sparsity, macs, nonzero_macs, fp32_bytes`` for the whole model; ``sizes`` maps format -> bytes.
    ``print(report)`` gives an aligned text table, Jupyter renders ``_repr_html_``.
    Explained in notebooks/00_why_compress.ipynb.
    """

    COLUMNS = (("name", "layer"), ("type", "type"), ("output_shape", "output"), ("params", "params"),
               ("nonzeros", "non-zeros"), ("macs", "MACs"), ("fp32_bytes", "fp32 bytes"))

    def __init__(self, rows: list[dict], totals: dict, sizes: dict | None = None):
        self.rows = rows
        self.totals = totals
        self.sizes = dict(sizes or {})

    def _cells(self) -> tuple[list[str], list[list[str]], list[str]]:
        """Header, body rows and totals row as strings."""
        header = [title for _, title in self.COLUMNS]
        body = [[_format_cell(row[key]) for key, _ in self.COLUMNS] for row in self.rows]
        total = ["total", "", ""] + [_format_cell(self.totals[key]) for key, _ in self.COLUMNS[3:]]
        return header, body, total

    def __str__(self) -> str:
        header, body, total = self._cells()
        widths = [max(len(line[i]) for line in [header, *body, total]) for i in range(len(header))]

        def line(cells):
            return "  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

        rule = "-" * len(line(header))
        text = [line(header), rule, *map(line, body), rule, line(total)]
        text.append(f"sparsity {self.totals['sparsity']:.1%}")
        if self.sizes:
            text.append("bytes on disk: " + ", ".join(f"{f} {_human_bytes(b)}" for f, b in self.sizes.items()))
        return "\n".join(text)

    def _repr_html_(self) -> str:
        header, body, total = self._cells()

        def row(cells, tag="td"):
            return "<tr>" + "".join(f'<{tag} style="text-align:{"left" if i < 3 else "right"}">'
                                    f"{html.escape(c)}</{tag}>" for i, c in enumerate(cells)) + "</tr>"

        parts = ['<table class="labkit-report">', "<thead>", row(header, "th"), "</thead><tbody>",
                 *map(row, body), "</tbody><tfoot>", row(total, "th"), "</tfoot></table>",
                 f"<p>sparsity {self.totals['sparsity']:.1%}</p>"]
        if self.sizes:
            parts += ['<table class="labkit-sizes"><thead><tr><th>format</th><th>bytes on disk</th>'
                      "<th></th></tr></thead><tbody>"]
            parts += [f'<tr><td>{html.escape(f)}</td><td style="text-align:right">{b:,}</td>'
                      f'<td style="text-align:right">{_human_bytes(b)}</td></tr>' for f, b in self.sizes.items()]
            parts.append("</tbody></table>")
        return "".join(parts)

    def __repr__(self) -> str:
        return f"Report({len(self.rows)} rows, {self.totals['params']:,} params, {self.totals['macs']:,} MACs)"


def report(model: nn.Module, input_shape=None, *, with_sizes: bool = True) -> Report:
    """Trace ``model`` on one example of ``input_shape`` and tabulate every leaf layer.

    ``input_shape`` (one example, no batch dimension) defaults to ``(in_channels, image_size,
    image_size)`` from ``model.config()`` for models built by ``labkit.models.build``; other models
    must pass it. Rows: every leaf module called in the forward pass (activations and pooling too,
    with 0 parameters and 0 MACs) with its output shape (no batch dimension), parameters, effective
    non-zeros, MACs (as in ``macs``) and ``fp32_bytes = 4 * params``. Totals come from the whole
    model. ``with_sizes`` adds ``size_report(model)`` (writes one temporary file per format).
    Explained in notebooks/00_why_compress.ipynb.
    """
    if input_shape is None:
        input_shape = _configured_input_shape(model)
    rows = []
    for name, module, shape in _trace(model, input_shape):
        if _is_mac_layer(module):
            row = asdict(_layer_macs(name, module, shape))
        else:
            params, nonzeros = _own_counts(module)
            row = dict(name=name, type=type(module).__name__, output_shape=shape, params=params,
                       nonzeros=nonzeros, macs=0, nonzero_macs=0)
        row["fp32_bytes"] = 4 * row["params"]
        rows.append(row)
    params = count_parameters(model)
    totals = dict(params=params, nonzeros=count_nonzeros(model),
                  sparsity=sparsity(model) if params else 0.0,
                  macs=sum(r["macs"] for r in rows), nonzero_macs=sum(r["nonzero_macs"] for r in rows),
                  fp32_bytes=4 * params)
    return Report(rows, totals, size_report(model) if with_sizes else None)


def _format_cell(value) -> str:
    if isinstance(value, tuple):
        return "×".join(map(str, value))
    if value is None:
        return "?"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _human_bytes(n: int) -> str:
    """``1536 -> '1.5 KiB'``: binary prefixes, one decimal."""
    if n < 1024:
        return f"{n} B"
    if n < 1024 ** 2:
        return f"{n / 1024:.1f} KiB"
    return f"{n / 1024 ** 2:.1f} MiB"


# --------------------------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------------------------

def _configured_input_shape(model) -> tuple:
    """``(C, S, S)`` from the ``config()`` that every ``labkit.models`` model records."""
    require_module("model", model)
    config = model.config() if callable(getattr(model, "config", None)) else {}
    if not {"in_channels", "image_size"} <= set(config):
        raise TypeError(f"report() needs input_shape for a {type(model).__name__}, which does not record "
                        "its input size (only labkit.models do); pass one example's shape, e.g. (1, 28, 28)")
    return (config["in_channels"], config["image_size"], config["image_size"])


def _check_input_shape(input_shape) -> tuple:
    """``input_shape`` as a tuple of positive ints (one example, no batch dimension)."""
    valid = (isinstance(input_shape, (tuple, list, torch.Size)) and len(input_shape) > 0
             and all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in input_shape))
    if not valid:
        raise ValueError("input_shape must be a non-empty tuple of positive ints (one example, "
                         f"without the batch dimension), e.g. (1, 28, 28); got {input_shape!r}")
    return tuple(input_shape)


def _check_formats(fmt: str, values_fmt: str) -> tuple[str, str]:
    return require_choice("fmt", fmt, STORAGE_FORMATS), require_choice("values_fmt", values_fmt, VALUES_FORMATS)


def _as_state_dict(model_or_state_dict) -> Mapping:
    """The state dict of a Module, or the mapping itself after checking its values are tensors."""
    if isinstance(model_or_state_dict, nn.Module):
        require_module("model_or_state_dict", model_or_state_dict)
        return model_or_state_dict.state_dict()
    if isinstance(model_or_state_dict, Mapping):
        for name, value in model_or_state_dict.items():
            if not isinstance(name, str) or not isinstance(value, torch.Tensor):
                raise TypeError(f"state dict entries must be str -> torch.Tensor, got {name!r}: "
                                f"{type(value).__name__}")
            if value.is_meta:
                raise ValueError(f"model_or_state_dict holds {name!r} on the meta device (a shape without "
                                 "values), which has no bytes to write")
        return model_or_state_dict
    raise TypeError("model_or_state_dict must be a torch.nn.Module or a mapping name -> Tensor, "
                    f"got {type(model_or_state_dict).__name__}")
