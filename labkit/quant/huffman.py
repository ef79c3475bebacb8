"""Huffman coding of quantization indices (Deep Compression, stage 3).

Papers:
- Huffman. "A Method for the Construction of Minimum-Redundancy Codes." Proc. IRE, 1952.
- Han, Mao, Dally. "Deep Compression: Compressing Deep Neural Networks with Pruning, Trained
  Quantization and Huffman Coding." ICLR 2016 (Huffman saves 20–30 % of the storage on top).

After k-means weight sharing most weights fall in a few central clusters, so the index
distribution is far from uniform. A fixed-length code spends ``b`` bits on every index; a Huffman
code gives short codewords to frequent indices and long ones to rare ones, reaching an average
length within 1 bit of the entropy ``H = -Σ p_s log2 p_s``. Everything here is real: the codes are
built from the counts, the stream is packed into bytes, and decoding gives the indices back.

Explained in notebooks/06_mixed_precision_vector_quantization.ipynb
"""
from __future__ import annotations

import heapq
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from labkit.validate import require_int

__all__ = ["symbol_frequencies", "huffman_code_lengths", "canonical_codes", "kraft_sum", "entropy_bits",
           "HuffmanCode", "build_huffman_code", "HuffmanEncoded", "huffman_encode", "huffman_decode",
           "huffman_size_bytes", "fixed_length_size_bytes"]


def _as_symbols(symbols, name: str = "symbols") -> np.ndarray:
    """A flat int64 numpy array of non-negative integer symbols (from a tensor, array or list)."""
    if isinstance(symbols, torch.Tensor):
        if symbols.is_floating_point() or symbols.is_complex() or symbols.dtype == torch.bool:
            raise TypeError(f"{name} must hold integers, got a tensor of dtype {symbols.dtype}")
        arr = symbols.detach().reshape(-1).cpu().numpy().astype(np.int64)
    elif isinstance(symbols, (np.ndarray, list, tuple)):
        arr = np.asarray(symbols)
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"{name} must hold integers, got dtype {arr.dtype}")
        arr = arr.reshape(-1).astype(np.int64)
    else:
        raise TypeError(f"{name} must be an integer torch.Tensor, numpy array or list, got {type(symbols).__name__}")
    if arr.size == 0:
        raise ValueError(f"{name} must not be empty")
    if arr.min() < 0:
        raise ValueError(f"{name} must be non-negative integers, got minimum {arr.min()}")
    return arr


def symbol_frequencies(symbols) -> dict[int, int]:
    """``{symbol: count}`` of a stream of non-negative integers (tensor, array or list)."""
    values, counts = np.unique(_as_symbols(symbols), return_counts=True)
    return {int(s): int(c) for s, c in zip(values, counts)}


def _check_frequencies(frequencies) -> dict[int, int]:
    if not isinstance(frequencies, Mapping):
        raise TypeError(f"frequencies must be a mapping symbol -> count, got {type(frequencies).__name__}")
    if not frequencies:
        raise ValueError("frequencies must not be empty")
    for s, c in frequencies.items():
        if isinstance(c, bool) or not isinstance(c, (int, np.integer)) or c <= 0:
            raise ValueError(f"frequencies must map each symbol to a positive integer count, got {s!r}: {c!r}")
    return dict(frequencies)


def huffman_code_lengths(frequencies: Mapping[int, int]) -> dict[int, int]:
    """Huffman's algorithm: ``{symbol: codeword length in bits}`` from ``{symbol: count}``.

    Repeatedly merge the two least frequent groups (a min-heap keyed on count); every merge puts
    the symbols of both groups one level deeper in the code tree, so their length grows by one.
    The result minimises ``Σ count_s · len_s`` over prefix codes. A lone symbol gets length 1.
    Ties are broken by insertion order, so the result is deterministic.
    Explained in notebooks/06_mixed_precision_vector_quantization.ipynb
    """
    frequencies = _check_frequencies(frequencies)
    lengths = {s: 0 for s in frequencies}
    if len(lengths) == 1:
        return {s: 1 for s in lengths}
    heap = [(count, order, [s]) for order, (s, count) in enumerate(sorted(frequencies.items()))]
    heapq.heapify(heap)
    order = len(heap)
    while len(heap) > 1:
        c1, _, group1 = heapq.heappop(heap)
        c2, _, group2 = heapq.heappop(heap)
        for s in group1 + group2:
            lengths[s] += 1
        heapq.heappush(heap, (c1 + c2, order, group1 + group2))
        order += 1
    return lengths


