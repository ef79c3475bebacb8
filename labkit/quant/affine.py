"""Affine (uniform) quantization: scale, zero point, quantize, dequantize, error metrics.

A real number ``x`` is stored as an integer ``x_q`` on a grid of ``2^b`` equally spaced levels::

    x_q = clamp(round(x / s) + z, qmin, qmax)        quantize
    x̂   = (x_q - z) · s                              dequantize
    s   = (max - min) / (qmax - qmin)                scale (step between two levels)
    z   = qmin - round(min / s)                      zero point (the integer that stands for 0.0)

with ``[qmin, qmax] = [0, 2^b - 1]`` (unsigned) or ``[-2^(b-1), 2^(b-1) - 1]`` (signed). The range
``[min, max]`` is always widened to contain 0, so that 0.0 is *exactly* representable (it is the
level ``z``): zero-padding of a convolution and the zeros produced by ReLU then cost no error, and a
ReLU or max-pool applied to quantized values gives values that are still on the grid.
Symmetric quantization fixes ``z`` (0 for signed, ``2^(b-1)`` for unsigned) and uses
``s = max(|min|, |max|) / ((qmax - qmin) / 2)``. The arithmetic follows ``torch.ao``'s observers
exactly (float32, scale clamped below by float32 eps), so the scale and zero point are bit-for-bit
those of PyTorch.

Granularity — the one vocabulary of labkit.quant: ``granularity="tensor"`` (one ``(s, z)``),
``"channel"`` (one per index of ``axis``) or ``"group"`` (each channel's values, in memory order, cut
into runs of ``group_size``). Every per-channel computation goes through ``channel_view(x, axis)``
(``x`` as ``[C, N / C]``), ``from_channel_view`` and ``broadcast_channels``. Model-level functions keep
``per_channel: bool`` for weights; ``weight_granularity`` translates it (``("channel", 0)``) and
``weight_qparams`` is the one home of weight parameters.

Explained in notebooks/01_quantization_basics.ipynb
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from labkit.validate import (require_bool, require_choice, require_float, require_float_tensor, require_int,
                             require_module)

__all__ = [
    "GRANULARITIES", "SCALE_GRANULARITIES", "SCHEMES", "FLOAT32_EPS", "QParams", "qrange", "storage_dtype",
    "qparams_from_range", "quantize", "dequantize", "fake_quantize", "quantize_tensor",
    "tensor_range", "mse", "sqnr_db", "quantize_activation", "grid_levels", "quantized_nbytes",
    "WeightQuantization", "quantize_weight", "weight_quantization_error",
    "check_bits", "check_axis", "check_qparams", "apply_qparams", "SYMMETRIC_VARIANTS", "symmetric_grid",
    "channel_view", "from_channel_view", "broadcast_channels", "check_granularity", "weight_granularity", "stored_axis",
    "weight_qparams",
]

GRANULARITIES = ("tensor", "channel", "group")
SCALE_GRANULARITIES = ("tensor", "channel")  # what observers and LSQ keep: one range/step per tensor or channel
SCHEMES = ("symmetric", "asymmetric")
SYMMETRIC_VARIANTS = ("full", "restricted")  # see symmetric_grid
FLOAT32_EPS = torch.finfo(torch.float32).eps  # smallest scale, as in torch.ao (avoids s = 0)


# --------------------------------------------------------------------------- the parameters
def qrange(bits: int, signed: bool) -> tuple[int, int]:
    """The integer range ``(qmin, qmax)`` of a ``bits``-bit integer: ``(-2^(b-1), 2^(b-1) - 1)``
    if ``signed`` else ``(0, 2^b - 1)``. Explained in notebooks/01_quantization_basics.ipynb."""
    bits = check_bits(bits)
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


def storage_dtype(bits: int, signed: bool) -> torch.dtype:
    """The smallest torch integer dtype that holds every code of a ``bits``-bit quantizer."""
    bits = check_bits(bits)
    if bits <= 8:
        return torch.int8 if signed else torch.uint8
    return torch.int16 if signed else torch.int32


@dataclass
class QParams:
    """Quantization parameters of one tensor: ``scale`` float32 and ``zero_point`` int32 tensors.

    Shapes: ``[]`` per tensor (``axis is None``), ``[C]`` per channel (``C = x.shape[axis]``),
    ``[C, G]`` per group (``G = numel_per_channel / group_size``). ``qmin``/``qmax`` give the integer
    range, ``levels`` the number of grid points ``qmax - qmin + 1 = 2^bits`` (``2^bits - 1`` for the
    ``"restricted"`` symmetric ``variant``, whose float64 scale ``weight_qparams`` makes; see ``symmetric_grid``).
    Explained in notebooks/01_quantization_basics.ipynb.
    """

    scale: torch.Tensor
    zero_point: torch.Tensor
    bits: int = 8
    signed: bool = False
    symmetric: bool = False
    axis: int | None = None
    group_size: int | None = None
    variant: str = "full"

    @property
    def qmin(self) -> int:
        if self.variant == "restricted":
            return symmetric_grid(self.bits, "restricted")[1]
        return qrange(self.bits, self.signed)[0]

    @property
    def qmax(self) -> int:
        return qrange(self.bits, self.signed)[1]

    @property
    def levels(self) -> int:
        return self.qmax - self.qmin + 1

    @property
    def granularity(self) -> str:
        if self.group_size is not None:
            return "group"
        return "tensor" if self.axis is None else "channel"

    def num_params(self) -> int:
        """How many (scale, zero point) pairs these parameters hold."""
        return self.scale.numel()


# --------------------------------------------------------------------------- argument checks
def check_bits(bits, low: int = 1, high: int = 16) -> int:
    """``bits`` as an int in ``[low, high]``: [1, 16] for the affine grid (int16 storage holds 16 bits);
    quantizers with a narrower valid range pass theirs (a codebook index packs into ≤ 8 bits)."""
    return require_int("bits", bits, low, high)


def symmetric_grid(bits: int, variant: str = "full") -> tuple[float, int, int]:
    """``(d, qmin, qmax)`` of a signed symmetric grid: scale ``s = max|x| / d``, codes ``q ∈ [qmin, qmax]``.

    labkit uses two named variants (8-bit values in brackets):

    * ``"full"``: ``d = (2^b − 1) / 2`` (127.5), ``q ∈ [−2^(b−1), 2^(b−1) − 1]`` (−128 … 127) — every
      code of the ``b``-bit grid, as ``torch.ao``; ``qparams_from_range(symmetric=True)`` and so
      observers, PTQ, QAT and the hidden layers of ``quant.integer`` use it.
    * ``"restricted"``: ``d = 2^(b−1) − 1`` (127), ``q ∈ [−(2^(b−1) − 1), 2^(b−1) − 1]`` (−127 … 127) — a
      grid symmetric about 0 (``−x`` gets code ``−q``; −128 is never used), as TFLite's int8 weights;
      ``weight_qparams(variant="restricted")`` — ``quant.integer``'s int32 logits layer — and
      ``nonuniform.uniform_quantize`` use it. ``bits`` ≥ 2.

    Explained in notebooks/01_quantization_basics.ipynb and notebooks/04_integer_inference.ipynb.
    """
    require_choice("variant", variant, SYMMETRIC_VARIANTS)
    if variant == "full":
        bits = check_bits(bits)
        return (2 ** bits - 1) / 2, -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    q = 2 ** (check_bits(bits, 2) - 1) - 1
    return float(q), -q, q


def check_axis(axis, ndim: int) -> int:
    """``axis`` of a tensor with ``ndim`` dimensions, as a non-negative int (``-1`` → ``ndim - 1``)."""
    axis = require_int("axis", axis)
    if ndim == 0 or not -ndim <= axis < ndim:
        raise ValueError(f"axis must be an integer in [{-ndim}, {ndim - 1}] for a tensor with "
                         f"{ndim} dimensions, got {axis}")
    return axis % ndim


def check_granularity(granularity, choices=GRANULARITIES) -> str:
    """``granularity`` if it is one of ``choices`` (``ValueError`` naming them otherwise)."""
    return require_choice("granularity", granularity, choices)


# --------------------------------------------------------------------------- the channel view
def channel_view(x: torch.Tensor, axis: int) -> torch.Tensor:
    """``x`` as ``[C, N / C]``: row ``c`` holds every value of channel ``c`` (index ``c`` along ``axis``),
    in memory order of the other dimensions (``x.movedim(axis, 0).reshape(C, -1)``; a view when it can
    be). A negative ``axis`` counts from the end. Per-channel statistics are reductions over dim 1
    (``channel_view(w, 0).abs().amax(1)`` is ``max|w|`` per output channel ``[C]``); ``from_channel_view``
    goes back, ``broadcast_channels`` spreads a ``[C]`` result over ``x``.
    Explained in notebooks/01_quantization_basics.ipynb.
    """
    axis = check_axis(axis, x.dim())
    return x.movedim(axis, 0).reshape(x.shape[axis], -1)


def from_channel_view(v: torch.Tensor, like: torch.Tensor, axis: int) -> torch.Tensor:
    """Inverse of ``channel_view``: ``v`` (``like.numel()`` values, channel ``axis`` first, in any shape
    such as ``[C, N / C]`` or ``[C, G, group_size]``) back to ``like``'s shape.
    Explained in notebooks/01_quantization_basics.ipynb."""
    axis = check_axis(axis, like.dim())
    return v.reshape(like.movedim(axis, 0).shape).movedim(0, axis)


def broadcast_channels(param: torch.Tensor, ndim: int, axis: int | None) -> torch.Tensor:
    """A per-channel ``[C]`` tensor reshaped to broadcast against an ``ndim``-dimensional tensor along
    ``axis`` (``[1, …, C, …, 1]``); unchanged when ``axis`` is None or ``param`` is a scalar.
    Explained in notebooks/01_quantization_basics.ipynb."""
    if axis is None or param.dim() == 0:
        return param
    shape = [1] * ndim
    shape[check_axis(axis, ndim)] = -1
    return param.reshape(shape)


def _as_float32(name: str, value) -> torch.Tensor:
    if isinstance(value, bool) or not isinstance(value, (int, float, torch.Tensor)):
        raise TypeError(f"{name} must be a number or a tensor, got {type(value).__name__}")
    t = torch.as_tensor(value, dtype=torch.float32)
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} must be finite (found NaN or Inf)")
    return t


# --------------------------------------------------------------------------- scale and zero point
def qparams_from_range(min_val, max_val, bits: int = 8, symmetric: bool = False, signed: bool = False,
                       axis: int | None = None, group_size: int | None = None) -> QParams:
    """Scale and zero point that map the float range ``[min_val, max_val]`` onto ``bits``-bit codes.

    ``min_val``/``max_val``: numbers or float tensors of equal shape (``[]``, ``[C]`` or ``[C, G]``).
    The range is first widened to contain 0 (``min⁻ = min(min, 0)``, ``max⁺ = max(max, 0)``); then
    asymmetric: ``s = (max⁺ - min⁻) / (qmax - qmin)``, ``z = clamp(qmin - round(min⁻ / s), qmin, qmax)``;
    symmetric: ``s = max(-min⁻, max⁺) / ((qmax - qmin) / 2)``, ``z = 0`` (signed) or ``2^(b-1)``
    (unsigned). ``s`` is clamped below by float32 eps, so ``min == max`` gives a tiny step, not a
    division by zero — exactly what ``torch.ao`` does. Raises ``ValueError`` if ``min_val > max_val``.
    ``axis``/``group_size`` are recorded to tell later calls how the parameters broadcast.
    Explained in notebooks/01_quantization_basics.ipynb.
    """
    bits = check_bits(bits)
    require_bool("symmetric", symmetric)
    require_bool("signed", signed)
    min_val, max_val = _as_float32("min_val", min_val), _as_float32("max_val", max_val)
    if min_val.shape != max_val.shape:
        raise ValueError(f"min_val and max_val must have the same shape, got {tuple(min_val.shape)} "
                         f"and {tuple(max_val.shape)}")
    if bool((min_val > max_val).any()):
        raise ValueError(f"min_val must be <= max_val, got min_val={min_val.tolist()} > max_val={max_val.tolist()}")
    if axis is not None:
        axis = require_int("axis", axis, 0, None)
    if group_size is not None:
        group_size = require_int("group_size", group_size, 1, None)
    qmin, qmax = qrange(bits, signed)
    min_neg = torch.minimum(min_val, torch.zeros_like(min_val))  # 0 must be on the grid
    max_pos = torch.maximum(max_val, torch.zeros_like(max_val))
    eps = torch.tensor(FLOAT32_EPS, dtype=torch.float32)
    if symmetric:
        half_range = symmetric_grid(bits, "full")[0]  # 127.5 for 8 bits, as in torch.ao
        scale = torch.maximum(torch.maximum(-min_neg, max_pos) / half_range, eps)
        zero_point = torch.full_like(scale, 0 if signed else 1 << (bits - 1), dtype=torch.int32)
    else:
        scale = torch.maximum((max_pos - min_neg) / float(qmax - qmin), eps)
        zero_point = qmin - torch.round(min_neg / scale).to(torch.int32)
        zero_point = zero_point.clamp(qmin, qmax)
    return QParams(scale, zero_point, bits, signed, symmetric, axis, group_size)


# --------------------------------------------------------------------------- reshaping for granularity
def _grouped(x: torch.Tensor, axis: int, group_size: int) -> torch.Tensor:
    """View ``x`` as ``[C, G, group_size]``: the ``channel_view`` cut into groups (a 1-D ``x`` is one channel)."""
    rows = x.reshape(1, -1) if x.dim() == 1 else channel_view(x, axis)
    per_channel = rows.shape[1]
    if per_channel % group_size:
        raise ValueError(f"group_size must divide the {per_channel} values of each channel, got {group_size}")
    return rows.reshape(rows.shape[0], per_channel // group_size, group_size)


def _ungrouped(g: torch.Tensor, like: torch.Tensor, axis: int) -> torch.Tensor:
    """Inverse of ``_grouped``: back to the shape of ``like``."""
    return g.reshape(like.shape) if like.dim() == 1 else from_channel_view(g, like, axis)


def apply_qparams(x: torch.Tensor, qp: QParams, fn) -> torch.Tensor:
    """Run ``fn(x, scale, zero_point)`` with ``qp``'s parameters broadcast to ``x``'s granularity
    (per tensor, per channel along ``qp.axis``, or per group of ``qp.group_size``); returns ``x``'s shape."""
    if qp.group_size is not None:
        g = _grouped(x, qp.axis or 0, qp.group_size)
        out = fn(g, qp.scale.unsqueeze(-1), qp.zero_point.unsqueeze(-1))
        return _ungrouped(out, x, qp.axis or 0)
    return fn(x, broadcast_channels(qp.scale, x.dim(), qp.axis), broadcast_channels(qp.zero_point, x.dim(), qp.axis))


