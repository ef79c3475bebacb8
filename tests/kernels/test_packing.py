"""Packing the weights and the one-call ops: ``gemm_u8s8s32`` / ``qlinear`` pack w on every call (into
a work buffer the calling thread reuses) and must give exactly the integers of ``PackedLinear``,
which packs once, on every code path; packing edges (N, K not multiples of the panel or tile sizes),
the row sums packed with them, and nothing remembered between calls."""
import concurrent.futures
import itertools

import numpy as np
import pytest

from labkit import kernels
from labkit.kernels import api, reference

SIZES = (1, 3, 17, 63, 64, 65, 1000)
LENET_SHAPES = [(64, 784, 300), (256, 784, 300), (256, 300, 100), (256, 100, 10),  # LeNet-300-100
                (16 * 28 * 28, 25, 6), (16 * 10 * 10, 150, 16), (256, 400, 120)]  # LeNet-5 as GEMM


def operands(rng, m, k, n):
    return (rng.integers(0, 256, size=(m, k), dtype=np.uint8), rng.integers(-128, 128, size=(n, k), dtype=np.int8))


def requant_args(rng, n, per_channel):
    if per_channel:
        return (rng.integers(2**30, 2**31, size=n).astype(np.int32), rng.integers(-20, -6, size=n).astype(np.int32))
    return int(rng.integers(2**30, 2**31)), int(rng.integers(-20, -6))


def test_one_call_equals_packed_on_the_size_grid(isa, rng):
    """M, N, K over the edge sizes (K = 1000 only with small M, N: the grid is for edges)."""
    for m, n, k in itertools.product(SIZES, SIZES, (1, 3, 17, 63, 64, 65, 129)):
        a, b = operands(rng, m, k, n)
        layer = kernels.PackedLinear(b)
        one_call = kernels.gemm_u8s8s32(a, b)
        assert np.array_equal(one_call, layer.gemm(a)), (m, n, k)
        assert np.array_equal(one_call, reference.gemm_u8s8s32(a, b)), (m, n, k)


@pytest.mark.parametrize("m, k, n", LENET_SHAPES)
@pytest.mark.parametrize("per_channel", [False, True])
def test_qlinear_one_call_equals_packed_at_lenet_shapes(isa, rng, m, k, n, per_channel):
    a, w = operands(rng, m, k, n)
    bias = rng.integers(-2**16, 2**16, size=n).astype(np.int32)
    multiplier, shift = requant_args(rng, n, per_channel)
    layer = kernels.PackedLinear(w, bias)
    for x_zp, out_zp, relu in ((0, 0, False), (128, 128, True), (int(rng.integers(1, 255)), 77, False)):
        one_call = kernels.qlinear(a, x_zp, w, bias, multiplier, shift, out_zp, relu)
        np.testing.assert_array_equal(one_call, layer.forward(a, x_zp, multiplier, shift, out_zp, relu))
        np.testing.assert_array_equal(one_call, reference.qlinear(a, x_zp, w, bias, multiplier, shift, out_zp, relu))


def test_largest_k_one_call(isa, rng):
    """K = 65536 with the extreme products on the one-call path (its own packing and row sums)."""
    k = 65536
    a = rng.choice(np.array([0, 1, 254, 255], dtype=np.uint8), size=(33, k))
    w = rng.choice(np.array([-128, -127, 126, 127], dtype=np.int8), size=(18, k))
    np.testing.assert_array_equal(kernels.gemm_u8s8s32(a, w), reference.gemm_u8s8s32(a, w))
    bias = np.full(18, -7, np.int32)
    got = kernels.qlinear(a, 255, w, bias, 2**30, -24, 9, True)
    np.testing.assert_array_equal(got, reference.qlinear(a, 255, w, bias, 2**30, -24, 9, True))


@pytest.mark.parametrize("n, k", [(1, 1), (15, 63), (17, 65), (33, 4), (300, 784), (70, 4099), (5, 65536)])
def test_weight_row_sums(isa, rng, n, k):
    """The row sums computed while packing (the zero-point correction z_x * sum_k w), -128 included."""
    if api._ext is None:
        pytest.skip("compiled module not built")
    w = rng.integers(-128, 128, size=(n, k), dtype=np.int8)
    w[0, :] = -128
    layer = api._ext.PackedLinear(w, None)
    np.testing.assert_array_equal(layer.weight_sums, w.astype(np.int64).sum(axis=1))


