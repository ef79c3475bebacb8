"""The threaded paths (tiles of the GEMM, images of the convolution, rows of requantize) give the
same integers for any thread count."""
import os

import numpy as np
import pytest

from labkit import kernels
from labkit.kernels import reference


@pytest.fixture(params=[2, 3])
def threads(request):
    kernels.set_num_threads(request.param)  # conftest's autouse fixture restores the count
    expected = 1 if kernels.isa() == "numpy-reference" else request.param
    assert kernels.get_num_threads() == expected
    return request.param


def test_gemm(isa, threads, rng):
    for m, n, k in [(300, 130, 200), (1, 700, 3000), (1000, 6, 25), (513, 129, 1100)]:
        a = rng.integers(0, 256, size=(m, k), dtype=np.uint8)
        b = rng.integers(-128, 128, size=(n, k), dtype=np.int8)
        np.testing.assert_array_equal(kernels.gemm_u8s8s32(a, b), reference.gemm_u8s8s32(a, b))


def test_linear_and_requantize(isa, threads, rng):
    x = rng.integers(0, 256, size=(256, 784), dtype=np.uint8)
    w = rng.integers(-128, 128, size=(300, 784), dtype=np.int8)
    bias = rng.integers(-5000, 5000, size=300).astype(np.int32)
    multiplier = rng.integers(2**30, 2**31, size=300).astype(np.int32)
    shift = rng.integers(-16, -8, size=300).astype(np.int32)
    np.testing.assert_array_equal(kernels.qlinear(x, 5, w, bias, multiplier, shift, 100, True),
                                  reference.qlinear(x, 5, w, bias, multiplier, shift, 100, True))
    acc = rng.integers(-2**24, 2**24, size=(700, 300)).astype(np.int32)
    np.testing.assert_array_equal(kernels.requantize(acc, multiplier, shift, 9),
                                  reference.requantize(acc, multiplier, shift, 9))


@pytest.mark.parametrize("m", [1, 33, 1024, 1025])  # 1024: the most rows a fused one-call task takes
def test_one_call_ops_pack_inside_their_tasks(isa, threads, rng, m):
    """gemm_u8s8s32 and qlinear (on AMX: packing w block by block inside the GEMM's tasks, each
    task its own columns, with the row sums and column offsets of a linear layer; elsewhere packing
    first): the same integers as the reference and as the weights packed once, for column counts at
    and past the panel edges and K past the cache blocks (on AMX from 512 KiB of w: 130 x 4099 and
    512 x 1024; the smaller ones pack first)."""
    for n, k in [(16, 1), (17, 65), (100, 4099), (300, 784), (130, 4099), (512, 1024)]:
        x = rng.integers(0, 256, size=(m, k), dtype=np.uint8)
        w = rng.integers(-128, 128, size=(n, k), dtype=np.int8)
        bias = rng.integers(-5000, 5000, size=n).astype(np.int32)
        multiplier = rng.integers(2**30, 2**31, size=n).astype(np.int32)
        shift = rng.integers(-16, -8, size=n).astype(np.int32)
        expected = reference.qlinear(x, 200, w, bias, multiplier, shift, 7, False)
        np.testing.assert_array_equal(kernels.qlinear(x, 200, w, bias, multiplier, shift, 7), expected)
        np.testing.assert_array_equal(kernels.PackedLinear(w, bias).forward(x, 200, multiplier, shift, 7), expected)
        np.testing.assert_array_equal(kernels.gemm_u8s8s32(x, w), reference.gemm_u8s8s32(x, w))


