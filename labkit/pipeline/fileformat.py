"""The compressed-model file: the artefact whose size on disk chapter 14 reports.

``measure.serialize`` answers "how many bytes would this model take in storage format X?". This file is
the artefact itself: every tensor of a compressed model — packed low-bit codes, codebooks, sparse
positions — written in the shortest *lossless* form, with the model's architecture, so that ``load``
gives back a model whose outputs are bit-identical. Layout (little-endian)::

    b"LKCM" | u8 version (= 1) | u32 header bytes | u64 payload bytes
    | header: zlib-compressed JSON {"model": architecture tree or null, "tensors": [[name, dtype, shape,
      payload bytes], ...], "meta": {...}}
    | payloads, one per tensor, in header order
    | u32 CRC-32 of every byte before it

Each tensor's payload starts with a one-byte encoding, chosen per tensor as the smallest that is exact:

* integer tensors (codebook indices, int8 codes, int32 biases, booleans), after ``u8 signed`` (signed
  values go through ``zigzag``): ``1`` dense — one symbol stream (``streams``: fixed width or Huffman);
  ``2`` sparse — the non-zero positions as relative indices with fillers (``relative_index``:
  ``u8 gap_bits``, a gap stream) and the values at those entries as a symbol stream; ``0`` raw bytes
  for integers wider than 32 bits.
* floating tensors: stored in the narrowest float type that holds every value exactly (fp16 ⊂ fp32 ⊂
  fp64); ``3`` dense, or ``4`` sparse (gap stream, then the values at the entries). A −0.0 (what
  pruning leaves of a negative weight: ``orig · 0``) is stored as +0.0, an equal value.

So a pruned, k-means-shared layer becomes Deep Compression's storage — relative 5-bit indices and
codebook indices, each Huffman-coded when that is shorter — and a PTQ layer its packed low-bit codes.
Nothing in the file is executable: the header is JSON, the tensors numbers, and the architecture is
rebuilt by ``labkit.architecture`` (only labkit's registered kinds). The file is written to a
temporary file beside ``path`` and moved into place (``os.replace``); a file that is truncated,
corrupted (checksum), of another version or not of this format raises ``CompressedFileError`` (a
``ValueError``) naming it.

Explained in notebooks/14_pipeline_tradeoffs_export.ipynb
"""
from __future__ import annotations

import copy
import json
import os
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from labkit import architecture, prune
from labkit.files import atomic_write
from labkit.pipeline import streams
from labkit.pipeline.relative_index import positions_from_relative, relative_index
from labkit.validate import require_int

__all__ = ["MAGIC", "VERSION", "CompressedFileError", "TensorRecord", "FileReport", "save", "load",
           "read_report"]

MAGIC = b"LKCM"
VERSION = 1
_FIXED_HEADER = struct.Struct("<4sBIQ")          # magic, version, header bytes, payload bytes
_CRC = struct.Struct("<I")
_RAW, _INTS, _SPARSE_INTS, _FLOATS, _SPARSE_FLOATS = range(5)
_FLOAT_TYPES = (torch.float16, torch.float32, torch.float64)
_INT_TYPES = {str(d): d for d in (torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)}
_DTYPES = {**_INT_TYPES, **{str(d): d for d in _FLOAT_TYPES}}
_NUMPY = {torch.float16: "<f2", torch.float32: "<f4", torch.float64: "<f8"}
_NUMPY_ZERO = {dtype: np.zeros((), dtype=code) for dtype, code in _NUMPY.items()}
SPARSE_MIN_ELEMENTS = 16     # below this, sparse storage never pays for its streams' headers


class CompressedFileError(ValueError):
    """A compressed-model file that cannot be read: truncated, corrupted, of another version, or not one."""


@dataclass
class TensorRecord:
    """How one tensor was stored: ``encoding`` (raw, ints, sparse-ints, floats, sparse-floats), its
    payload ``bytes``, ``entries`` stored (non-zeros + fillers when sparse), ``nonzeros``, and the bits
    spent on values and on relative indices (stream payloads, tables and headers excluded)."""

    name: str
    dtype: str
    shape: tuple
    encoding: str
    bytes: int
    entries: int
    nonzeros: int
    value_bits: int = 0
    index_bits: int = 0
    forms: tuple = ()
    gap_bits: int | None = None

    @property
    def numel(self) -> int:
        return int(np.prod(self.shape)) if self.shape else 1