def test_nothing_is_remembered_between_calls(isa, rng):
    """A learner's array may change between calls: the one-call ops must pack it again each time,
    and the thread's work buffer, reused from call to call (growing and shrinking shapes), must
    never leak one call's weights into the next."""
    a, w = operands(rng, 40, 300, 70)
    first = kernels.gemm_u8s8s32(a, w)
    w[3, 17] = -w[3, 17] - 1
    w[69, :] = 127
    np.testing.assert_array_equal(kernels.gemm_u8s8s32(a, w), reference.gemm_u8s8s32(a, w))
    assert not np.array_equal(first, kernels.gemm_u8s8s32(a, w))
    for m, k, n in [(5, 2000, 300), (3, 10, 2), (200, 784, 300), (1, 1, 1), (7, 129, 33)]:
        a, w = operands(rng, m, k, n)
        np.testing.assert_array_equal(kernels.gemm_u8s8s32(a, w), reference.gemm_u8s8s32(a, w))
        np.testing.assert_array_equal(kernels.qlinear(a, 3, w, None, 2**30, -12, 5),
                                      reference.qlinear(a, 3, w, None, 2**30, -12, 5))


def test_one_call_from_several_python_threads(isa, rng):
    """Each calling thread packs into its own work buffer: concurrent one-call ops do not mix."""
    cases = [operands(rng, m, k, n) for m, k, n in [(64, 784, 300), (9, 1000, 65), (130, 64, 17), (3, 5000, 40)] * 3]

    def run(case):
        a, w = case
        return np.array_equal(kernels.gemm_u8s8s32(a, w), reference.gemm_u8s8s32(a, w)) and np.array_equal(
            kernels.qlinear(a, 128, w, None, 2**30, -14, 128, True),
            reference.qlinear(a, 128, w, None, 2**30, -14, 128, True))

    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        assert all(pool.map(run, cases))


@pytest.mark.parametrize("threads", [2, 3])
def test_threaded_packing(isa, rng, threads):
    """Weights large enough (>= 256 KiB) to be packed by several threads, N and K off the panel sizes."""
    kernels.set_num_threads(threads)  # conftest's autouse fixture restores the count
    a, w = operands(rng, 37, 1111, 333)
    bias = rng.integers(-999, 999, size=333).astype(np.int32)
    np.testing.assert_array_equal(kernels.gemm_u8s8s32(a, w), reference.gemm_u8s8s32(a, w))
    np.testing.assert_array_equal(kernels.PackedLinear(w, bias).forward(a, 7, 2**30, -15, 1),
                                  reference.qlinear(a, 7, w, bias, 2**30, -15, 1))
    np.testing.assert_array_equal(kernels.qlinear(a, 7, w, bias, 2**30, -15, 1),
                                  reference.qlinear(a, 7, w, bias, 2**30, -15, 1))


@pytest.mark.parametrize("blocking", [(64, 8, 16), (128, 32, 32), (100, 33, 48), (4, 1, 1)])
def test_small_cache_blocks(isa, rng, blocking):
    """Tiny K blocks and tiles (partial sums carried between K blocks, every tile edge) on the same
    integers; restored afterwards. The AMX path rounds K blocks up to 64 bytes and tiles to 32 rows."""
    if api._ext is None or isa == "ref":
        pytest.skip("the compiled SIMD paths only")
    before = api._ext._get_blocking(isa)
    api._ext._set_blocking(isa, *blocking)
    try:
        for m, k, n in [(70, 300, 50), (33, 129, 17), (1, 1000, 3), (65, 65, 65)]:
            a, w = operands(rng, m, k, n)
            np.testing.assert_array_equal(kernels.gemm_u8s8s32(a, w), reference.gemm_u8s8s32(a, w))
            np.testing.assert_array_equal(kernels.qlinear(a, 200, w, None, 2**30, -13, 0, True),
                                          reference.qlinear(a, 200, w, None, 2**30, -13, 0, True))
    finally:
        api._ext._set_blocking(isa, *before)