@pytest.mark.parametrize("threads_used", [1, 2])
def test_one_call_edges(isa, rng, threads_used):
    """The one-call ops at the edges of the path that packs w block by block inside the tasks (AMX):
    narrow outputs (N < 16: qlinear packs w first), a bias too large for the int32 column offsets to
    be exact whatever w holds (packs first too), zero points 0 and 255 with ReLU, K = 65,536, and w
    at every offset from a 64-byte line (a view into a larger array); every w >= 512 KiB."""
    kernels.set_num_threads(threads_used)
    for m, n, k, bias_size, x_zp in [(40, 9, 65536, 5000, 0), (40, 15, 40000, 5000, 255), (70, 33, 16000, 2**31 - 1, 0),
                                     (33, 64, 8192, 5000, 255), (2, 17, 65536, 5000, 128)]:
        x = rng.integers(0, 256, size=(m, k), dtype=np.uint8)
        storage = rng.integers(-128, 128, size=n * k + 64, dtype=np.int8)
        offset = int(rng.integers(0, 64))
        w = storage[offset:offset + n * k].reshape(n, k)
        bias = rng.integers(-bias_size, bias_size, size=n, endpoint=True).astype(np.int32)
        multiplier = rng.integers(2**30, 2**31, size=n).astype(np.int32)
        shift = rng.integers(-16, -8, size=n).astype(np.int32)
        expected = reference.qlinear(x, x_zp, w, bias, multiplier, shift, 7, True)
        np.testing.assert_array_equal(kernels.qlinear(x, x_zp, w, bias, multiplier, shift, 7, True), expected)
        np.testing.assert_array_equal(kernels.gemm_u8s8s32(x, w), reference.gemm_u8s8s32(x, w))


@pytest.mark.parametrize("batch", [1, 7])
def test_conv_and_pool(isa, threads, rng, batch):
    x = rng.integers(0, 256, size=(batch, 3, 30, 30), dtype=np.uint8)
    w = rng.integers(-128, 128, size=(20, 3, 5, 5), dtype=np.int8)
    bias = rng.integers(-5000, 5000, size=20).astype(np.int32)
    got = kernels.qconv2d(x, 7, w, bias, 2**30, -12, 3, stride=1, padding=2, relu=True)
    np.testing.assert_array_equal(got, reference.qconv2d(x, 7, w, bias, 2**30, -12, 3, (1, 1), (2, 2), True))
    np.testing.assert_array_equal(kernels.maxpool2d_u8(got, 2), reference.maxpool2d_u8(got, (2, 2)))


# Each op asks OpenMP for at most one thread per piece of work: with 64 threads allowed, these calls
# (2 chunks of requantize rows, 2 pooling planes, 3 rows of the int64 epilogue) must not leave 64
# threads in OpenMP's pool. Counted in a fresh process: /proc/self/task lists its threads.
THREAD_COUNT = """
import os
import os

import numpy as np
from labkit import kernels
def threads():
    return len(os.listdir('/proc/self/task'))
acc = np.ones((128, 1024), np.int32)
x = np.ones((1, 2, 256, 256), np.uint8)
w, x_lin = np.full((20, 1000), 127, np.int8), np.full((3, 1000), 255, np.uint8)
bias = np.full(20, 2**31 - 10, np.int32)  # near 2**31: the int64 path
kernels.requantize(acc, 2**30, -1, 0); kernels.maxpool2d_u8(x, 2); kernels.qlinear(x_lin, 0, w, bias, 2**30, -20, 0)
before = threads()
kernels.set_num_threads(64)
kernels.requantize(acc, 2**30, -1, 0); kernels.maxpool2d_u8(x, 2); kernels.qlinear(x_lin, 0, w, bias, 2**30, -20, 0)
print(threads() - before)
"""


@pytest.mark.skipif(not os.path.isdir("/proc/self/task") or kernels.isa() == "numpy-reference",
                    reason="needs Linux /proc and the compiled module")
def test_no_more_threads_than_work_items(run_python):
    result = run_python(THREAD_COUNT, OMP_DYNAMIC="false", OMP_THREAD_LIMIT=None)
    assert result.returncode == 0, result.stderr[-2000:]
    assert int(result.stdout) <= 3  # 3 work items at most: up to 2 new pool threads, 1 spare