def check_qparams(qp) -> QParams:
    """``qp`` if it is a ``QParams`` (``TypeError`` otherwise)."""
    if not isinstance(qp, QParams):
        raise TypeError(f"qp must be a QParams, got {type(qp).__name__}")
    return qp


# --------------------------------------------------------------------------- quantize / dequantize
def quantize(x: torch.Tensor, qp: QParams) -> torch.Tensor:
    """Integer codes ``x_q = clamp(round(x / s) + z, qmin, qmax)`` (round half to even).

    ``x`` float of any shape; returns the same shape in the smallest integer dtype that holds
    ``[qmin, qmax]`` (``storage_dtype``). Explained in notebooks/01_quantization_basics.ipynb.
    """
    x, qp = require_float_tensor("x", x), check_qparams(qp)
    x = x.double() if qp.scale.dtype == torch.float64 else x.float()  # float64: the restricted weight grid
    codes = apply_qparams(x, qp, lambda v, s, z: (torch.round(v / s) + z).clamp(qp.qmin, qp.qmax))
    return codes.to(storage_dtype(qp.bits, qp.signed))


def dequantize(q: torch.Tensor, qp: QParams) -> torch.Tensor:
    """Back to float32: ``x̂ = (x_q - z) · s``; ``q`` integer codes of any shape.
    Explained in notebooks/01_quantization_basics.ipynb."""
    check_qparams(qp)
    if not isinstance(q, torch.Tensor):
        raise TypeError(f"q must be a torch.Tensor, got {type(q).__name__}")
    return apply_qparams(q.float(), qp, lambda v, s, z: (v - z) * s)


