"""Bad arguments raise TypeError / ValueError naming the argument, in the Python wrapper and in the
compiled module itself (called directly): never a crash."""
import numpy as np
import pytest

from labkit import kernels
from labkit.kernels import api

U8 = np.zeros((4, 8), dtype=np.uint8)
S8 = np.zeros((3, 8), dtype=np.int8)
ACC = np.zeros((4, 3), dtype=np.int32)
X4 = np.zeros((1, 2, 6, 6), dtype=np.uint8)
W4 = np.zeros((3, 2, 3, 3), dtype=np.int8)


def linear(**changes):
    args = dict(x=U8, x_zero_point=0, w=S8, bias=None, multiplier=2**30, shift=-1, out_zero_point=0, relu=False)
    args.update(changes)
    return kernels.qlinear(**args)


def conv(**changes):
    args = dict(x=X4, x_zero_point=0, w=W4, bias=None, multiplier=2**30, shift=-1, out_zero_point=0)
    args.update(changes)
    return kernels.qconv2d(**args)


BAD_CALLS = [
    # gemm_u8s8s32: dtype, not an array, ndim, contiguity, zero size, mismatched K, K too large
    (TypeError, "a must have dtype uint8", lambda: kernels.gemm_u8s8s32(U8.astype(np.int8), S8)),
    (TypeError, "b must have dtype int8", lambda: kernels.gemm_u8s8s32(U8, S8.astype(np.uint8))),
    (TypeError, "numpy.ndarray", lambda: kernels.gemm_u8s8s32(U8.tolist(), S8)),
    (ValueError, "2 dimensions", lambda: kernels.gemm_u8s8s32(U8[0], S8)),
    (ValueError, "C-contiguous", lambda: kernels.gemm_u8s8s32(np.zeros((8, 4), np.uint8).T, S8)),
    (ValueError, "zero-size", lambda: kernels.gemm_u8s8s32(U8[:0], S8)),
    (ValueError, "K differs", lambda: kernels.gemm_u8s8s32(U8, S8[:, :7].copy())),
    (ValueError, "65536", lambda: kernels.gemm_u8s8s32(np.zeros((1, 65537), np.uint8), np.zeros((1, 65537), np.int8))),
    # requantize: multiplier <= 0, shift range, zero point, per-channel length, dtype
    (ValueError, "multiplier", lambda: kernels.requantize(ACC, 0, -1, 0)),
    (ValueError, "multiplier", lambda: kernels.requantize(ACC, -5, -1, 0)),
    (ValueError, "multiplier", lambda: kernels.requantize(ACC, 2**31, -1, 0)),
    (ValueError, "shift", lambda: kernels.requantize(ACC, 2**30, -32, 0)),
    (ValueError, "shift", lambda: kernels.requantize(ACC, 2**30, 31, 0)),
    (ValueError, "out_zero_point", lambda: kernels.requantize(ACC, 2**30, -1, 256)),
    (ValueError, "out_zero_point", lambda: kernels.requantize(ACC, 2**30, -1, -1)),
    (ValueError, "one entry per output channel", lambda: kernels.requantize(ACC, np.full(4, 2**30, np.int32), -1, 0)),
    (ValueError, "one entry per output channel", lambda: kernels.requantize(ACC, 2**30, np.zeros(2, np.int32), 0)),
    (ValueError, "multiplier", lambda: kernels.requantize(ACC, np.array([2**30, 0, 2**30]), -1, 0)),
    (TypeError, "multiplier", lambda: kernels.requantize(ACC, 0.5, -1, 0)),
    (TypeError, "acc must have dtype int32", lambda: kernels.requantize(ACC.astype(np.int64), 2**30, -1, 0)),
    (TypeError, "relu", lambda: kernels.requantize(ACC, 2**30, -1, 0, relu="yes")),
    # qlinear / PackedLinear
    (ValueError, "x_zero_point", lambda: linear(x_zero_point=300)),
    (ValueError, "x_zero_point", lambda: linear(x_zero_point=-1)),
    (ValueError, "out_zero_point", lambda: linear(out_zero_point=256)),
    (ValueError, "bias", lambda: linear(bias=np.zeros(4, np.int32))),
    (TypeError, "bias", lambda: linear(bias=np.zeros(3, np.int64))),
    (ValueError, "K = 8", lambda: linear(x=np.zeros((2, 5), np.uint8))),
    (ValueError, "one entry per output channel", lambda: linear(multiplier=np.full(5, 2**30, np.int32))),
    (ValueError, "shift", lambda: linear(shift=40)),
    (TypeError, "w must have dtype int8", lambda: linear(w=S8.astype(np.int16))),
    (ValueError, "zero-size", lambda: linear(x=np.zeros((0, 8), np.uint8))),
    (ValueError, "C-contiguous", lambda: linear(x=np.zeros((8, 4), np.uint8).T)),
    # qconv2d / PackedConv2d / maxpool2d_u8
    (ValueError, "channels", lambda: conv(x=np.zeros((1, 3, 6, 6), np.uint8))),
    (ValueError, "4 dimensions", lambda: conv(x=np.zeros((2, 6, 6), np.uint8))),
    (ValueError, "smaller than the kernel", lambda: conv(x=np.zeros((1, 2, 2, 2), np.uint8))),
    (ValueError, "stride", lambda: conv(stride=0)),
    (ValueError, "padding", lambda: conv(padding=-1)),
    (ValueError, "x_zero_point", lambda: conv(x_zero_point=256)),
    (ValueError, "one entry per output channel", lambda: conv(shift=np.zeros(2, np.int32))),
    (ValueError, "padding", lambda: kernels.maxpool2d_u8(X4, 2, 2, 2)),
    (ValueError, "kernel_size", lambda: kernels.maxpool2d_u8(X4, 0)),
    (ValueError, "smaller than the kernel", lambda: kernels.maxpool2d_u8(X4, 7)),
    (TypeError, "x must have dtype uint8", lambda: kernels.maxpool2d_u8(X4.astype(np.int8))),
    (ValueError, r"kernel_size must be an integer in \[1, 65536\]", lambda: kernels.maxpool2d_u8(X4, 2**16 + 1)),
    (ValueError, r"stride must be an integer in \[1, 65536\]", lambda: kernels.maxpool2d_u8(X4, 2, 2**16 + 1)),
    # absurd stride / padding: bounded before any buffer is allocated
    (ValueError, r"stride must be an integer in \[1, 65536\]", lambda: conv(stride=10**9)),
    (ValueError, r"padding must be an integer in \[0, 65536\]", lambda: conv(padding=10**8)),
    (ValueError, r"padding must be an integer in \[0, 65536\]", lambda: conv(padding=(1, 2**16 + 1))),
    (ValueError, r"padded image .*\(1 GiB\)", lambda: conv(padding=2**15)),
    (ValueError, r"im2col patches .*\(1 GiB\)", lambda: conv(x=np.zeros((1, 1, 256, 256), np.uint8),
                                                         w=np.zeros((1, 1, 256, 256), np.int8), padding=64)),
    # requantize takes [..., N]: the messages say so
    (ValueError, "at least 1 dimension", lambda: kernels.requantize(np.array(5, np.int32), 2**30, -1, 0)),
    (ValueError, "C-contiguous", lambda: kernels.requantize(np.zeros((3, 4, 5), np.int32).T, 2**30, -1, 0)),
    # threads and ISA choice
    (ValueError, "n must be an integer", lambda: kernels.set_num_threads(0)),
    (ValueError, r"n must be an integer in \[1, 256\]", lambda: kernels.set_num_threads(257)),
    (ValueError, "name must be one of", lambda: kernels.set_isa("sse9")),
    (ValueError, "name must be one of", lambda: kernels.set_isa("amx512")),
    (ValueError, "name must be one of", lambda: kernels.unavailable_reason("amx512")),
    (TypeError, "name must be a string", lambda: kernels.unavailable_reason(None)),
]


