"""qconv2d / PackedConv2d and maxpool2d_u8: exact against the reference on every code path, and
against float convolution / torch pooling."""
import numpy as np
import pytest

from labkit import kernels
from labkit.kernels import reference


def random_conv(rng, batch, channels, size, out_channels, kernel):
    x = rng.integers(0, 256, size=(batch, channels, size, size), dtype=np.uint8)
    w = rng.integers(-128, 128, size=(out_channels, channels, kernel, kernel), dtype=np.int8)
    bias = rng.integers(-2**16, 2**16, size=out_channels).astype(np.int32)
    multiplier = rng.integers(2**30, 2**31, size=out_channels).astype(np.int32)
    shift = rng.integers(-20, -8, size=out_channels).astype(np.int32)
    return x, w, bias, multiplier, shift


def test_random_cases(isa, rng):
    for _ in range(1000):
        batch, channels, out_channels = rng.integers(1, 4), rng.integers(1, 5), rng.integers(1, 20)
        kernel, stride, padding = int(rng.integers(1, 6)), int(rng.integers(1, 4)), int(rng.integers(0, 3))
        size = int(rng.integers(max(1, kernel - 2 * padding), 12))
        x, w, bias, multiplier, shift = random_conv(rng, batch, channels, size, out_channels, kernel)
        x_zp, relu = int(rng.integers(0, 256)), bool(rng.integers(0, 2))
        got = kernels.qconv2d(x, x_zp, w, bias, multiplier, shift, 99, stride, padding, relu)
        want = reference.qconv2d(x, x_zp, w, bias, multiplier, shift, 99, (stride, stride), (padding, padding), relu)
        assert got.dtype == np.uint8 and got.shape == want.shape
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("batch, channels, size, out_channels, kernel, padding",
                         [(16, 1, 28, 6, 5, 2), (4, 6, 14, 16, 5, 0), (2, 3, 32, 64, 3, 1)])
def test_lenet_shapes(isa, rng, batch, channels, size, out_channels, kernel, padding):
    x, w, bias, multiplier, shift = random_conv(rng, batch, channels, size, out_channels, kernel)
    layer = kernels.PackedConv2d(w, bias, stride=1, padding=padding)
    np.testing.assert_array_equal(layer.forward(x, 3, multiplier, shift, 5, relu=True),
                                  reference.qconv2d(x, 3, w, bias, multiplier, shift, 5, (1, 1),
                                                    (padding, padding), True))


def test_rectangular_stride_and_padding(isa, rng):
    x = rng.integers(0, 256, size=(2, 3, 11, 9), dtype=np.uint8)
    w = rng.integers(-128, 128, size=(5, 3, 3, 2), dtype=np.int8)
    got = kernels.qconv2d(x, 17, w, None, 2**30, -10, 0, stride=(2, 1), padding=(1, 0))
    want = reference.qconv2d(x, 17, w, None, 2**30, -10, 0, (2, 1), (1, 0))
    np.testing.assert_array_equal(got, want)


def test_close_to_float_convolution(isa, rng):
    """Integer result = round(M * exact accumulator) + z_out up to the second rounding (1 LSB);
    padding with the zero point is padding with real 0.0."""
    torch = pytest.importorskip("torch")
    x, w, bias, _, _ = random_conv(rng, 3, 2, 10, 7, 3)
    x_zp, out_zp = 120, 90
    real = 0.0007 * np.linspace(0.5, 1.5, 7)
    pairs = [kernels.quantize_multiplier(r) for r in real]
    multiplier = np.array([m for m, _ in pairs], np.int32)
    shift = np.array([s for _, s in pairs], np.int32)
    got = kernels.qconv2d(x, x_zp, w, bias, multiplier, shift, out_zp, 1, 1)
    acc = torch.nn.functional.conv2d(torch.from_numpy(x.astype(np.float64) - x_zp),
                                     torch.from_numpy(w.astype(np.float64)),
                                     torch.from_numpy(bias.astype(np.float64)), padding=1).numpy()
    fixed_point = (multiplier * 2.0 ** (shift - 31))[None, :, None, None]
    expected = np.clip(np.round(acc * fixed_point) + out_zp, 0, 255)
    assert np.abs(got - expected).max() <= 1


def test_maxpool_random_cases(isa, rng):
    for _ in range(1000):
        kernel = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        stride = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        padding = (int(rng.integers(0, kernel[0] // 2 + 1)), int(rng.integers(0, kernel[1] // 2 + 1)))
        shape = (int(rng.integers(1, 3)), int(rng.integers(1, 4)), int(rng.integers(3, 10)), int(rng.integers(3, 10)))
        x = rng.integers(0, 256, size=shape, dtype=np.uint8)
        np.testing.assert_array_equal(kernels.maxpool2d_u8(x, kernel, stride, padding),
                                      reference.maxpool2d_u8(x, kernel, stride, padding))


@pytest.mark.parametrize("kernel, stride, padding", [(2, None, 0), (3, 2, 1), (3, 1, 0), ((2, 3), (1, 2), (1, 1))])
def test_maxpool(isa, rng, kernel, stride, padding):
    x = rng.integers(0, 256, size=(3, 4, 13, 12), dtype=np.uint8)
    got = kernels.maxpool2d_u8(x, kernel, stride, padding)
    pair = lambda v: v if isinstance(v, tuple) else (v, v)  # noqa: E731
    want = reference.maxpool2d_u8(x, pair(kernel), None if stride is None else pair(stride), pair(padding))
    np.testing.assert_array_equal(got, want)
    torch = pytest.importorskip("torch")
    expected = torch.nn.functional.max_pool2d(torch.from_numpy(x.astype(np.float32)), kernel, stride, padding)
    np.testing.assert_array_equal(got, expected.numpy().astype(np.uint8))