def fake_quantize(x: torch.Tensor, qp: QParams, *, check: bool = True) -> torch.Tensor:
    """Quantize then dequantize in one go, staying in float32: ``(clamp(round(x/s)+z) - z) · s``.

    The result has ``x``'s shape, takes at most ``2^bits`` distinct values (per channel/group),
    and differs from ``x`` by at most ``s/2`` inside the range. No gradient flows through the
    rounding here; ``labkit.quant.fake_quant`` adds the straight-through estimator. ``check=False``
    skips the argument checks (a layer's forward pass, whose ``x`` and ``qp`` are already trusted).
    Explained in notebooks/01_quantization_basics.ipynb.
    """
    if check:
        x, qp = require_float_tensor("x", x).float(), check_qparams(qp)

    def fq(v, s, z):
        return ((torch.round(v / s) + z).clamp(qp.qmin, qp.qmax) - z) * s
    return apply_qparams(x, qp, fq)


def tensor_range(x: torch.Tensor, granularity: str = "tensor", axis: int = 0,
                 group_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(min, max)`` of ``x`` per tensor (shape ``[]``), per channel along ``axis`` (``[C]``) or per
    group (``[C, G]``). Explained in notebooks/01_quantization_basics.ipynb."""
    x = require_float_tensor("x", x)
    check_granularity(granularity)
    if x.numel() == 0:
        raise ValueError("x must not be empty")
    if granularity == "tensor":
        return torch.aminmax(x.float())
    axis = check_axis(axis, x.dim())
    if granularity == "channel":
        return torch.aminmax(channel_view(x.float(), axis), dim=1)
    if group_size is None:
        raise ValueError("group_size must be given (an integer >= 1) when granularity='group'")
    group_size = require_int("group_size", group_size, 1, None)
    return torch.aminmax(_grouped(x.float(), axis, group_size), dim=2)


def quantize_tensor(x: torch.Tensor, bits: int = 8, symmetric: bool = False, signed: bool = False,
                    granularity: str = "tensor", axis: int = 0,
                    group_size: int | None = None) -> tuple[torch.Tensor, QParams]:
    """Quantize ``x`` with parameters taken from its own min/max: returns ``(x_q, qp)``.

    ``granularity`` is ``"tensor"`` (one scale), ``"channel"`` (one per index of ``axis``, e.g.
    ``axis=0`` = output channel of a weight ``[C_out, C_in, k, k]``) or ``"group"`` (one per run of
    ``group_size`` consecutive values within each channel). ``x_q`` has ``x``'s shape.
    Explained in notebooks/01_quantization_basics.ipynb.
    """
    bits = check_bits(bits)
    lo, hi = tensor_range(x, granularity, axis, group_size)
    axis = None if granularity == "tensor" else check_axis(axis, x.dim())
    qp = qparams_from_range(lo, hi, bits, symmetric, signed, axis=axis,
                            group_size=group_size if granularity == "group" else None)
    return quantize(x, qp), qp


# --------------------------------------------------------------------------- weights (model-level switch)
def weight_granularity(per_channel: bool) -> tuple[str, int | None]:
    """The model-level switch in the tensor vocabulary: ``per_channel=True`` → ``("channel", 0)`` (one
    scale per output channel, dim 0 of a weight ``[C_out, ...]``), ``False`` → ``("tensor", None)``.
    Every ``per_channel`` flag of labkit (PTQ, QAT, mixed precision, ``DynamicQuantLinear``,
    ``quant.integer``, ``binary``) goes through here. Explained in notebooks/03_post_training_quantization.ipynb.
    """
    return ("channel", 0) if require_bool("per_channel", per_channel) else ("tensor", None)


def stored_axis(granularity: str, axis) -> int | None:
    """The ``axis`` a quantizer or observer keeps for ``granularity``: None for ``"tensor"`` — where an
    ``axis`` passed is refused with ``ValueError`` rather than ignored (``MinMaxObserver(axis=1)`` must not
    quietly mean one scale for the whole tensor) — and an int (default 0; range checked against the
    first input) for ``"channel"`` and ``"group"``."""
    if check_granularity(granularity) == "tensor":
        if axis is not None:
            raise ValueError(f"axis={axis!r} is used only with granularity='channel' (one scale per index of "
                             f"that axis); pass granularity='channel', axis={axis!r}, or leave axis out")
        return None
    return 0 if axis is None else require_int("axis", axis)


def weight_qparams(weight: torch.Tensor, bits: int = 8, per_channel: bool = True, symmetric: bool = True,
                   variant: str = "full") -> QParams:
    """Signed parameters for a weight ``[C_out, ...]``: one scale per output channel (``per_channel``:
    ``granularity="channel", axis=0``) or one per tensor — the one home of weight parameters.

    ``variant`` (symmetric only, see ``symmetric_grid``): ``"full"`` = ``qparams_from_range`` on the
    weight's min/max (float32 scale ``max|w| / 127.5`` at 8 bits, torch's qint8 ``per_channel_symmetric``;
    asymmetric with ``symmetric=False``); ``"restricted"`` = ``s = max|w| / 127`` computed in float64
    (scale 1 for an all-zero channel), codes −127 … 127 — what ``quant.integer``'s int32 logits layer
    uses. Explained in notebooks/03_post_training_quantization.ipynb and notebooks/04_integer_inference.ipynb.
    """
    require_float_tensor("weight", weight)
    granularity, axis = weight_granularity(per_channel)
    require_bool("symmetric", symmetric)
    if require_choice("variant", variant, SYMMETRIC_VARIANTS) == "restricted":
        if not symmetric:
            raise ValueError("variant='restricted' is a symmetric grid: pass symmetric=True")
        return _restricted_qparams(weight, bits, granularity, axis)
    lo, hi = tensor_range(weight.detach(), granularity, axis)
    return qparams_from_range(lo, hi, bits, symmetric, signed=True, axis=axis)   # axis is None per tensor


def _restricted_qparams(weight: torch.Tensor, bits: int, granularity: str, axis: int | None) -> QParams:
    divisor = symmetric_grid(bits, "restricted")[0]
    w = weight.detach().double()
    amax = channel_view(w, axis).abs().amax(dim=1) if granularity == "channel" else w.abs().max()
    scale = torch.where(amax > 0, amax / divisor, torch.ones_like(amax))
    return QParams(scale, torch.zeros_like(scale, dtype=torch.int32), bits, signed=True, symmetric=True,
                   axis=axis, variant="restricted")


# --------------------------------------------------------------------------- error metrics
def mse(x: torch.Tensor, x_hat: torch.Tensor) -> float:
    """Mean squared error ``mean((x - x̂)²)`` between two tensors of the same shape."""
    x, x_hat = _check_same("x", x, "x_hat", x_hat)
    return torch.mean((x.double() - x_hat.double()) ** 2).item()


def sqnr_db(x: torch.Tensor, x_hat: torch.Tensor) -> float:
    """Signal-to-quantization-noise ratio ``10·log10(Σx² / Σ(x - x̂)²)`` in decibels.

    Each extra bit halves the step and gains ``20·log10(2) ≈ 6.02`` dB; for data spread uniformly
    over the quantization range, ``SQNR ≈ 6.02·b`` dB. Returns ``inf`` when ``x̂ == x``.
    Explained in notebooks/01_quantization_basics.ipynb.
    """
    x, x_hat = _check_same("x", x, "x_hat", x_hat)
    signal = torch.sum(x.double() ** 2).item()
    noise = torch.sum((x.double() - x_hat.double()) ** 2).item()
    if noise == 0.0:
        return math.inf
    if signal == 0.0:
        return -math.inf
    return 10.0 * math.log10(signal / noise)


def _check_same(name_a, a, name_b, b):
    require_float_tensor(name_a, a), require_float_tensor(name_b, b)
    if a.shape != b.shape:
        raise ValueError(f"{name_a} and {name_b} must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    return a, b


# --------------------------------------------------------------------------- seed 001 §4.1.2
def quantize_activation(x: torch.Tensor, a: float, b: float, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Uniform activation quantization over ``[a, b]`` with ``2^k`` levels (seed 001 §4.1.2).

    ``Δ = (b - a) / (2^k - 1)``, ``q = clamp(round((x - a) / Δ), 0, 2^k - 1)``, ``x̂ = a + q·Δ``.
    Returns ``(q, x̂)``: codes (``uint8`` up to 8 bits, wider above) and float32 values, both of
    ``x``'s shape. The seed forgets the clamp (values outside ``[a, b]`` would get codes outside
    ``[0, 2^k - 1]``) and, unlike ``qparams_from_range``, this grid puts 0.0 on a level only when
    ``a / Δ`` is an integer. ``a == b`` gives ``q = 0``, ``x̂ = a``; ``a > b`` raises ``ValueError``.
    Explained in notebooks/01_quantization_basics.ipynb.
    """
    x = require_float_tensor("x", x)
    a, b = require_float("a", a), require_float("b", b)
    bits = check_bits(bits)
    if a > b:
        raise ValueError(f"a must be <= b (the range [a, b]), got a={a}, b={b}")
    top = (1 << bits) - 1
    dtype = storage_dtype(bits, signed=False)
    if a == b:
        return torch.zeros_like(x, dtype=dtype), torch.full_like(x, a, dtype=torch.float32)
    step = (b - a) / top
    q = torch.round((x.float() - a) / step).clamp(0, top)
    return q.to(dtype), a + q * step


