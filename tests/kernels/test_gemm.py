"""gemm_u8s8s32 equals the reference exactly, for every code path, shape edge and extreme value."""
import functools
import itertools

import numpy as np
import pytest

from labkit import kernels
from labkit.kernels import reference

SIZES = (1, 3, 17, 63, 64, 65, 1000)


def random_u8(rng, shape):
    return rng.integers(0, 256, size=shape, dtype=np.uint8)


def random_s8(rng, shape):
    return rng.integers(-128, 128, size=shape, dtype=np.int8)


def test_reference_is_the_integer_product(rng):
    a, b = random_u8(rng, (5, 70)), random_s8(rng, (4, 70))
    exact = [[sum(int(a[m, k]) * int(b[n, k]) for k in range(70)) for n in range(4)] for m in range(5)]
    assert reference.gemm_u8s8s32(a, b).tolist() == exact


def test_random_small_shapes(isa, rng):
    for _ in range(1000):
        m, n, k = rng.integers(1, 40, size=3)
        a, b = random_u8(rng, (m, k)), random_s8(rng, (n, k))
        out = kernels.gemm_u8s8s32(a, b)
        assert out.dtype == np.int32 and out.shape == (m, n)
        np.testing.assert_array_equal(out, reference.gemm_u8s8s32(a, b))


@functools.lru_cache(maxsize=None)
def edge_operand(rows: int, k: int, signed: bool) -> np.ndarray:
    rng = np.random.default_rng(rows * 100003 + k * 7 + signed)
    return random_s8(rng, (rows, k)) if signed else random_u8(rng, (rows, k))


def test_edge_sizes(isa):
    """Every combination of M, N, K in SIZES (but 1000^3): register-block and tile edges. The scalar
    path, which has no blocking, skips the combinations with two sizes of 1000."""
    for m, n, k in itertools.product(SIZES, repeat=3):
        if (m, n, k).count(1000) == 3 or (isa == "ref" and (m, n, k).count(1000) == 2):
            continue
        a, b = edge_operand(m, k, False), edge_operand(n, k, True)
        assert np.array_equal(kernels.gemm_u8s8s32(a, b), reference.gemm_u8s8s32(a, b)), (m, n, k)


@pytest.mark.parametrize("a_value, b_value", [(255, -128), (255, 127), (0, -128), (255, 0), (1, -1)])
def test_extremes_at_the_largest_k(isa, a_value, b_value):
    k = 65536  # 255 * -128 * 65536 = -2 139 095 040: the most negative exact sum
    a = np.full((3, k), a_value, dtype=np.uint8)
    b = np.full((17, k), b_value, dtype=np.int8)
    out = kernels.gemm_u8s8s32(a, b)
    assert np.all(out == a_value * b_value * k)


def test_mixed_extremes_large_k(isa, rng):
    k = 65536
    a = rng.choice(np.array([0, 255], dtype=np.uint8), size=(5, k))
    b = rng.choice(np.array([-128, 127], dtype=np.int8), size=(19, k))
    np.testing.assert_array_equal(kernels.gemm_u8s8s32(a, b), reference.gemm_u8s8s32(a, b))


def test_packed_linear_gemm_reuses_the_weights(isa, rng):
    w = random_s8(rng, (70, 300))
    layer = kernels.PackedLinear(w)
    for m in (1, 7, 130):
        x = random_u8(rng, (m, 300))
        np.testing.assert_array_equal(layer.gemm(x), reference.gemm_u8s8s32(x, w))


def test_k_blocking_paths(isa, rng):
    """K longer than every cache block, with a tail that is not a multiple of 4."""
    a, b = random_u8(rng, (70, 4099)), random_s8(rng, (90, 4099))
    np.testing.assert_array_equal(kernels.gemm_u8s8s32(a, b), reference.gemm_u8s8s32(a, b))
