"""qlinear / PackedLinear: exact against the reference on every code path, within one LSB of
torch's quantized Linear (when torch.ao is importable: a test-only comparison)."""
import numpy as np
import pytest

from labkit import kernels
from labkit.kernels import reference


def random_layer(rng, m, n, k, per_channel=True, bias_range=2**20):
    x = rng.integers(0, 256, size=(m, k), dtype=np.uint8)
    w = rng.integers(-128, 128, size=(n, k), dtype=np.int8)
    bias = rng.integers(-bias_range, bias_range, size=n).astype(np.int32) if rng.random() < 0.8 else None
    if per_channel:
        multiplier = rng.integers(2**30, 2**31, size=n).astype(np.int32)
        shift = rng.integers(-24, 2, size=n).astype(np.int32)
    else:
        multiplier, shift = int(rng.integers(2**30, 2**31)), int(rng.integers(-24, 2))
    return x, w, bias, multiplier, shift


def test_random_cases(isa, rng):
    for case in range(1000):
        m, n, k = rng.integers(1, 50, size=3)
        x, w, bias, multiplier, shift = random_layer(rng, m, n, k, per_channel=case % 2 == 0)
        x_zp, out_zp, relu = int(rng.integers(0, 256)), int(rng.integers(0, 256)), bool(rng.integers(0, 2))
        got = kernels.qlinear(x, x_zp, w, bias, multiplier, shift, out_zp, relu)
        assert got.dtype == np.uint8 and got.shape == (m, n)
        np.testing.assert_array_equal(got, reference.qlinear(x, x_zp, w, bias, multiplier, shift, out_zp, relu))


@pytest.mark.parametrize("m, n, k", [(1, 1, 1), (65, 63, 1000), (256, 300, 784), (64, 10, 100), (3, 17, 65536)])
def test_model_shapes(isa, rng, m, n, k):
    x, w, bias, multiplier, shift = random_layer(rng, m, n, k)
    layer = kernels.PackedLinear(w, bias)
    assert (layer.out_features, layer.in_features) == (n, k)
    for x_zp, relu in ((0, False), (128, True), (255, False)):
        np.testing.assert_array_equal(layer.forward(x, x_zp, multiplier, shift, 7, relu),
                                      reference.qlinear(x, x_zp, w, bias, multiplier, shift, 7, relu))


def test_saturating_accumulator_path(isa, rng):
    """A bias near 2^31 makes the exact accumulator leave int32: it saturates, as in the reference."""
    x = np.full((5, 1000), 255, dtype=np.uint8)
    w = np.full((20, 1000), 127, dtype=np.int8)
    bias = np.full(20, 2**31 - 10, dtype=np.int32)
    bias[::2] = -(2**31)
    for x_zp in (0, 255):
        np.testing.assert_array_equal(kernels.qlinear(x, x_zp, w, bias, 2**30, -20, 100),
                                      reference.qlinear(x, x_zp, w, bias, 2**30, -20, 100))


def test_left_shift_multipliers(isa, rng):
    """Real multipliers >= 1 (shift > 0) saturate x * 2^shift before the high multiply."""
    x, w, bias, _, _ = random_layer(rng, 33, 40, 50)
    shift = rng.integers(0, 31, size=40).astype(np.int32)
    multiplier = rng.integers(1, 2**31, size=40).astype(np.int32)
    np.testing.assert_array_equal(kernels.qlinear(x, 9, w, bias, multiplier, shift, 128),
                                  reference.qlinear(x, 9, w, bias, multiplier, shift, 128))


@pytest.mark.filterwarnings("ignore::UserWarning")  # torch's quantized tensors are deprecated
@pytest.mark.parametrize("z_x", [0, 128, int(np.random.default_rng(4).integers(1, 255))])
def test_matches_torch_quantized_linear(z_x):
    """Within one LSB of torch.ao's quantized Linear (fbgemm/x86 requantize in float), for input zero
    points 0, 128 and a random one, so that the zero-point correction z_x · Σ_k w is checked too."""
    torch = pytest.importorskip("torch")
    nnq = pytest.importorskip("torch.ao.nn.quantized")
    generator = torch.Generator().manual_seed(z_x)
    s_x, s_out, z_out = 1 / 255, 0.08, 110
    x = torch.rand(64, 784, generator=generator) - z_x * s_x  # fills the codes [0, 255] with this z_x
    w = torch.randn(300, 784, generator=generator) * 0.05
    b = torch.randn(300, generator=generator) * 0.1
    w_scales = w.abs().amax(dim=1) / 127
    try:  # torch is phasing its quantized tensors out: skip, don't fail, once they are gone
        qx = torch.quantize_per_tensor(x, s_x, z_x, torch.quint8)
        qw = torch.quantize_per_channel(w, w_scales.double(), torch.zeros(300, dtype=torch.long), 0, torch.qint8)
        layer = nnq.Linear(784, 300, dtype=torch.qint8)
        layer.set_weight_bias(qw, b)
        layer.scale, layer.zero_point = s_out, z_out
        expected = layer(qx).int_repr().numpy().astype(np.int32)
    except (AttributeError, NotImplementedError, RuntimeError) as exc:
        pytest.skip(f"torch quantized Linear unavailable: {exc}")

    w_int = qw.int_repr().numpy()
    scales = qw.q_per_channel_scales().numpy()
    bias_int = np.round(b.numpy().astype(np.float64) / (s_x * scales)).astype(np.int32)
    pairs = [kernels.quantize_multiplier(s_x * s / s_out) for s in scales]
    multiplier = np.array([m for m, _ in pairs], dtype=np.int32)
    shift = np.array([s for _, s in pairs], dtype=np.int32)
    got = kernels.qlinear(qx.int_repr().numpy(), z_x, w_int, bias_int, multiplier, shift, z_out)
    difference = np.abs(got.astype(np.int32) - expected)
    assert difference.max() <= 1
    assert (difference == 0).mean() > 0.95