def canonical_codes(lengths: Mapping[int, int]) -> dict[int, str]:
    """Canonical Huffman codewords ``{symbol: "0101…"}`` from the lengths alone.

    Sort by (length, symbol); the first codeword is all zeros, each next one is the previous plus one,
    shifted left when the length grows. A decoder needs only the lengths to rebuild the code, which
    is why the stored table is one length per symbol.
    Explained in notebooks/06_mixed_precision_vector_quantization.ipynb
    """
    codes, code, prev_len = {}, 0, 0
    for s, length in sorted(lengths.items(), key=lambda item: (item[1], item[0])):
        code <<= length - prev_len
        codes[s] = format(code, f"0{length}b")
        code, prev_len = code + 1, length
    return codes


def kraft_sum(lengths: Mapping[int, int]) -> float:
    """Kraft sum ``Σ_s 2^(-len_s)``: ≤ 1 for every prefix code, = 1 for a Huffman code (≥ 2 symbols)."""
    return math.fsum(2.0 ** -length for length in lengths.values())


def entropy_bits(frequencies: Mapping[int, int]) -> float:
    """Shannon entropy ``H = -Σ p_s log2 p_s`` in bits per symbol: no lossless code averages fewer."""
    frequencies = _check_frequencies(frequencies)
    total = sum(frequencies.values())
    return -math.fsum(c / total * math.log2(c / total) for c in frequencies.values())


@dataclass
class HuffmanCode:
    """A Huffman code: ``lengths {symbol: bits}`` and canonical ``codes {symbol: "0101…"}``."""
    lengths: dict[int, int]
    codes: dict[int, str]

    def encoded_bits(self, frequencies: Mapping[int, int]) -> int:
        """``Σ count_s · len_s``: the size of the stream in bits."""
        return sum(count * self.lengths[s] for s, count in frequencies.items())

    def average_length(self, frequencies: Mapping[int, int]) -> float:
        """Bits per symbol: ``Σ p_s · len_s``."""
        return self.encoded_bits(frequencies) / sum(frequencies.values())


def build_huffman_code(symbols_or_frequencies) -> HuffmanCode:
    """The Huffman code of a symbol stream (tensor, array, list) or of a ``{symbol: count}`` mapping.

    Explained in notebooks/06_mixed_precision_vector_quantization.ipynb
    """
    freqs = symbols_or_frequencies if isinstance(symbols_or_frequencies, Mapping) \
        else symbol_frequencies(symbols_or_frequencies)
    lengths = huffman_code_lengths(freqs)
    return HuffmanCode(lengths, canonical_codes(lengths))


@dataclass
class HuffmanEncoded:
    """An encoded stream: ``data`` (bytes, last byte zero-padded), ``num_bits``, ``num_symbols`` and the ``code``."""
    data: bytes
    num_bits: int
    num_symbols: int
    code: HuffmanCode

    @property
    def table_bytes(self) -> int:
        """Bytes to store the canonical code: one length byte per symbol ``0 … max symbol``."""
        return max(self.code.lengths) + 1

    def size_bytes(self, include_table: bool = False) -> int:
        """``len(data)``, plus the code table when ``include_table``."""
        return len(self.data) + (self.table_bytes if include_table else 0)