# --------------------------------------------------------------------------- for the chapter 01 widget
def grid_levels(qp: QParams) -> torch.Tensor:
    """Every value the quantizer can output: ``(k - z)·s`` for ``k = qmin..qmax``.

    Shape ``[L]`` per tensor, ``[C, L]`` per channel, ``[C, G, L]`` per group (``L = 2^bits``).
    Explained in notebooks/01_quantization_basics.ipynb.
    """
    qp = check_qparams(qp)
    codes = torch.arange(qp.qmin, qp.qmax + 1, dtype=torch.float32)
    return (codes - qp.zero_point.unsqueeze(-1).float()) * qp.scale.unsqueeze(-1)


def quantized_nbytes(qp: QParams, numel: int) -> int:
    """Bytes to store ``numel`` codes bit-packed plus the parameters: ``ceil(numel·b/8)`` + 4 bytes
    per float32 scale + 4 bytes per int32 zero point (asymmetric only: a symmetric zero point is a
    constant). Explained in notebooks/01_quantization_basics.ipynb."""
    qp = check_qparams(qp)
    numel = require_int("numel", numel, 0, None)
    params = qp.num_params() * (4 if qp.symmetric else 8)
    return math.ceil(numel * qp.bits / 8) + params


@dataclass
class WeightQuantization:
    """What ``quantize_weight`` returns: codes, parameters, dequantized weight, grid, error, size."""

    codes: torch.Tensor
    qparams: QParams
    dequantized: torch.Tensor
    levels: torch.Tensor
    sqnr_db: float
    mse: float
    nbytes: int
    fp32_nbytes: int


