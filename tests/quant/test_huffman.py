"""Huffman coding: optimal lengths, Kraft equality, exact round trip, real compressed size."""
import math

import numpy as np
import pytest
import torch

from labkit.quant import huffman as H


def test_code_lengths_by_hand():
    # classic example: counts 45, 13, 12, 16, 9, 5 -> lengths 1, 3, 3, 3, 4, 4 (CLRS §16.3)
    freqs = {0: 45, 1: 13, 2: 12, 3: 16, 4: 9, 5: 5}
    lengths = H.huffman_code_lengths(freqs)
    assert lengths == {0: 1, 1: 3, 2: 3, 3: 3, 4: 4, 5: 4}
    assert H.build_huffman_code(freqs).encoded_bits(freqs) == 224


def test_kraft_equality_and_prefix_free():
    g = torch.Generator().manual_seed(0)
    for k in (2, 3, 7, 16, 64):
        symbols = torch.randint(0, k, (2000,), generator=g) ** 2 % k        # uneven counts
        code = H.build_huffman_code(symbols)
        assert H.kraft_sum(code.lengths) == 1.0
        words = sorted(code.codes.values())
        assert all(not b.startswith(a) for a, b in zip(words, words[1:]))   # sorted: a prefix would sit right before
        assert {s: len(w) for s, w in code.codes.items()} == code.lengths


def test_average_length_within_one_bit_of_entropy():
    p = np.array([0.5, 0.2, 0.1, 0.1, 0.05, 0.05])
    symbols = np.repeat(np.arange(6), (p * 1000).astype(int))
    freqs = H.symbol_frequencies(symbols)
    code = H.build_huffman_code(freqs)
    h = H.entropy_bits(freqs)
    assert h <= code.average_length(freqs) < h + 1


@pytest.mark.parametrize("seed", [0, 1])
def test_round_trip_exact(seed):
    g = torch.Generator().manual_seed(seed)
    symbols = torch.multinomial(torch.tensor([0.6, 0.2, 0.1, 0.05, 0.03, 0.02]), 5000, True, generator=g) * 3
    encoded = H.huffman_encode(symbols)
    assert torch.equal(H.huffman_decode(encoded), symbols)
    assert encoded.num_bits == encoded.code.encoded_bits(H.symbol_frequencies(symbols))
    assert len(encoded.data) == math.ceil(encoded.num_bits / 8)


def test_round_trip_small_cases():
    one = H.huffman_encode([7, 7, 7])
    assert one.code.codes == {7: "0"} and one.num_bits == 3
    assert H.huffman_decode(one).tolist() == [7, 7, 7]
    enc = H.huffman_encode(np.array([0, 0, 0, 1, 2, 0, 0]))
    assert enc.code.codes == {0: "0", 1: "10", 2: "11"}
    assert enc.num_bits == 9 and enc.data == bytes([0b00010110, 0b00000000])     # 0 0 0 10 11 0 | 0 + padding
    assert H.huffman_decode(enc).tolist() == [0, 0, 0, 1, 2, 0, 0]


def test_skewed_distribution_compresses_below_fixed_length():
    g = torch.Generator().manual_seed(0)
    probs = torch.softmax(-torch.arange(16.0) / 2, 0)                          # 4-bit indices, very skewed
    idx = torch.multinomial(probs, 20000, True, generator=g)
    fixed = H.fixed_length_size_bytes(idx, bits=4)
    assert fixed == 10000
    huff = H.huffman_size_bytes(idx)
    assert huff < 0.75 * fixed
    assert H.huffman_size_bytes(idx, include_table=True) == huff + 16
    uniform = torch.arange(16).repeat(100)                                      # flat: nothing to gain
    assert H.huffman_size_bytes(uniform) == H.fixed_length_size_bytes(uniform, 4)


def test_corrupt_stream_detected():
    enc = H.huffman_encode([0, 1, 2, 0, 0])
    enc.num_symbols = 6
    with pytest.raises(ValueError, match="corrupt"):
        H.huffman_decode(enc)


def test_bad_inputs():
    with pytest.raises(TypeError, match="symbols must hold integers"):
        H.huffman_encode(torch.tensor([0.5, 1.0]))
    with pytest.raises(ValueError, match="symbols must not be empty"):
        H.huffman_encode([])
    with pytest.raises(ValueError, match="non-negative"):
        H.huffman_encode([1, -1])
    with pytest.raises(ValueError, match="frequencies must map"):
        H.huffman_code_lengths({0: 3, 1: 0})
    with pytest.raises(TypeError, match="frequencies must be a mapping"):
        H.huffman_code_lengths([3, 1])
    with pytest.raises(ValueError, match="no codeword"):
        H.huffman_encode([0, 5], code=H.build_huffman_code([0, 1]))
    with pytest.raises(ValueError, match="bits"):
        H.fixed_length_size_bytes([0, 9], bits=3)
    with pytest.raises(TypeError, match="encoded must be"):
        H.huffman_decode(b"\x00")


def test_a_huge_symbol_is_encoded_without_a_table_indexed_by_it():
    # before: a look-up table of 10**10 + 1 entries (74 GiB) was allocated
    stream = [0, 10**10, 0, 0, 7, 10**10, 0]
    encoded = H.huffman_encode(stream)
    assert H.huffman_decode(encoded).tolist() == stream
    assert encoded.num_bits == sum(len(encoded.code.codes[s]) for s in stream)
    assert H.fixed_length_size_bytes(stream) == math.ceil(len(stream) * 34 / 8)  # 10**10 needs 34 bits
    with pytest.raises(ValueError, match=r"^bits must be an integer in \[34, 64\]: the largest of indices, 10000000000, needs 34 bits; got 8"):
        H.fixed_length_size_bytes(stream, bits=8)
