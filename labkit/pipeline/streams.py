"""Integer symbol streams for the compressed-model file: fixed-width bit packing or canonical Huffman.

A stream is a sequence of non-negative integers (codebook indices, signed codes mapped by ``zigzag``,
relative-index gaps). It is written in whichever of two lossless forms is shorter:

* **fixed**: every symbol in ``b = bit_length(max)`` bits, packed LSB-first (``labkit.measure.pack_bits``)::

      u8 0 | u8 b | u32 count | ⌈count·b/8⌉ bytes

* **Huffman** (Deep Compression's stage 3, ``labkit.quant.huffman``): a canonical code, stored as one
  codeword length per symbol ``0 … max`` (0 = the symbol does not occur), then the codewords back to back::

      u8 1 | u32 count | u16 table length | u8 w | table (w bits per symbol) | u32 bit count | ⌈bits/8⌉ bytes

  The decoder rebuilds the codewords from the lengths alone (``canonical_codes``), so the table is the
  whole dictionary. Huffman is tried for alphabets of at most ``HUFFMAN_MAX_SYMBOLS`` symbols.

``zigzag`` maps signed integers to non-negative ones keeping small magnitudes small
(0, −1, 1, −2, 2 … → 0, 1, 2, 3, 4 …), so 0 stays 0 — the symbol sparse storage leaves out.

Explained in notebooks/14_pipeline_tradeoffs_export.ipynb
"""
from __future__ import annotations

import struct

import numpy as np

from labkit import measure
from labkit.quant import huffman

__all__ = ["HUFFMAN_MAX_SYMBOLS", "zigzag", "unzigzag", "encode_stream", "decode_stream", "StreamInfo"]

HUFFMAN_MAX_SYMBOLS = 4096
_FIXED, _HUFFMAN = 0, 1


def zigzag(values: np.ndarray) -> np.ndarray:
    """Signed int64 ``v`` → uint64 ``2v`` for ``v ≥ 0`` and ``−2v − 1`` for ``v < 0``."""
    v = np.asarray(values, dtype=np.int64)
    return ((v << 1) ^ (v >> 63)).astype(np.uint64)


def unzigzag(symbols: np.ndarray) -> np.ndarray:
    """Inverse of ``zigzag``: uint64 → int64."""
    s = np.asarray(symbols, dtype=np.uint64)
    return ((s >> np.uint64(1)).astype(np.int64)) ^ -((s & np.uint64(1)).astype(np.int64))


class StreamInfo(dict):
    """What one encoded stream cost: ``{"form": "fixed"|"huffman", "count", "bits" (payload bits, table
    excluded), "bytes" (everything, header and table included)}``."""


def _fixed(symbols: np.ndarray) -> tuple[bytes, StreamInfo]:
    bits = max(1, int(symbols.max()).bit_length()) if symbols.size else 1
    data = struct.pack("<BBI", _FIXED, bits, symbols.size) + measure.pack_bits(symbols, bits)
    return data, StreamInfo(form="fixed", count=int(symbols.size), bits=bits * int(symbols.size), bytes=len(data))


def _huffman(symbols: np.ndarray) -> tuple[bytes, StreamInfo] | None:
    if not symbols.size or int(symbols.max()) >= HUFFMAN_MAX_SYMBOLS:
        return None
    code = huffman.build_huffman_code(symbols.astype(np.int64))
    if max(code.lengths.values()) > 62:                       # huffman_encode's limit
        return None
    encoded = huffman.huffman_encode(symbols.astype(np.int64), code)
    table = np.zeros(int(symbols.max()) + 1, dtype=np.uint8)
    for s, length in code.lengths.items():
        table[s] = length
    width = int(table.max()).bit_length()                  # lengths ≤ 62: at most 6 bits each
    data = (struct.pack("<BIHB", _HUFFMAN, symbols.size, table.size, width) + measure.pack_bits(table, width)
            + struct.pack("<I", encoded.num_bits) + encoded.data)
    return data, StreamInfo(form="huffman", count=int(symbols.size), bits=encoded.num_bits, bytes=len(data))


def encode_stream(symbols, allow_huffman: bool = True) -> tuple[bytes, StreamInfo]:
    """The shorter of the fixed-width and (if ``allow_huffman``) Huffman forms of ``symbols``.

    ``symbols``: non-negative integers, 1-D, each below ``2**32``. Returns ``(bytes, StreamInfo)``.
    Explained in notebooks/14_pipeline_tradeoffs_export.ipynb
    """
    symbols = np.asarray(symbols)
    if symbols.ndim != 1 or (symbols.size and symbols.dtype.kind not in "iu"):
        raise TypeError(f"symbols must be a 1-D array of integers, got shape {symbols.shape} of dtype {symbols.dtype}")
    if symbols.size and (int(symbols.min()) < 0 or int(symbols.max()) >= 2 ** 32):
        raise ValueError("symbols must lie in [0, 2**32 - 1] (map signed values with zigzag first)")
    symbols = symbols.astype(np.uint64)
    best = _fixed(symbols)
    if allow_huffman:
        coded = _huffman(symbols)
        if coded is not None and len(coded[0]) < len(best[0]):
            best = coded
    return best


def decode_stream(buf: memoryview, offset: int) -> tuple[np.ndarray, int]:
    """Read one stream at ``offset`` of ``buf``: (uint64 symbols, offset after it). ``ValueError`` (or
    ``struct.error``) when the bytes do not hold a well-formed stream.
    Explained in notebooks/14_pipeline_tradeoffs_export.ipynb
    """
    (form,) = struct.unpack_from("<B", buf, offset)
    if form == _FIXED:
        bits, count = struct.unpack_from("<BI", buf, offset + 1)
        if not 1 <= bits <= 32:
            raise ValueError(f"a fixed-width stream of {bits} bits per symbol (1 to 32 expected)")
        start, size = offset + 6, -(-count * bits // 8)
        _need(buf, start, size)
        return measure.unpack_bits(buf[start:start + size], bits, count).astype(np.uint64), start + size
    if form == _HUFFMAN:
        count, table_len, width = struct.unpack_from("<IHB", buf, offset + 1)
        if not 1 <= width <= 6:
            raise ValueError(f"a Huffman table of {width}-bit lengths (1 to 6 expected)")
        start, table_bytes = offset + 8, -(-table_len * width // 8)
        _need(buf, start, table_bytes + 4)
        table = measure.unpack_bits(buf[start:start + table_bytes], width, table_len)
        (num_bits,) = struct.unpack_from("<I", buf, start + table_bytes)
        start += table_bytes + 4
        size = -(-num_bits // 8)
        _need(buf, start, size)
        lengths = {int(s): int(n) for s, n in enumerate(table) if n}
        if not lengths or huffman.kraft_sum(lengths) > 1.0:
            raise ValueError("a Huffman table whose lengths are not those of a prefix code")
        code = huffman.HuffmanCode(lengths, huffman.canonical_codes(lengths))
        encoded = huffman.HuffmanEncoded(bytes(buf[start:start + size]), num_bits, count, code)
        return huffman.huffman_decode(encoded).numpy().astype(np.uint64), start + size
    raise ValueError(f"unknown stream form {form} (0 = fixed, 1 = Huffman)")


def _need(buf: memoryview, start: int, size: int) -> None:
    if start + size > len(buf):
        raise ValueError(f"a stream needs {size} bytes at offset {start}, but the payload has {len(buf)}")