@dataclass
class FileReport:
    """A saved file's ``path``, total ``bytes`` on disk and one ``TensorRecord`` per tensor."""

    path: str
    bytes: int
    tensors: list = field(default_factory=list)

    def table(self) -> str:
        """An aligned text table: tensor, shape, encoding, bytes, non-zeros, bits per entry."""
        rows = [f"{'tensor':<24} {'shape':<16} {'encoding':<13} {'bytes':>9} {'non-zeros':>10} "
                f"{'value bits':>10} {'index bits':>10}"]
        for r in self.tensors:
            per = (lambda bits: f"{bits / r.entries:10.2f}" if r.entries and bits else f"{'':>10}")
            rows.append(f"{r.name:<24} {'×'.join(map(str, r.shape)) or 'scalar':<16} {r.encoding:<13} "
                        f"{r.bytes:>9,} {r.nonzeros:>10,} {per(r.value_bits)} {per(r.index_bits)}")
        rows.append(f"{'file (header, architecture, checksum included)':<55} {self.bytes:>9,}")
        return "\n".join(rows)


# --------------------------------------------------------------------------------------------
# Encoding one tensor
# --------------------------------------------------------------------------------------------

def _narrowest_float(t: torch.Tensor) -> torch.dtype:
    """The narrowest of fp16/fp32/fp64 that holds every value of ``t`` exactly (NaN keeps the original)."""
    for dtype in _FLOAT_TYPES:
        if _FLOAT_TYPES.index(dtype) >= _FLOAT_TYPES.index(t.dtype):
            return t.dtype
        if torch.equal(t.to(dtype).to(t.dtype), t):
            return dtype
    return t.dtype


def _nonzero_positions(values: np.ndarray) -> np.ndarray:
    """Flat positions of the values that are not zero."""
    return np.flatnonzero(values)


GAP_BITS_TRIED = tuple(range(2, 11))   # gap_bits="auto": the width that gives the shortest payload


def _sparse_part(values: np.ndarray, gap_bits: int, huffman: bool):
    """(u8 gap_bits + gap stream, its info, entry positions) of the non-zeros of flat ``values``."""
    stored, _ = relative_index(_nonzero_positions(values), gap_bits)
    gaps, info = streams.encode_stream(stored, huffman)
    return struct.pack("<B", gap_bits) + gaps, info, positions_from_relative(stored, gap_bits)


def _gap_widths(gap_bits) -> tuple:
    return GAP_BITS_TRIED if gap_bits == "auto" else (gap_bits,)


def _encode_ints(name, t, gap_bits, huffman, sparse) -> tuple[bytes, TensorRecord]:
    values = t.reshape(-1).to(torch.int64).numpy()
    nnz = int(np.count_nonzero(values))
    signed = bool(values.size and values.min() < 0)
    symbols = streams.zigzag(values) if signed else values.astype(np.uint64)
    if symbols.size and int(symbols.max()) >= 2 ** 32:
        data = struct.pack("<B", _RAW) + t.contiguous().numpy().tobytes()
        return data, _record(name, t, "raw", data, values.size, nnz, 8 * t.element_size() * values.size)
    head = struct.pack("<B", signed)
    dense, dinfo = streams.encode_stream(symbols, huffman)
    best = (struct.pack("<B", _INTS) + head + dense,
            _record(name, t, "ints", None, values.size, nnz, dinfo["bits"], 0, (dinfo["form"],)))
    if sparse and values.size >= SPARSE_MIN_ELEMENTS and nnz < values.size:
        for width in _gap_widths(gap_bits):
            gaps, ginfo, positions = _sparse_part(values, width, huffman)
            vals, vinfo = streams.encode_stream(symbols[positions], huffman)
            data = struct.pack("<B", _SPARSE_INTS) + head + gaps + vals
            if len(data) < len(best[0]):
                best = (data, _record(name, t, "sparse-ints", None, positions.size, nnz, vinfo["bits"],
                                      ginfo["bits"], (vinfo["form"], ginfo["form"]), width))
    best[1].bytes = len(best[0])
    return best


