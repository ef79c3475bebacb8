"""The public int8 kernel functions: argument checks, then the compiled module or the numpy reference.

Every function takes C-contiguous numpy arrays (torch tensors: ``t.numpy()``), checks dtypes,
shapes and ranges here with messages that name the argument, then calls ``labkit.kernels._int8``
(which checks again and never crashes the process). Without the compiled module, the same
functions run ``labkit.kernels.reference`` and one warning says so. The limits below are the
compiled module's too (``labkit/kernels/src/driver.h``).
Explained in notebooks/04_integer_inference.ipynb.
"""
from __future__ import annotations

import importlib
import os
import warnings

import numpy as np

from labkit.validate import require_choice, require_float, require_int, require_pair

from . import reference

KNOWN_ISAS = ("ref", "avx2", "avx512vnni", "amx")
HIDEABLE_ISAS = KNOWN_ISAS[1:]  # LABKIT_HIDE_ISA (tests only) never hides the scalar fallback
FALLBACK_ISA = "numpy-reference"
MAX_K = reference.MAX_K
MAX_THREADS = 256                # set_num_threads(n): n in [1, MAX_THREADS]
MAX_STRIDE = MAX_PADDING = MAX_POOL_KERNEL = 2**16
MAX_IMAGE_BYTES = 2**30          # per image: the padded input, and its im2col patches (1 GiB each)


def _load_extension():
    """Import the compiled module, or warn once and return None (the numpy reference is used)."""
    try:
        return importlib.import_module("labkit.kernels._int8")
    except ImportError as exc:
        warnings.warn(
            f"labkit.kernels: the compiled int8 module is not available ({exc}); using the slow "
            "numpy reference instead. Rebuild it with `pip install --no-build-isolation -e .`.",
            RuntimeWarning, stacklevel=3)
        return None


_ext = _load_extension()


def _hidden_isas() -> tuple[str, ...]:
    """The ISAs named in ``LABKIT_HIDE_ISA=amx,avx512vnni,avx2`` (a test-only switch, read at import by
    the compiled module too): it treats them as missing from the CPU."""
    names = tuple(n.strip() for n in os.environ.get("LABKIT_HIDE_ISA", "").split(",") if n.strip())
    for name in names:
        if name not in HIDEABLE_ISAS:
            raise ValueError(f"LABKIT_HIDE_ISA must list names among {', '.join(HIDEABLE_ISAS)} "
                             f"(ref cannot be hidden), got {name!r}")
    return names


HIDDEN_ISAS = _hidden_isas()


# ---- ISA and threads ------------------------------------------------------------------------
def available_isas() -> list[str]:
    """Names of the code paths this machine can run, slowest first (``["numpy-reference"]`` without
    the compiled module). ``amx`` is listed only where the CPU has AMX-INT8 (Intel Xeon Sapphire
    Rapids and later) and the OS granted labkit the tile-data permission (Linux ``arch_prctl``,
    asked once at import); it is then the default."""
    return list(_ext.available_isas()) if _ext is not None else [FALLBACK_ISA]


def isa() -> str:
    """Name of the code path in use: ``ref``, ``avx2``, ``avx512vnni``, ``amx`` or ``numpy-reference``."""
    return _ext.isa() if _ext is not None else FALLBACK_ISA


def unavailable_reason(name: str) -> str:
    """Why the code path ``name`` (one of ref, avx2, avx512vnni, amx) cannot run here, ``""`` when it
    can: e.g. for ``amx`` "this CPU lacks amx_int8 (...)" or "the OS refused the permission to use AMX
    tile data (...)". Explained in notebooks/04_integer_inference.ipynb."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a string, one of {', '.join(KNOWN_ISAS)}; got {name!r}")
    require_choice("name", name, KNOWN_ISAS)
    if _ext is None:
        return "the compiled module is not built"
    return _ext._isa_unavailable_reason(name)


def set_isa(name: str) -> None:
    """Force a code path (as the environment variable ``LABKIT_ISA`` does at import); raises
    ``ValueError`` for an unknown name or one this CPU / OS / build lacks, saying which."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a string, one of {', '.join(KNOWN_ISAS)}; got {name!r}")
    available = available_isas()
    if name == FALLBACK_ISA and _ext is None:
        return
    require_choice("name", name, KNOWN_ISAS)
    if name not in available:
        raise ValueError(f"ISA {name!r} is not available ({unavailable_reason(name)}); "
                         f"available: {', '.join(available)}")
    _ext.set_isa(name)


