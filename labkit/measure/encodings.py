"""Encodings of one tensor's payload in the storage file: fp32/fp16, K-bit affine codes, bitmask, CSR, raw.

The byte layout of each encoding is in ``labkit.measure.storage``'s docstring. The integer encodings
exist only to account for storage (one per-tensor min/max range); the real quantizers live in
``labkit.quant``. Explained in notebooks/00_why_compress.ipynb.
"""

from __future__ import annotations

import math
import struct

import numpy as np
import torch

from labkit.measure.bitpack import pack_bits, smallest_uint, unpack_bits


STORAGE_FORMATS = ("fp32", "fp16", "int8", "int4", "int2", "int1", "bitmask", "csr")
VALUES_FORMATS = ("fp32", "fp16", "int8")
_RAW_DTYPES = {torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64}
TORCH_DTYPE_BY_NAME = {str(d).removeprefix("torch."): d for d in _RAW_DTYPES}


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
    ptr_type, col_type = smallest_uint(len(col_index)), smallest_uint(cols - 1)
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


def encoding_for(name: str, tensor: torch.Tensor, fmt: str, values_fmt: str) -> str:
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


def encode(tensor: torch.Tensor, encoding: str) -> bytes:
    """Payload bytes of ``tensor`` in ``encoding`` (layout: ``labkit.measure.storage``'s docstring)."""
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


def decode(payload: memoryview, encoding: str, shape: tuple) -> tuple[torch.Tensor, int]:
    """Inverse of ``encode``: (a float32 tensor, or the raw dtype, of ``shape``; payload bytes used)."""
    kind, _, values_fmt = encoding.partition(":")
    count = math.prod(shape)
    if kind == "raw":
        dtype = torch.empty(0, dtype=TORCH_DTYPE_BY_NAME[values_fmt]).numpy().dtype
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
