"""Symbol streams: fixed-width packing or canonical Huffman, whichever is shorter, decoded exactly."""
from __future__ import annotations

import numpy as np
import pytest

from labkit.pipeline import streams


def test_zigzag_round_trip_keeps_zero_at_zero():
    v = np.array([0, -1, 1, -2, 2, -(2 ** 31), 2 ** 31 - 1])
    z = streams.zigzag(v)
    assert z[:5].tolist() == [0, 1, 2, 3, 4]
    assert streams.unzigzag(z).tolist() == v.tolist()


def test_skewed_symbols_are_huffman_coded_and_decode_exactly():
    rng = np.random.default_rng(0)
    symbols = rng.choice(32, size=4000, p=np.r_[0.5, np.full(31, 0.5 / 31)])
    data, info = streams.encode_stream(symbols)
    assert info["form"] == "huffman"
    assert info["bits"] < 5 * symbols.size                 # below the 5 fixed bits per symbol
    decoded, end = streams.decode_stream(memoryview(data), 0)
    assert end == len(data) and decoded.tolist() == symbols.tolist()


def test_uniform_symbols_stay_fixed_width():
    symbols = np.arange(256).repeat(4)
    data, info = streams.encode_stream(symbols)
    assert info["form"] == "fixed" and info["bits"] == 8 * symbols.size
    assert streams.decode_stream(memoryview(data), 0)[0].tolist() == symbols.tolist()
    data, info = streams.encode_stream(np.array([3, 1, 1, 1, 1, 1, 1, 1]), allow_huffman=False)
    assert info["form"] == "fixed" and info["bits"] == 2 * 8


def test_bad_symbols_and_damaged_streams():
    with pytest.raises(ValueError, match="zigzag"):
        streams.encode_stream(np.array([-1, 2]))
    with pytest.raises(TypeError, match="1-D array of integers"):
        streams.encode_stream(np.array([0.5]))
    data, _ = streams.encode_stream(np.zeros(100, dtype=np.int64) + np.arange(100) % 3)
    with pytest.raises(ValueError):
        streams.decode_stream(memoryview(data[:-3]), 0)
    with pytest.raises(ValueError, match="unknown stream form"):
        streams.decode_stream(memoryview(b"\x07" + data[1:]), 0)