def get_num_threads() -> int:
    """Threads the kernels use: ``set_num_threads``, else OpenMP's default (OMP_NUM_THREADS/cores,
    at most MAX_THREADS)."""
    return _ext.get_num_threads() if _ext is not None else 1


def set_num_threads(n: int) -> None:
    """Use ``n`` threads in the kernels, ``1 <= n <= MAX_THREADS`` (256), like
    ``torch.set_num_threads``; an op never starts more threads than it has pieces of work."""
    n = require_int("n", n, 1, MAX_THREADS)
    if _ext is not None:
        _ext.set_num_threads(n)


# ---- argument checks ------------------------------------------------------------------------
def _require_array(name: str, value, dtype, ndim: int | None) -> np.ndarray:
    """``value`` if it is a C-contiguous, non-empty ndarray of ``dtype`` with ``ndim`` dimensions
    (None: at least one). An unaligned one (e.g. numpy.frombuffer at an odd offset) is copied: the
    compiled module reads int32 through int32 pointers, which must be aligned."""
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray of dtype {np.dtype(dtype).name} "
                        f"(torch tensors: pass t.numpy()), got {type(value).__name__}")
    if value.dtype != dtype:
        raise TypeError(f"{name} must have dtype {np.dtype(dtype).name}, got {value.dtype}")
    if ndim is None and value.ndim < 1:
        raise ValueError(f"{name} must have at least 1 dimension ([..., N]), got shape {value.shape}")
    if ndim is not None and value.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {value.shape}")
    if not value.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous (use numpy.ascontiguousarray), got strides {value.strides}")
    if value.size == 0:
        raise ValueError(f"{name} must not have a zero-size dimension, got shape {value.shape}")
    return value if value.flags.aligned else value.copy()


def _require_k(k: int, what: str) -> None:
    if k > MAX_K:
        raise ValueError(f"{what} must be <= {MAX_K} so that int32 sums are exact (255*128*K < 2**31), got {k}")


def _per_channel(name: str, value, n: int, low: int, high: int) -> np.ndarray:
    """A scalar or a 1-D integer array of length n, each entry in [low, high] -> int32 [n]."""
    if isinstance(value, np.ndarray) and value.ndim > 0:
        if value.dtype.kind not in "iu":
            raise TypeError(f"{name} must hold integers, got dtype {value.dtype}")
        if value.ndim != 1 or value.shape[0] != n:
            raise ValueError(f"{name} must be a scalar or have one entry per output channel ({n}), "
                             f"got shape {value.shape}")
        if (_ext is not None and value.dtype == np.int32 and value.flags.c_contiguous
                and value.flags.aligned):
            return value  # as passed: the compiled module checks every entry's range (its message names it)
        if value.min() < low or value.max() > high:
            bad = value[(value < low) | (value > high)][0]
            raise ValueError(f"{name} must be in [{low}, {high}], got an entry {bad}")
        return np.require(value, np.int32, ["C_CONTIGUOUS", "ALIGNED"])  # copies only if needed
    if isinstance(value, np.ndarray):
        value = value.item()
    return np.full(n, require_int(name, value, low, high), dtype=np.int32)


def _requant_args(multiplier, shift, out_zero_point, relu, n):
    multiplier = _per_channel("multiplier", multiplier, n, 1, 2**31 - 1)
    shift = _per_channel("shift", shift, n, -31, 30)
    out_zero_point = require_int("out_zero_point", out_zero_point, 0, 255)
    if not isinstance(relu, (bool, np.bool_)):
        raise TypeError(f"relu must be a bool, got {type(relu).__name__}")
    return multiplier, shift, out_zero_point, bool(relu)


