"""kernels.int4_linear: float32 activations times int4 weights in labkit.llm.int4's packed format,
against the float64 numpy reference and torch, on every code path; bad input refused.

Tolerance (float32 accumulation in another order than the reference): for every output,
``|y − y_ref| <= K · 2⁻²⁴ · (Σ_k |x_k| · s · (q_k + z) + |b|)`` — the classical bound of a float32
dot product of K terms (the kernel adds ``s·Σ x·q`` and ``−s·z·Σ x`` separately, hence ``q + z``)."""
import numpy as np
import pytest
import torch

from labkit import kernels
from labkit.kernels import api, reference
from labkit.llm import int4


def make_layer(rng, n, k, group_size, bias=True):
    codes = rng.integers(0, 16, size=(n, k), dtype=np.uint8)
    packed = int4.pack_int4(torch.from_numpy(codes)).numpy()
    groups = k // group_size
    scale = (rng.random((n, groups)) * 0.1 + 1e-3).astype(np.float32)
    zero_point = rng.integers(0, 16, size=(n, groups), dtype=np.uint8)
    b = rng.standard_normal(n).astype(np.float32) if bias else None
    return codes, packed, scale, zero_point, b


def bound(x, codes, scale, zero_point, group_size, bias):
    n, k = codes.shape
    magnitude = ((codes.reshape(n, -1, group_size) + zero_point[..., None].astype(np.float64))
                 * scale[..., None]).reshape(n, k)
    total = np.abs(x.astype(np.float64)) @ magnitude.T + (0 if bias is None else np.abs(bias))
    return k * 2.0**-24 * total


SHAPES = [  # (M, K, N, group_size): the transformer's layers (d_model 128), edges, odd groups
    (1, 128, 384, 32), (1, 128, 128, 64), (1, 128, 512, 128), (1, 512, 128, 32), (2, 128, 384, 32),
    (3, 512, 128, 128), (4, 64, 17, 32), (5, 96, 33, 6), (8, 128, 512, 64), (9, 256, 65, 256),
    (1, 4096, 300, 128), (1, 2, 1, 2), (7, 60, 3, 30)]


@pytest.mark.parametrize("m, k, n, group_size", SHAPES)
def test_matches_the_reference(isa, rng, m, k, n, group_size):
    codes, packed, scale, zero_point, b = make_layer(rng, n, k, group_size, bias=m % 2 == 1)
    x = rng.standard_normal((m, k)).astype(np.float32)
    got = kernels.int4_linear(x, packed, scale, zero_point, group_size, b)
    expected = reference.int4_linear(x, packed, scale, zero_point, group_size, b)
    assert got.dtype == np.float32 and got.shape == (m, n)
    error = np.abs(got.astype(np.float64) - expected)
    assert np.all(error <= bound(x, codes, scale, zero_point, group_size, b) + 1e-30), error.max()


def test_reference_is_llm_int4_linear(rng):
    """The kernel's reference is labkit.llm.int4's product: same format, same numbers (float32)."""
    codes, packed, scale, zero_point, b = make_layer(rng, 96, 256, 64)
    x = rng.standard_normal((3, 256)).astype(np.float32)
    expected = int4.int4_linear(torch.from_numpy(x), torch.from_numpy(packed), torch.from_numpy(scale),
                                torch.from_numpy(zero_point), 64, torch.from_numpy(b))
    torch.testing.assert_close(torch.from_numpy(reference.int4_linear(x, packed, scale, zero_point, 64, b)),
                               expected, rtol=1e-5, atol=1e-5)


def test_vector_input_and_threads(isa, rng):
    codes, packed, scale, zero_point, b = make_layer(rng, 1000, 2048, 128)
    x = rng.standard_normal(2048).astype(np.float32)
    single = kernels.int4_linear(x, packed, scale, zero_point, 128, b)
    assert single.shape == (1000,)
    kernels.set_num_threads(3)  # conftest restores 1; 2M multiply-adds: split over threads
    np.testing.assert_array_equal(kernels.int4_linear(x, packed, scale, zero_point, 128, b), single)
    expected = reference.int4_linear(x[None], packed, scale, zero_point, 128, b)[0]
    assert np.all(np.abs(single - expected) <= bound(x[None], codes, scale, zero_point, 128, b)[0])


