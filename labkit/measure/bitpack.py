"""labkit's one bit packer: unsigned integer codes of K bits <-> bytes, LSB-first.

Explained in notebooks/00_why_compress.ipynb.
"""

from __future__ import annotations

import numpy as np

from labkit.validate import require_int


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
    return codes.astype(smallest_uint(2 ** bits - 1))


def smallest_uint(max_value: int) -> np.dtype:
    """The smallest little-endian unsigned dtype that holds ``max_value``."""
    for dtype in ("<u1", "<u2", "<u4", "<u8"):
        if max_value <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    raise ValueError(f"{max_value} does not fit in 64 bits")