def _bias(bias, n: int):
    if bias is None:
        return None
    bias = _require_array("bias", bias, np.int32, 1)
    if bias.shape[0] != n:
        raise ValueError(f"bias must have one entry per output channel ({n}), got shape {bias.shape}")
    return bias


# ---- the kernels ----------------------------------------------------------------------------
def gemm_u8s8s32(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact integer matrix product ``a @ b.T``: a uint8 [M, K], b int8 [N, K] -> int32 [M, N],
    for K <= 65536 (reference.py, step 1). Packs b on every call (at memory speed; nothing is
    cached, so b may change between calls): PackedLinear packs it once for repeated calls.
    Explained in notebooks/04_integer_inference.ipynb."""
    a = _require_array("a", a, np.uint8, 2)
    b = _require_array("b", b, np.int8, 2)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"a is [M, K] = {list(a.shape)} and b is [N, K] = {list(b.shape)}: K differs")
    _require_k(a.shape[1], "K")
    return _ext.gemm_u8s8s32(a, b) if _ext is not None else reference.gemm_u8s8s32(a, b)


def quantize_multiplier(real_multiplier: float) -> tuple[int, int]:
    """Fixed-point form of a real multiplier M > 0, as TFLite's QuantizeMultiplier:
    ``(m, shift)`` with int32 m in [2**30, 2**31) and ``M ≈ m * 2**(shift - 31)``, shift in
    [-31, 30] (reference.py, step 3). Explained in notebooks/04_integer_inference.ipynb."""
    real = require_float("real_multiplier", real_multiplier, 0.0, low_open=True)
    if _ext is not None:
        return tuple(_ext.quantize_multiplier(real))
    return reference.quantize_multiplier(real)


def requantize(acc: np.ndarray, multiplier, shift, out_zero_point: int, relu: bool = False) -> np.ndarray:
    """int32 accumulators [..., N] -> uint8: ``clamp(z_out + acc * m * 2**(shift-31))`` with
    TFLite's two roundings; ``multiplier``/``shift`` are scalars or one per column (the last axis);
    with ``relu`` the lower clamp is ``out_zero_point`` (reference.py, step 4).
    Explained in notebooks/04_integer_inference.ipynb."""
    acc = _require_array("acc", acc, np.int32, None)
    rows = acc.reshape(-1, acc.shape[-1])  # a view: acc is C-contiguous
    args = _requant_args(multiplier, shift, out_zero_point, relu, rows.shape[1])
    out = _ext.requantize(rows, *args) if _ext is not None else reference.requantize(rows, *args)
    return out.reshape(acc.shape)


class PackedLinear:
    """A quantized linear layer's weights, packed once for the SIMD kernels: w int8 [N, K]
    (symmetric, per-output-channel scales), bias int32 [N] or None. ``forward(x, ...)`` returns
    uint8 [M, N] = requantize(Σ_k (x - x_zero_point) w + bias) with zero-point correction, bias,
    requantization and ReLU fused (reference.py, steps 1-4); ``gemm(x)`` returns the raw int32
    ``x @ w.T``. Explained in notebooks/04_integer_inference.ipynb."""

    def __init__(self, w: np.ndarray, bias: np.ndarray | None = None):
        w = _require_array("w", w, np.int8, 2)
        _require_k(w.shape[1], "in_features (K)")
        self.out_features, self.in_features = w.shape
        bias = _bias(bias, self.out_features)
        if _ext is not None:
            self._packed = _ext.PackedLinear(w, bias)
        else:
            self._w, self._bias = w.copy(), None if bias is None else bias.copy()

    def _check_x(self, x) -> np.ndarray:
        x = _require_array("x", x, np.uint8, 2)
        if x.shape[1] != self.in_features:
            raise ValueError(f"x is [M, K] = {list(x.shape)} but the layer has K = {self.in_features}")
        return x

    def gemm(self, x: np.ndarray) -> np.ndarray:
        """int32 [M, N] = x @ w.T for x uint8 [M, K]."""
        x = self._check_x(x)
        return self._packed.gemm(x) if _ext is not None else reference.gemm_u8s8s32(x, self._w)

    def forward(self, x: np.ndarray, x_zero_point: int, multiplier, shift, out_zero_point: int,
                relu: bool = False) -> np.ndarray:
        """uint8 [M, N] for x uint8 [M, K]; multiplier/shift per tensor or per output channel."""
        x = self._check_x(x)
        x_zero_point = require_int("x_zero_point", x_zero_point, 0, 255)
        args = _requant_args(multiplier, shift, out_zero_point, relu, self.out_features)
        if _ext is not None:
            return self._packed.forward(x, x_zero_point, *args)
        return reference.qlinear(x, x_zero_point, self._w, self._bias, *args)

    __call__ = forward


def qlinear(x: np.ndarray, x_zero_point: int, w: np.ndarray, bias, multiplier, shift,
            out_zero_point: int, relu: bool = False) -> np.ndarray:
    """Quantized linear layer in one call: x uint8 [M, K], w int8 [N, K], bias int32 [N] or None
    -> uint8 [M, N], the same integers as ``PackedLinear(w, bias).forward(x, ...)``. Packs w (and
    its row sums) on every call, at memory speed, remembering nothing; PackedLinear packs it once.
    Explained in notebooks/04_integer_inference.ipynb."""
    if _ext is None:
        return PackedLinear(w, bias).forward(x, x_zero_point, multiplier, shift, out_zero_point, relu)
    w = _require_array("w", w, np.int8, 2)  # the checks and messages of PackedLinear, in its order
    _require_k(w.shape[1], "in_features (K)")
    bias = _bias(bias, w.shape[0])
    x = _require_array("x", x, np.uint8, 2)
    if x.shape[1] != w.shape[1]:
        raise ValueError(f"x is [M, K] = {list(x.shape)} but w has K = {w.shape[1]}")
    x_zero_point = require_int("x_zero_point", x_zero_point, 0, 255)
    args = _requant_args(multiplier, shift, out_zero_point, relu, w.shape[0])
    return _ext.qlinear(x, x_zero_point, w, bias, *args)


def _check_int4_weights(packed, scale, zero_point, group_size: int, bias, k: int | None = None) -> None:
    """The checks of the compiled int4 weights (int4_bindings.cpp / int8.cpp), for the numpy fallback:
    K is x's width (the one-call op) or ``2 * packed.shape[1]`` (Int4Weights)."""
    packed = _require_array("packed", packed, np.uint8, 2)
    n, k = packed.shape[0], 2 * packed.shape[1] if k is None else k
    if packed.shape[1] != k // 2:
        raise ValueError(f"packed must be [N, K/2] = [N, {k // 2}] for x of width K = {k}, got {list(packed.shape)}")
    if k % group_size:
        raise ValueError(f"group_size must divide K = {k}, got {group_size}")
    for name, value, dtype in (("scale", scale, np.float32), ("zero_point", zero_point, np.uint8)):
        value = _require_array(name, value, dtype, 2)
        if value.shape != (n, k // group_size):
            raise ValueError(f"{name} must be [N, K/group_size] = [{n}, {k // group_size}], got {list(value.shape)}")
    if zero_point.max() > 15:
        raise ValueError(f"zero_point entries must be in [0, 15] (4-bit codes), got {zero_point.max()}")
    if bias is not None and _require_array("bias", bias, np.float32, 1).shape[0] != n:
        raise ValueError(f"bias must have {n} entries (one per output), got {bias.shape[0]}")


def _check_int4_args(x, packed, scale, zero_point, group_size, bias) -> None:
    """The checks of the compiled int4_linear (int8.cpp), for the numpy fallback."""
    x = _require_array("x", x, np.float32, 2)
    if x.shape[1] % 2:
        raise ValueError(f"x's width K must be even (two 4-bit codes per byte), got {x.shape[1]}")
    _check_int4_weights(packed, scale, zero_point, group_size, bias, k=x.shape[1])


def int4_linear(x: np.ndarray, packed: np.ndarray, scale: np.ndarray, zero_point: np.ndarray,
                group_size: int, bias: np.ndarray | None = None) -> np.ndarray:
    """Int4 weight-only linear layer ``x Wᵀ + b`` with float32 activations, in labkit.llm.int4's format:
    x float32 [M, K] (or [K] -> [N]); ``packed`` uint8 [N, K/2] (``pack_int4``: column 2j in the low
    nibble of byte j, 2j+1 in the high one); ``scale`` float32 and ``zero_point`` uint8 (0..15)
    [N, K/group_size], one per group of ``group_size`` consecutive columns (it must divide K);
    ``bias`` float32 [N] or None. ``W[n, k] = (q[n, k] − z[n, g])·s[n, g]``, g = k // group_size;
    returns float32 [M, N]. Computed as ``Σ_g s·(Σ_{k∈g} x·q − z·Σ_{k∈g} x)``, the codes decoded to
    float32 in registers (never a float weight matrix): at batch 1 it reads 0.5 byte per weight plus
    5 bytes per group, against 4 bytes per weight in float32. Accumulates in float32, in another order
    than ``reference.int4_linear``: the difference is within float32 rounding (tests: ``K·2⁻²⁴`` times
    ``Σ_k |x_k|·s·(q_k + z) + |b|``). AVX-512 (amx / avx512vnni paths) and AVX2 kernels, chosen as
    for the int8 ops; group sizes that are not a multiple of 32 run on the scalar path. AWQ's input
    scale is not applied here: divide x by it first. Bad arguments raise TypeError / ValueError
    naming them. Explained in notebooks/16_transformer_compression.ipynb."""
    group_size = require_int("group_size", group_size, 1)
    vector = isinstance(x, np.ndarray) and x.ndim == 1
    if vector:
        x = x.reshape(1, -1)
    if _ext is not None:  # the compiled module checks every argument (its messages name them)
        out = _ext.int4_linear(x, packed, scale, zero_point, group_size, bias)
    else:
        _check_int4_args(x, packed, scale, zero_point, group_size, bias)
        out = reference.int4_linear(x, packed, scale, zero_point, group_size, bias)
    return out[0] if vector else out


class Int4Weights:
    """An int4 weight-only layer prepared once for repeated calls (batch-1 decoding): the arguments of
    ``int4_linear`` without x — ``packed`` uint8 [N, K/2], ``scale`` float32 and ``zero_point`` uint8
    (0..15) [N, K/group_size], ``bias`` float32 [N] or None — checked here, once, and copied into the
    layout of the kernel (16 output rows in the SIMD lanes, 8 columns per 32-bit word; the zero point
    folded into one term per group, ``s·(Σ q·x) − s·z·(Σ x)``; src/int4.h). ``forward(x)`` (also
    ``w(x)``) checks only x — float32 [K] → [N] or [M, K] → [M, N], C-contiguous — and returns the same
    numbers as ``int4_linear`` within float32 rounding (another summation order). The copy is taken at
    construction: later changes to the arrays passed in are not seen (build a new one). Paths:
    AVX-512 (amx / avx512vnni), AVX2, scalar (group sizes not a multiple of 8); ``path`` says which a
    call takes now. Explained in notebooks/16_transformer_compression.ipynb."""

    def __init__(self, packed: np.ndarray, scale: np.ndarray, zero_point: np.ndarray, group_size: int,
                 bias: np.ndarray | None = None):
        group_size = require_int("group_size", group_size, 1)
        if _ext is not None:  # the compiled module checks every argument (its messages name them)
            self._weights = _ext.Int4Weights(packed, scale, zero_point, group_size, bias)
            self.forward = self._weights.forward  # the call goes straight to C++: no Python frame
            self.in_features, self.out_features = self._weights.in_features, self._weights.out_features
        else:
            _check_int4_weights(packed, scale, zero_point, group_size, bias)
            self._arrays = tuple(None if a is None else a.copy() for a in (packed, scale, zero_point, bias))
            self.out_features, self.in_features = packed.shape[0], 2 * packed.shape[1]
        self.group_size = group_size

    @property
    def path(self) -> str:
        """The code path a call takes now: ``amx``/``avx512vnni`` (both the AVX-512 kernel), ``avx2``,
        ``ref``, or ``numpy-reference`` without the compiled module."""
        return self._weights.path if _ext is not None else FALLBACK_ISA

    def forward(self, x: np.ndarray) -> np.ndarray:  # the numpy fallback (replaced above when compiled)
        """float32 [K] -> [N] or [M, K] -> [M, N]."""
        x = _require_array("x", x, np.float32, None)
        if x.ndim > 2:
            raise ValueError(f"x must have 1 or 2 dimensions, got shape {x.shape}")
        rows = x.reshape(-1, x.shape[-1])
        if rows.shape[1] != self.in_features:
            raise ValueError(f"x is {list(x.shape)} but the layer has K = {self.in_features} inputs")
        out = reference.int4_linear(rows, self._arrays[0], self._arrays[1], self._arrays[2], self.group_size,
                                    self._arrays[3]).astype(np.float32)
        return out[0] if x.ndim == 1 else out

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x)


def _check_image_buffers(shape, kernel, stride, padding) -> None:
    """The work buffers of one image of a convolution (conv.cpp), each within MAX_IMAGE_BYTES: the
    padded image C*(H+2*pad_h)*(W+2*pad_w) and its im2col patches OH*OW*C*KH*KW (bytes). Checked
    before anything is allocated, so that no padding or stride can ask for absurd memory."""
    channels, height, width = shape[1:]
    out_h, out_w = (reference.conv_output_size(*axis) for axis in zip((height, width), kernel, stride, padding))
    padded = channels * (height + 2 * padding[0]) * (width + 2 * padding[1])
    patches = out_h * out_w * channels * kernel[0] * kernel[1]
    for what, size in (("the padded image (C*(H+2*padding)*(W+2*padding) bytes)", padded),
                       ("one image's im2col patches (OH*OW*C*KH*KW bytes)", patches)):
        if size > MAX_IMAGE_BYTES:
            raise ValueError(f"{what} would need {size} bytes, more than {MAX_IMAGE_BYTES} (1 GiB): use less "
                             f"padding (got {tuple(padding)}) or a smaller image (got shape {tuple(shape)})")


class PackedConv2d:
    """A quantized 2-D convolution, weights packed once. Layout: input NCHW uint8, weights OIHW
    int8 (symmetric, per-output-channel scales), bias int32 [O] or None, output NCHW uint8
    [B, O, OH, OW]; ``OH = (H + 2*pad - KH) // stride + 1``. Computed as im2col (padding filled with
    the input zero point) times the weights on the GEMM micro-kernel, requantization fused
    (reference.py, step 5). No groups or dilation. ``stride`` in [1, 65536], ``padding`` in
    [0, 65536], and per image both the padded input and its im2col patches (OH*OW rows of C*KH*KW
    bytes) within MAX_IMAGE_BYTES (1 GiB). Explained in notebooks/04_integer_inference.ipynb."""

    def __init__(self, w: np.ndarray, bias: np.ndarray | None = None, stride=1, padding=0):
        w = _require_array("w", w, np.int8, 4)
        self.out_channels, self.in_channels, self.kernel_h, self.kernel_w = w.shape
        _require_k(self.in_channels * self.kernel_h * self.kernel_w, "C*KH*KW")
        self.stride = require_pair("stride", stride, 1, MAX_STRIDE)
        self.padding = require_pair("padding", padding, 0, MAX_PADDING)
        bias = _bias(bias, self.out_channels)
        if _ext is not None:
            self._packed = _ext.PackedConv2d(w, bias, *self.stride, *self.padding)
        else:
            self._w, self._bias = w.copy(), None if bias is None else bias.copy()

    def _check_x(self, x) -> np.ndarray:
        x = _require_array("x", x, np.uint8, 4)
        if x.shape[1] != self.in_channels:
            raise ValueError(f"x has {x.shape[1]} channels (shape {x.shape}) but w expects {self.in_channels}")
        kernel = (self.kernel_h, self.kernel_w)
        for size, k, pad, axis in zip(x.shape[2:], kernel, self.padding, ("height", "width")):
            if size + 2 * pad < k:
                raise ValueError(f"x {axis} {size} + 2*padding {pad} is smaller than the kernel {k}")
        _check_image_buffers(x.shape, kernel, self.stride, self.padding)
        return x

    def forward(self, x: np.ndarray, x_zero_point: int, multiplier, shift, out_zero_point: int,
                relu: bool = False) -> np.ndarray:
        """uint8 [B, O, OH, OW] for x uint8 [B, C, H, W]."""
        x = self._check_x(x)
        x_zero_point = require_int("x_zero_point", x_zero_point, 0, 255)
        args = _requant_args(multiplier, shift, out_zero_point, relu, self.out_channels)
        if _ext is not None:
            return self._packed.forward(x, x_zero_point, *args)
        return reference.qconv2d(x, x_zero_point, self._w, self._bias, *args[:3], self.stride,
                                 self.padding, args[3])

    __call__ = forward


def qconv2d(x: np.ndarray, x_zero_point: int, w: np.ndarray, bias, multiplier, shift,
            out_zero_point: int, stride=1, padding=0, relu: bool = False) -> np.ndarray:
    """Quantized 2-D convolution in one call: x uint8 NCHW [B, C, H, W], w int8 OIHW, bias int32 [O]
    or None -> uint8 NCHW [B, O, OH, OW]; padding uses the input zero point (see PackedConv2d).
    Explained in notebooks/04_integer_inference.ipynb."""
    layer = PackedConv2d(w, bias, stride, padding)
    return layer.forward(x, x_zero_point, multiplier, shift, out_zero_point, relu)


def maxpool2d_u8(x: np.ndarray, kernel_size=2, stride=None, padding=0) -> np.ndarray:
    """Max pooling of uint8 NCHW codes [B, C, H, W] -> [B, C, OH, OW], ``kernel_size`` and ``stride``
    (default: ``kernel_size``) in [1, 65536], ``padding <= kernel_size // 2`` (padded cells never
    win, as in torch). Explained in notebooks/04_integer_inference.ipynb."""
    x = _require_array("x", x, np.uint8, 4)
    kernel = require_pair("kernel_size", kernel_size, 1, MAX_POOL_KERNEL)
    stride = kernel if stride is None else require_pair("stride", stride, 1, MAX_STRIDE)
    padding = require_pair("padding", padding, 0)
    for k, p, size, axis in zip(kernel, padding, x.shape[2:], ("height", "width")):
        if 2 * p > k:
            raise ValueError(f"padding must be in [0, kernel_size // 2], got {p} for a kernel of {k}")
        if size + 2 * p < k:
            raise ValueError(f"x {axis} {size} + 2*padding {p} is smaller than the kernel {k}")
    if _ext is not None:
        return _ext.maxpool2d_u8(x, *kernel, *stride, *padding)
    return reference.maxpool2d_u8(x, kernel, stride, padding)


def _apply_environment() -> None:
    """Honour LABKIT_ISA=ref|avx2|avx512vnni|amx; an unavailable choice raises ValueError at import,
    with the reason (for amx: the CPU lacks it, or the OS refused the tile-data permission)."""
    forced = os.environ.get("LABKIT_ISA", "").strip()
    if forced:
        try:
            set_isa(forced)
        except ValueError as exc:
            raise ValueError(f"LABKIT_ISA={forced!r}: {exc}") from None


_apply_environment()