@pytest.mark.parametrize("error, message, call", BAD_CALLS, ids=[f"{i}-{c[1][:20]}" for i, c in enumerate(BAD_CALLS)])
def test_wrapper_refuses(isa, error, message, call):
    with pytest.raises(error, match=message):
        call()


ext = api._ext
needs_ext = pytest.mark.skipif(ext is None, reason="compiled module not built")


def unaligned_int32(shape) -> np.ndarray:
    """Zeros in an int32 array one byte off its alignment (as numpy.frombuffer at an odd offset)."""
    count = int(np.prod(shape))
    array = np.frombuffer(bytearray(4 * count + 1), dtype=np.int32, count=count, offset=1).reshape(shape)
    assert not array.flags.aligned and array.flags.c_contiguous
    return array
M32 = np.array([2**30], np.int32)
SH = np.array([-1], np.int32)


@needs_ext
@pytest.mark.parametrize("error, call", [
    (TypeError, lambda: ext.gemm_u8s8s32(U8.astype(np.int8), S8)),
    (TypeError, lambda: ext.gemm_u8s8s32([[1]], S8)),
    (ValueError, lambda: ext.gemm_u8s8s32(U8, S8[:, :5].copy())),
    (ValueError, lambda: ext.gemm_u8s8s32(U8[:0], S8)),
    (ValueError, lambda: ext.gemm_u8s8s32(np.zeros((8, 4), np.uint8).T, S8)),
    (ValueError, lambda: ext.gemm_u8s8s32(U8[0], S8)),
    (ValueError, lambda: ext.gemm_u8s8s32(np.zeros((1, 65537), np.uint8), np.zeros((1, 65537), np.int8))),
    (ValueError, lambda: ext.requantize(ACC, np.array([0], np.int32), SH, 0)),
    (ValueError, lambda: ext.requantize(ACC, M32, np.array([-32], np.int32), 0)),
    (ValueError, lambda: ext.requantize(ACC, M32, SH, 256)),
    (ValueError, lambda: ext.requantize(ACC, np.full(2, 2**30, np.int32), SH, 0)),
    (TypeError, lambda: ext.requantize(ACC, M32.astype(np.int64), SH, 0)),
    (ValueError, lambda: ext.PackedLinear(S8, np.zeros(4, np.int32))),
    (TypeError, lambda: ext.PackedLinear(S8.astype(np.uint8), None)),
    (ValueError, lambda: ext.PackedLinear(S8, None).forward(U8, -1, M32, SH, 0, False)),
    (ValueError, lambda: ext.PackedLinear(S8, None).forward(U8[:, :5].copy(), 0, M32, SH, 0, False)),
    (ValueError, lambda: ext.PackedLinear(S8, None).gemm(U8[:, :5].copy())),
    (ValueError, lambda: ext.PackedConv2d(W4, None, 0, 1, 0, 0)),
    (ValueError, lambda: ext.PackedConv2d(W4, None, 1, 1, -1, 0)),
    (ValueError, lambda: ext.PackedConv2d(W4, None, 1, 1, 0, 0).forward(np.zeros((1, 3, 6, 6), np.uint8), 0, M32, SH, 0, False)),
    (ValueError, lambda: ext.PackedConv2d(W4, None, 1, 1, 0, 0).forward(np.zeros((1, 2, 2, 2), np.uint8), 0, M32, SH, 0, False)),
    (ValueError, lambda: ext.maxpool2d_u8(X4, 2, 2, 2, 2, 2, 0)),
    (ValueError, lambda: ext.maxpool2d_u8(X4, 9, 9, 1, 1, 0, 0)),
    (ValueError, lambda: ext.PackedConv2d(W4, None, 2**16 + 1, 1, 0, 0)),
    (ValueError, lambda: ext.PackedConv2d(W4, None, 1, 1, 0, 2**16 + 1)),
    (ValueError, lambda: ext.PackedConv2d(W4, None, 2**16, 2**16, 2**16, 2**16).forward(X4, 0, M32, SH, 0, False)),
    (ValueError, lambda: ext.maxpool2d_u8(X4, 2**16 + 1, 2, 2, 2, 0, 0)),
    (ValueError, lambda: ext.maxpool2d_u8(X4, 2, 2, 2**16 + 1, 2, 0, 0)),
    (ValueError, lambda: ext.requantize(unaligned_int32((4, 3)), M32, SH, 0)),
    (ValueError, lambda: ext.PackedLinear(S8, unaligned_int32((3,)))),
    (ValueError, lambda: ext.set_isa("amx512")),
    (ValueError, lambda: ext.qlinear(U8, 0, S8[:, :5].copy(), None, M32, SH, 0, False)),
    (ValueError, lambda: ext.qlinear(U8, 256, S8, None, M32, SH, 0, False)),
    (ValueError, lambda: ext.qlinear(U8, 0, S8, np.zeros(4, np.int32), M32, SH, 0, False)),
    (ValueError, lambda: ext.qlinear(U8, 0, S8, None, np.full(2, 2**30, np.int32), SH, 0, False)),
    (TypeError, lambda: ext.qlinear(U8, 0, S8.astype(np.uint8), None, M32, SH, 0, False)),
    (ValueError, lambda: ext.qlinear(U8[:0], 0, S8, None, M32, SH, 0, False)),
    (ValueError, lambda: ext._pack(S8, "amx512")),
    (ValueError, lambda: ext.set_num_threads(0)),
    (ValueError, lambda: ext.set_num_threads(257)),
    (ValueError, lambda: ext.quantize_multiplier(-1.0)),
    (ValueError, lambda: ext.quantize_multiplier(1e30)),
])
def test_compiled_module_refuses(error, call):
    with pytest.raises(error):
        call()