def huffman_encode(symbols, code: HuffmanCode | None = None) -> HuffmanEncoded:
    """Encode a stream of non-negative integers into packed bytes (codewords MSB first, back to back).

    ``code`` defaults to the Huffman code of ``symbols`` itself. ``num_bits = Σ len(code[s])`` and
    ``len(data) = ⌈num_bits / 8⌉``. Explained in notebooks/06_mixed_precision_vector_quantization.ipynb
    """
    arr = _as_symbols(symbols)
    code = build_huffman_code(arr) if code is None else code
    if not isinstance(code, HuffmanCode):
        raise TypeError(f"code must be a HuffmanCode, got {type(code).__name__}")
    missing = set(np.unique(arr).tolist()) - set(code.codes)
    if missing:
        raise ValueError(f"code has no codeword for symbols {sorted(missing)[:10]}")
    # Look-up tables over the code's symbols in sorted order (not indexed by the symbol itself: a
    # symbol 10**10 would need a 10**10-entry table): codeword as an integer, and its length.
    symbols = np.array(sorted(code.codes), dtype=np.int64)
    words = [code.codes[int(s)] for s in symbols]
    if max(len(w) for w in words) > 62:
        raise ValueError("code has codewords longer than 62 bits, which this encoder does not pack")
    value = np.array([int(w, 2) for w in words], dtype=np.int64)
    length = np.array([len(w) for w in words], dtype=np.int64)
    position = np.searchsorted(symbols, arr)
    v, n = value[position], length[position]
    width = int(n.max())
    # Row i holds codeword i right-aligned in `width` columns; keep only its last n_i columns.
    shifts = np.arange(width - 1, -1, -1, dtype=np.int64)
    bits = ((v[:, None] >> shifts) & 1).astype(np.uint8)
    keep = shifts[None, :] < n[:, None]
    stream = bits[keep]
    return HuffmanEncoded(np.packbits(stream).tobytes(), int(stream.size), int(arr.size), code)


def huffman_decode(encoded: HuffmanEncoded) -> torch.Tensor:
    """Decode :func:`huffman_encode`'s output back to the int64 symbols ``[num_symbols]``.

    Read bits one at a time; as soon as the bits read form a codeword (the code is prefix-free, so
    there is never an ambiguity) emit its symbol and start again.
    Explained in notebooks/06_mixed_precision_vector_quantization.ipynb
    """
    if not isinstance(encoded, HuffmanEncoded):
        raise TypeError(f"encoded must be a HuffmanEncoded, got {type(encoded).__name__}")
    lookup = {(len(word), int(word, 2)): s for s, word in encoded.code.codes.items()}
    bits = np.unpackbits(np.frombuffer(encoded.data, dtype=np.uint8))[: encoded.num_bits].tolist()
    out, word, length = [], 0, 0
    for bit in bits:
        word, length = (word << 1) | bit, length + 1
        symbol = lookup.get((length, word))
        if symbol is not None:
            out.append(symbol)
            word, length = 0, 0
    if length or len(out) != encoded.num_symbols:
        raise ValueError(f"corrupt stream: decoded {len(out)} symbols of {encoded.num_symbols} "
                         f"with {length} bits left over")
    return torch.tensor(out, dtype=torch.int64)


def huffman_size_bytes(indices, include_table: bool = False) -> int:
    """Bytes of the Huffman-encoded ``indices`` (really encoded), optionally plus the code table.

    Explained in notebooks/06_mixed_precision_vector_quantization.ipynb
    """
    if not isinstance(include_table, bool):
        raise TypeError(f"include_table must be a bool, got {type(include_table).__name__}")
    return huffman_encode(indices).size_bytes(include_table)


def fixed_length_size_bytes(indices, bits: int | None = None) -> int:
    """Bytes of ``indices`` packed at a fixed ``bits`` per index (default: enough for the largest): ``⌈n·b/8⌉``.

    ``bits`` runs from the width of the largest index up to 64."""
    arr = _as_symbols(indices, "indices")
    needed = max(1, int(arr.max()).bit_length())
    if bits is None:
        bits = needed
    if isinstance(bits, int) and not isinstance(bits, bool) and bits < needed:
        raise ValueError(f"bits must be an integer in [{needed}, 64]: the largest of indices, {int(arr.max())}, "
                         f"needs {needed} bits; got {bits}")
    bits = require_int("bits", bits, needed, 64)
    return math.ceil(arr.size * bits / 8)