def test_extreme_codes_are_exact_where_float32_is(isa):
    """Codes 0 and 15 with zero points 0 and 15, small integers in x: every partial sum is an integer
    below 2^24, so float32 is exact and so must the kernel be."""
    n, k, g = 48, 256, 64
    codes = np.tile(np.array([0, 15], np.uint8), (n, k // 2))
    packed = int4.pack_int4(torch.from_numpy(codes)).numpy()
    scale = np.ones((n, k // g), np.float32)
    zero_point = np.tile(np.array([0, 15], np.uint8), (n, k // g // 2))
    x = np.arange(2 * k, dtype=np.float32).reshape(2, k) % 7 - 3
    expected = reference.int4_linear(x, packed, scale, zero_point, g)
    np.testing.assert_array_equal(kernels.int4_linear(x, packed, scale, zero_point, g), expected)
    np.testing.assert_array_equal(kernels.Int4Weights(packed, scale, zero_point, g)(x), expected)


BAD = [  # (argument changes, exception, words in the message)
    (dict(group_size=48), ValueError, "group_size must divide K"),
    (dict(group_size=0), ValueError, "group_size"),
    (dict(group_size=2.5), TypeError, "group_size"),
    (dict(x=np.zeros((2, 128), np.float64)), TypeError, "x must have dtype float32"),
    (dict(x=[[0.0] * 128]), TypeError, "x must be a numpy.ndarray"),
    (dict(x=np.zeros((2, 126), np.float32)), ValueError, "packed must be [N, K/2]"),
    (dict(x=np.zeros((2, 127), np.float32)), ValueError, "K must be even"),
    (dict(x=np.zeros((2, 3, 128), np.float32)), ValueError, "x must have 2 dimensions"),
    (dict(packed=np.zeros((16, 64), np.int8)), TypeError, "packed must have dtype uint8"),
    (dict(scale=np.ones((16, 4), np.float64)), TypeError, "scale must have dtype float32"),
    (dict(scale=np.ones((16, 2), np.float32)), ValueError, "scale must be [N, K/group_size]"),
    (dict(zero_point=np.zeros((15, 4), np.uint8)), ValueError, "zero_point must be [N, K/group_size]"),
    (dict(zero_point=np.full((16, 4), 16, np.uint8)), ValueError, "zero_point entries must be in [0, 15]"),
    (dict(zero_point=np.zeros((16, 4), np.int32)), TypeError, "zero_point must have dtype uint8"),
    (dict(bias=np.zeros(15, np.float32)), ValueError, "bias must have 16 entries"),
    (dict(bias=np.zeros(16, np.float64)), TypeError, "bias must have dtype float32"),
    (dict(x=np.zeros((128, 2), np.float32).T), ValueError, "C-contiguous"),
]


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "numpy-fallback"])
@pytest.mark.parametrize("change, error, words", BAD)
def test_bad_input_is_refused(rng, monkeypatch, compiled, change, error, words):
    _, packed, scale, zero_point, b = make_layer(rng, 16, 128, 32)
    args = dict(x=np.zeros((2, 128), np.float32), packed=packed, scale=scale, zero_point=zero_point,
                group_size=32, bias=b)
    args.update(change)
    if not compiled:
        monkeypatch.setattr(api, "_ext", None)
    with pytest.raises(error) as raised:
        kernels.int4_linear(**args)
    assert words.lower() in str(raised.value).lower()


# ---- kernels.Int4Weights: the weights checked and rearranged once (16 output rows in the lanes) ----
PREPARED_SHAPES = SHAPES + [(6, 24, 40, 8), (1, 16, 16, 16), (2, 40, 31, 40), (4, 4096, 64, 64)]


@pytest.mark.parametrize("m, k, n, group_size", PREPARED_SHAPES)
def test_prepared_weights_match_the_reference(isa, rng, m, k, n, group_size):
    codes, packed, scale, zero_point, b = make_layer(rng, n, k, group_size, bias=m % 2 == 0)
    x = rng.standard_normal((m, k)).astype(np.float32)
    weights = kernels.Int4Weights(packed, scale, zero_point, group_size, b)
    got = weights(x)
    assert got.dtype == np.float32 and got.shape == (m, n)
    assert (weights.in_features, weights.out_features) == (k, n)
    expected = reference.int4_linear(x, packed, scale, zero_point, group_size, b)
    error = np.abs(got.astype(np.float64) - expected)
    assert np.all(error <= bound(x, codes, scale, zero_point, group_size, b) + 1e-30), error.max()
    np.testing.assert_array_equal(weights(x[0].copy()), weights(x[:1])[0])  # [K] -> [N], the same numbers


def test_prepared_weights_path(isa, rng):
    """The path a call takes: the forced ISA's, but the scalar one for group sizes not a multiple of 8."""
    _, packed, scale, zero_point, _ = make_layer(rng, 8, 120, 40)
    assert kernels.Int4Weights(packed, scale, zero_point, 40).path == isa
    _, packed, scale, zero_point, _ = make_layer(rng, 8, 60, 30)
    assert kernels.Int4Weights(packed, scale, zero_point, 30).path == ("ref" if isa != "numpy-reference" else isa)


def test_prepared_weights_copy_the_arrays_and_split_over_threads(rng):
    codes, packed, scale, zero_point, b = make_layer(rng, 1000, 2048, 128)
    weights = kernels.Int4Weights(packed, scale, zero_point, 128, b)
    x = rng.standard_normal((2, 2048)).astype(np.float32)
    before = weights(x)
    packed[:] = 0  # the object holds its own copy
    scale[:] = 0
    np.testing.assert_array_equal(weights(x), before)
    kernels.set_num_threads(3)  # conftest restores 1; 4M multiply-adds: split over threads
    np.testing.assert_array_equal(weights(x), before)


BAD_WEIGHTS = [  # (constructor argument changes, exception, words in the message)
    (dict(group_size=48), ValueError, "group_size must divide K"),
    (dict(group_size=0), ValueError, "group_size"),
    (dict(group_size="32"), TypeError, "group_size"),
    (dict(packed=np.zeros((16, 64), np.int8)), TypeError, "packed must have dtype uint8"),
    (dict(packed=np.zeros((16, 64, 1), np.uint8)), ValueError, "packed must have 2"),
    (dict(packed=np.zeros((64, 16), np.uint8).T), ValueError, "C-contiguous"),
    (dict(scale=np.ones((16, 4), np.float64)), TypeError, "scale must have dtype float32"),
    (dict(scale=np.ones((16, 2), np.float32)), ValueError, "scale must be [N, K/group_size]"),
    (dict(zero_point=np.zeros((15, 4), np.uint8)), ValueError, "zero_point must be [N, K/group_size]"),
    (dict(zero_point=np.full((16, 4), 16, np.uint8)), ValueError, "zero_point entries must be in [0, 15]"),
    (dict(bias=np.zeros(15, np.float32)), ValueError, "bias must have 16 entries"),
    (dict(bias=torch.zeros(16)), TypeError, "bias must be a numpy.ndarray"),
]
BAD_X = [
    (np.zeros((2, 126), np.float32), ValueError, "the layer has K = 128"),
    (np.zeros(127, np.float32), ValueError, "the layer has K = 128"),
    (np.zeros((2, 128), np.float64), TypeError, "x must have dtype float32"),
    (torch.zeros(2, 128), TypeError, "x must be a numpy.ndarray"),
    (np.zeros((2, 2, 128), np.float32), ValueError, "dimensions"),
    (np.zeros((0, 128), np.float32), ValueError, "zero-size"),
    (np.zeros((128, 2), np.float32).T, ValueError, "C-contiguous"),
]


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "numpy-fallback"])
def test_prepared_weights_refuse_bad_input(rng, monkeypatch, compiled):
    _, packed, scale, zero_point, b = make_layer(rng, 16, 128, 32)
    if not compiled:
        monkeypatch.setattr(api, "_ext", None)
    for change, error, words in BAD_WEIGHTS:
        args = dict(packed=packed, scale=scale, zero_point=zero_point, group_size=32, bias=b)
        args.update(change)
        with pytest.raises(error) as raised:
            kernels.Int4Weights(**args)
        assert words.lower() in str(raised.value).lower(), (change, raised.value)
    weights = kernels.Int4Weights(packed, scale, zero_point, 32, b)
    for x, error, words in BAD_X:
        with pytest.raises(error) as raised:
            weights(x)
        assert words.lower() in str(raised.value).lower(), (x.shape, raised.value)