# The audit's crash: stride 10**9 and padding 10**8 made the convolution allocate a huge padded image
# inside an OpenMP region, where std::bad_alloc aborted the Python process (SIGABRT). In a
# subprocess, so that a regression fails this test instead of killing the test run.
ABSURD_CONVOLUTIONS = """
import numpy as np
from labkit import kernels
from labkit.kernels import api
kernels.set_num_threads(2)
x, w = np.zeros((2, 1, 4, 4), np.uint8), np.zeros((1, 1, 3, 3), np.int8)
calls = [lambda: kernels.qconv2d(x, 0, w, None, 2**30, -1, 0, stride=10**9, padding=10**8),
         lambda: kernels.qconv2d(x, 0, w, None, 2**30, -1, 0, stride=1, padding=2**16)]
if api._ext is not None:  # the compiled module without the wrapper's checks
    m, s = np.array([2**30], np.int32), np.array([-1], np.int32)
    calls += [lambda: api._ext.PackedConv2d(w, None, 10**9, 10**9, 10**8, 10**8).forward(x, 0, m, s, 0, False),
              lambda: api._ext.PackedConv2d(w, None, 1, 1, 2**16, 2**16).forward(x, 0, m, s, 0, False)]
for call in calls:
    try:
        call()
    except (ValueError, MemoryError) as exc:
        print("refused:", type(exc).__name__, exc)
    else:
        raise SystemExit("accepted an absurd convolution")
print("calls:", len(calls))
"""


def test_absurd_stride_and_padding_raise_instead_of_aborting(run_python):
    result = run_python(ABSURD_CONVOLUTIONS)
    assert result.returncode == 0, f"return code {result.returncode}: {result.stderr[-2000:]}"
    calls = int(result.stdout.split("calls:")[1])
    assert result.stdout.count("refused: ValueError") == calls
    assert "stride" in result.stdout and "padding" in result.stdout


@needs_ext
@pytest.mark.parametrize("threads", [1, 2, 7])
def test_exception_inside_a_parallel_region_reaches_python(run_python, threads):
    """A C++ exception thrown by a worker thread comes back as a Python exception after the region."""
    result = run_python("from labkit.kernels import api\n"
                        "try:\n"
                        f"    api._ext._throw_in_parallel_region(50, {threads})\n"
                        "except MemoryError:\n"
                        "    print('MemoryError')\n")
    assert result.returncode == 0 and result.stdout.strip() == "MemoryError", result.stderr[-2000:]