def _encode_floats(name, t, gap_bits, huffman, sparse) -> tuple[bytes, TensorRecord]:
    dtype = _narrowest_float(t)
    # + 0.0 turns −0.0 into +0.0: a pruned negative weight is orig·0 = −0.0, equal to 0 in every sum
    values = t.reshape(-1).to(dtype).numpy().astype(_NUMPY[dtype]) + _NUMPY_ZERO[dtype]
    code = _FLOAT_TYPES.index(dtype)
    nnz = int(_nonzero_positions(values).size)
    width = 8 * values.itemsize
    data = struct.pack("<BB", _FLOATS, code) + values.tobytes()
    best = (data, _record(name, t, f"floats:{str(dtype)[6:]}", data, values.size, nnz, width * values.size))
    if sparse and values.size >= SPARSE_MIN_ELEMENTS and nnz < values.size:
        for gap_width in _gap_widths(gap_bits):
            gaps, ginfo, positions = _sparse_part(values, gap_width, huffman)
            data = struct.pack("<BB", _SPARSE_FLOATS, code) + gaps + values[positions].tobytes()
            if len(data) < len(best[0]):
                best = (data, _record(name, t, f"sparse:{str(dtype)[6:]}", data, positions.size, nnz,
                                      width * positions.size, ginfo["bits"], ("raw", ginfo["form"]), gap_width))
    return best


def _record(name, t, encoding, data, entries, nnz, value_bits, index_bits=0, forms=(), gap_bits=None) -> TensorRecord:
    return TensorRecord(name, str(t.dtype), tuple(t.shape), encoding, 0 if data is None else len(data),
                        int(entries), nnz, int(value_bits), int(index_bits), tuple(forms), gap_bits)


def encode_tensor(name: str, t: torch.Tensor, gap_bits: int | str = "auto", huffman: bool = True,
                  sparse: bool = True) -> tuple[bytes, TensorRecord]:
    """The shortest exact payload of one tensor (module docstring) and its ``TensorRecord``.
    Explained in notebooks/14_pipeline_tradeoffs_export.ipynb
    """
    t = t.detach().cpu()
    if t.is_floating_point():
        if t.dtype not in _FLOAT_TYPES:
            raise TypeError(f"tensor {name!r} has dtype {t.dtype}; the file stores float16/32/64 and integers")
        return _encode_floats(name, t, gap_bits, huffman, sparse)
    if str(t.dtype) not in _INT_TYPES:
        raise TypeError(f"tensor {name!r} has dtype {t.dtype}, which the compressed-model file does not store")
    return _encode_ints(name, t, gap_bits, huffman, sparse)


def decode_tensor(payload: memoryview, dtype: torch.dtype, shape: tuple) -> torch.Tensor:
    """Inverse of ``encode_tensor`` (``ValueError``/``struct.error`` on bytes that do not decode)."""
    count = int(np.prod(shape)) if shape else 1
    (kind,) = struct.unpack_from("<B", payload, 0)
    if kind == _RAW:
        array = np.frombuffer(payload, dtype=torch.empty(0, dtype=dtype).numpy().dtype, count=count, offset=1)
        end = 1 + array.nbytes
    elif kind in (_INTS, _SPARSE_INTS):
        array, end = _decode_ints(payload, kind == _SPARSE_INTS, count)
    elif kind in (_FLOATS, _SPARSE_FLOATS):
        array, end = _decode_floats(payload, kind == _SPARSE_FLOATS, count)
    else:
        raise ValueError(f"unknown tensor encoding {kind}")
    if end != len(payload):
        raise ValueError(f"the payload has {len(payload)} bytes but its encoding uses {end}")
    return torch.from_numpy(np.array(array)).to(dtype).reshape(shape)   # a writable copy


def _scatter(count: int, positions: np.ndarray, values: np.ndarray) -> np.ndarray:
    if positions.size and (positions[-1] >= count or values.size != positions.size):
        raise ValueError(f"sparse entries reach position {int(positions[-1])} of a {count}-element tensor")
    out = np.zeros(count, dtype=values.dtype)
    out[positions] = values
    return out


