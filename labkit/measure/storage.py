"""Real bytes on disk: ``serialize`` writes a model's effective state dict in one of
``STORAGE_FORMATS``, ``load_serialized`` reads it back, ``size_on_disk`` is the file's length.

``sys.getsizeof(model)`` answers "how big is the Python object that *points* at the weights?" —
a few dozen bytes, whatever the model. The size of a model is the size of the file you would ship.

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

Explained in notebooks/00_why_compress.ipynb.
"""

from __future__ import annotations

import math
import os
import struct
import tempfile
from collections.abc import Mapping

import torch

from labkit.measure.counting import as_state_dict, effective_state_dict
from labkit.measure.encodings import (STORAGE_FORMATS, TORCH_DTYPE_BY_NAME, VALUES_FORMATS, decode, encode,
                                      encoding_for)
from labkit.validate import require_choice
FILE_MAGIC = b"LKSZ"
FILE_VERSION = 1
FILE_HEADER_BYTES = 9  # magic (4) + version (1) + tensor count (4)


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
                    handle.write(_record(name, tensor, encoding_for(name, tensor, fmt, values_fmt)))
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
    payload = encode(tensor, encoding) if payload is None else payload
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
    """``decode`` with every inconsistency of a damaged file turned into one ``ValueError`` naming it."""
    kind, _, values_fmt = encoding.partition(":")
    known = kind in ("fp32", "fp16", "alias") or (kind in ("bitmask", "csr") and values_fmt in VALUES_FORMATS) \
        or (kind == "raw" and values_fmt in TORCH_DTYPE_BY_NAME) or kind in {f"int{b}" for b in range(1, 9)}
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
        tensor, end = decode(payload, encoding, shape)
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
    state = as_state_dict(model_or_state_dict)
    with tempfile.TemporaryDirectory(prefix="labkit-size-") as folder:
        path = os.path.join(folder, "model.pt")
        torch.save(state, path)
        return os.path.getsize(path)


def _check_formats(fmt: str, values_fmt: str) -> tuple[str, str]:
    return require_choice("fmt", fmt, STORAGE_FORMATS), require_choice("values_fmt", values_fmt, VALUES_FORMATS)