def quantize_weight(w: torch.Tensor, bits: int = 8, scheme: str = "symmetric",
                    granularity: str = "channel", axis: int = 0,
                    group_size: int | None = None) -> WeightQuantization:
    """Quantize one weight tensor and report everything a figure needs.

    ``w`` float ``[C_out, ...]``; ``scheme`` ``"symmetric"`` or ``"asymmetric"``; codes are signed
    (``int8`` up to 8 bits). Returns a ``WeightQuantization`` with the codes, ``QParams``, the
    dequantized weight (``w``'s shape), the grid ``levels`` (see ``grid_levels``), SQNR in dB, MSE,
    the packed size in bytes and the float32 size ``4·numel``.
    Explained in notebooks/01_quantization_basics.ipynb.
    """
    require_choice("scheme", scheme, SCHEMES)
    codes, qp = quantize_tensor(w, bits, symmetric=scheme == "symmetric", signed=True,
                                granularity=granularity, axis=axis, group_size=group_size)
    w_hat = dequantize(codes, qp)
    return WeightQuantization(codes, qp, w_hat, grid_levels(qp), sqnr_db(w.float(), w_hat),
                              mse(w.float(), w_hat), quantized_nbytes(qp, w.numel()), 4 * w.numel())


def weight_quantization_error(model: nn.Module, bits: int = 8, scheme: str = "symmetric",
                              granularity: str = "channel", group_size: int | None = None) -> list[dict]:
    """Per-layer report of quantizing every ``nn.Conv2d``/``nn.Linear`` weight of ``model``.

    One dict per layer, in module order: ``{"layer", "shape", "numel", "sqnr_db", "mse",
    "fp32_bytes", "quant_bytes"}``. The model is not modified.
    Explained in notebooks/01_quantization_basics.ipynb.
    """
    require_module("model", model)
    rows = []
    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            w = module.weight.detach()
            r = quantize_weight(w, bits, scheme, granularity, 0, group_size)
            rows.append({"layer": name, "shape": tuple(w.shape), "numel": w.numel(), "sqnr_db": r.sqnr_db,
                         "mse": r.mse, "fp32_bytes": r.fp32_nbytes, "quant_bytes": r.nbytes})
    if not rows:
        raise ValueError("model has no nn.Conv2d or nn.Linear layer to quantize")
    return rows


def valid_group_sizes(weight: torch.Tensor) -> list[int]:
    """Group sizes a per-group quantizer accepts for ``weight`` ``[C_out, ...]``: the divisors of
    the ``n = numel / C_out`` values of one output channel that are smaller than ``n`` (a group of
    ``n`` is per-channel), so always ``1`` (every weight its own scale); ``[1]`` when ``n = 1``.
    Explained in notebooks/01_quantization_basics.ipynb."""
    if not isinstance(weight, torch.Tensor) or weight.dim() < 1:
        raise TypeError("weight must be a torch.Tensor with an output-channel axis (dim >= 1)")
    per_channel = weight[0].numel() if weight.dim() > 1 else 1
    sizes = [d for d in range(1, per_channel) if per_channel % d == 0]
    return sizes or [per_channel]