def _decode_ints(payload: memoryview, sparse: bool, count: int) -> tuple[np.ndarray, int]:
    (signed,) = struct.unpack_from("<B", payload, 1)
    if not sparse:
        symbols, end = streams.decode_stream(payload, 2)
        if symbols.size != count:
            raise ValueError(f"{symbols.size} symbols for a {count}-element tensor")
    else:
        (gap_bits,) = struct.unpack_from("<B", payload, 2)
        stored, offset = streams.decode_stream(payload, 3)
        values, end = streams.decode_stream(payload, offset)
        symbols = _scatter(count, positions_from_relative(stored, gap_bits), values)
    return (streams.unzigzag(symbols) if signed else symbols.astype(np.int64)), end


def _decode_floats(payload: memoryview, sparse: bool, count: int) -> tuple[np.ndarray, int]:
    (code,) = struct.unpack_from("<B", payload, 1)
    if code >= len(_FLOAT_TYPES):
        raise ValueError(f"unknown float type {code}")
    dtype = np.dtype(_NUMPY[_FLOAT_TYPES[code]])
    if not sparse:
        return np.frombuffer(payload, dtype=dtype, count=count, offset=2), 2 + count * dtype.itemsize
    (gap_bits,) = struct.unpack_from("<B", payload, 2)
    stored, offset = streams.decode_stream(payload, 3)
    positions = positions_from_relative(stored, gap_bits)
    values = np.frombuffer(payload, dtype=dtype, count=positions.size, offset=offset)
    return _scatter(count, positions, values), offset + values.nbytes


# --------------------------------------------------------------------------------------------
# The file
# --------------------------------------------------------------------------------------------

def _plain_model(model) -> tuple[dict | None, dict]:
    """``(architecture tree, tensors)`` of a model — pruning masks made permanent first, which leaves
    the outputs unchanged — or ``(None, tensors)`` of a state dict."""
    if isinstance(model, Mapping):
        bad = [k for k, v in model.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
        if bad:
            raise TypeError(f"a state dict must map str -> torch.Tensor; {bad[0]!r} does not")
        return None, {k: v.detach().cpu() for k, v in model.items()}
    if isinstance(model, nn.Module):
        if any(prune.is_pruned(m) for m in model.modules()):
            model = prune.remove_all(copy.deepcopy(model))
    return architecture.describe(model)


def save(model, path, *, gap_bits: int | str = "auto", huffman: bool = True, sparse: bool = True,
         meta: dict | None = None) -> FileReport:
    """Write ``model`` (any model ``labkit.architecture`` can describe, or a state dict) to ``path``.

    Every tensor gets its shortest exact encoding (module docstring); ``gap_bits`` (1–16) is the width
    of the relative indices of sparse tensors, or ``"auto"`` (the shortest of ``GAP_BITS_TRIED``, per tensor), ``huffman`` allows Huffman-coded streams, ``sparse``
    allows sparse storage; ``meta`` is plain JSON data stored in the header. Written atomically.
    Returns the ``FileReport``: the file's bytes on disk and how each tensor was stored.
    ``TypeError`` for a model with a module of no saved form (naming it) or an unsupported dtype.
    Explained in notebooks/14_pipeline_tradeoffs_export.ipynb
    """
    if gap_bits != "auto":
        gap_bits = require_int("gap_bits", gap_bits, 1, 16)
    for flag, value in (("huffman", huffman), ("sparse", sparse)):
        if not isinstance(value, bool):
            raise TypeError(f"{flag} must be a bool, got {type(value).__name__}")
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    tree, state = _plain_model(model)
    encoded = [encode_tensor(name, t, gap_bits, huffman, sparse) for name, t in state.items()]
    try:
        options = {"gap_bits": gap_bits, "huffman": huffman, "sparse": sparse}
        header = zlib.compress(json.dumps({"model": tree, "meta": meta or {}, "options": options, "tensors": [
            [r.name, r.dtype, list(r.shape), len(data)] for data, r in encoded]}, separators=(",", ":")).encode(), 9)
    except TypeError as error:
        raise TypeError(f"meta must hold plain JSON data (str, numbers, lists, dicts): {error}") from None
    fixed = _FIXED_HEADER.pack(MAGIC, VERSION, len(header), sum(len(data) for data, _ in encoded))
    crc = zlib.crc32(header, zlib.crc32(fixed))
    with atomic_write(path) as f:            # piece by piece: no second copy of a large model's payload
        f.write(fixed + header)
        for data, _ in encoded:
            f.write(data)
            crc = zlib.crc32(data, crc)
        f.write(_CRC.pack(crc))
    return FileReport(str(path), os.path.getsize(path), [r for _, r in encoded])


def _read_checked(path) -> tuple[dict, memoryview]:
    """(header dict, payload view) of the file at ``path``, after every structural check."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    data = memoryview(Path(path).read_bytes())
    if len(data) < 4 or bytes(data[:4]) != MAGIC:
        raise CompressedFileError(f"{path} is not a labkit compressed-model file (it does not start with {MAGIC!r})")
    if len(data) < _FIXED_HEADER.size:
        raise CompressedFileError(f"{path} is truncated: {len(data)} bytes, shorter than the {_FIXED_HEADER.size}-byte "
                                  "fixed header")
    _, version, header_len, payload_len = _FIXED_HEADER.unpack_from(data, 0)
    if version != VERSION:
        raise CompressedFileError(f"{path} has format version {version}; this labkit reads version {VERSION} "
                                  "(save the model again with this labkit)")
    expected = _FIXED_HEADER.size + header_len + payload_len + _CRC.size
    if len(data) != expected:
        state = "truncated" if len(data) < expected else "longer than its header says (trailing bytes)"
        raise CompressedFileError(f"{path} is {state}: its header announces {expected:,} bytes, the file has "
                                  f"{len(data):,}")
    (crc,) = _CRC.unpack_from(data, expected - _CRC.size)
    if zlib.crc32(data[:expected - _CRC.size]) != crc:
        raise CompressedFileError(f"{path} is corrupted: its CRC-32 checksum does not match its contents")
    try:
        header = json.loads(zlib.decompress(data[_FIXED_HEADER.size:_FIXED_HEADER.size + header_len]))
    except (zlib.error, ValueError) as error:
        raise CompressedFileError(f"{path} has an unreadable header ({error})") from None
    return header, data[_FIXED_HEADER.size + header_len: expected - _CRC.size]


def _tensors(header: dict, payload: memoryview, path) -> dict[str, torch.Tensor]:
    state, offset = {}, 0
    try:
        for name, dtype, shape, size in header["tensors"]:
            if dtype not in _DTYPES or offset + size > len(payload):
                raise ValueError(f"tensor {name!r}: dtype {dtype} / {size} bytes do not fit the file")
            state[name] = decode_tensor(payload[offset:offset + size], _DTYPES[dtype], tuple(shape))
            offset += size
    except (ValueError, TypeError, KeyError, struct.error) as error:
        raise CompressedFileError(f"{path} does not decode: {error}") from None
    if offset != len(payload):
        raise CompressedFileError(f"{path} has {len(payload) - offset} payload bytes no tensor uses")
    return state


def load(path):
    """The model saved at ``path`` (or its state dict, if a state dict was saved), in eval mode.

    Its outputs are bit-identical to those of the model that was saved. ``CompressedFileError`` (a
    ``ValueError``) naming the file when it is not of this format, has another version, is truncated
    or longer than announced, fails its checksum, or does not decode; nothing is unpickled.
    Explained in notebooks/14_pipeline_tradeoffs_export.ipynb
    """
    header, payload = _read_checked(path)
    state = _tensors(header, payload, path)
    if header.get("model") is None:
        return state
    try:
        return architecture.build(header["model"], state)
    except (ValueError, TypeError, KeyError) as error:
        raise CompressedFileError(f"{path} holds an architecture labkit cannot build: {error}") from None


def read_report(path) -> tuple[FileReport, dict]:
    """``(FileReport, meta)`` of an existing file: each tensor decoded and encoded again with the
    options it was saved with, which reproduces its records. Explained in notebooks/14_pipeline_tradeoffs_export.ipynb
    """
    header, payload = _read_checked(path)
    options = header.get("options", {})
    state = _tensors(header, payload, path)
    records = [encode_tensor(name, t, **options)[1] for name, t in state.items()]
    return FileReport(str(path), os.path.getsize(path), records), header.get("meta", {})
