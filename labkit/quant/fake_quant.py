"""Fake quantization that can be trained: the straight-through estimator, LSQ and PACT.

``round`` has derivative 0 almost everywhere, so a network with quantized weights or activations
gets no gradient. The *straight-through estimator* (STE; Bengio, Léonard, Courville 2013) pretends
the rounding is the identity in the backward pass:

    forward:  x̂ = (clamp(round(x/s) + z, qmin, qmax) - z) · s
    backward: ∂L/∂x = ∂L/∂x̂ · 1{qmin ≤ round(x/s) + z ≤ qmax}     ("clipped" STE, torch.ao's choice)
              ∂L/∂x = ∂L/∂x̂                                      ("identity" STE)

Two ways to *learn* the quantizer itself:

- **LSQ** — Esser, McKinley, Bablani, Appuswamy, Modha, "Learned Step Size Quantization",
  ICLR 2020. The step ``s`` is a parameter; ``v̂ = round(clamp(v/s, -Q_N, Q_P))·s`` and
  ``∂v̂/∂s = -v/s + round(v/s)`` inside the range, ``-Q_N`` below, ``Q_P`` above; the step's
  gradient is multiplied by ``g = 1/sqrt(N·Q_P)`` (N = number of weights, or of features per
  sample for activations) so that it learns at the same pace as the weights.
- **PACT** — Choi, Wang, Venkataramani, Chuang, Srinivasan, Gopalakrishnan, "PACT: Parameterized
  Clipping Activation for Quantized Neural Networks", 2018. ReLU becomes ``y = clamp(x, 0, α)``
  with a learned ``α``, then ``y`` is quantized to ``2^k`` levels over ``[0, α]`` with the STE;
  ``∂y_q/∂α = 1{x ≥ α}``.

Explained in notebooks/05_quantization_aware_training.ipynb
"""
from __future__ import annotations

import math

import torch
from torch import nn

from labkit import architecture
from labkit.quant.affine import (SCALE_GRANULARITIES, QParams, apply_qparams, broadcast_channels, channel_view, check_axis,
                                 check_bits, check_granularity, check_qparams, qparams_from_range, qrange,
                                 stored_axis)
from labkit.quant.observers import MovingAverageMinMaxObserver, Observer
from labkit.validate import require_bool, require_choice, require_float, require_float_tensor, require_int

__all__ = [
    "STE_MODES", "round_ste", "grad_scale", "fake_quantize_ste", "FakeQuantize", "LSQQuantizer",
    "PACTQuantizer", "lsq_init_step",
]

STE_MODES = ("clipped", "identity")


# --------------------------------------------------------------------------- autograd pieces
class _RoundSTE(torch.autograd.Function):
    """``round`` forward, identity backward."""

    @staticmethod
    def forward(ctx, x):
        return torch.round(x)

    @staticmethod
    def backward(ctx, grad):
        return grad


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """``round(x)`` whose gradient is 1 everywhere (the straight-through estimator).
    Explained in notebooks/05_quantization_aware_training.ipynb."""
    return _RoundSTE.apply(x)


def grad_scale(x: torch.Tensor, g: float) -> torch.Tensor:
    """Return ``x`` unchanged in the forward pass but multiply its gradient by ``g`` (LSQ's trick:
    ``(x - x·g).detach() + x·g``). Explained in notebooks/05_quantization_aware_training.ipynb."""
    scaled = x * g
    return (x - scaled).detach() + scaled


class _FakeQuantizeSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, scale, zero_point, qmin, qmax, clipped):
        codes = torch.round(x / scale) + zero_point
        if clipped:
            ctx.save_for_backward((codes >= qmin) & (codes <= qmax))
        ctx.clipped = clipped
        return (codes.clamp(qmin, qmax) - zero_point) * scale

    @staticmethod
    def backward(ctx, grad):
        if ctx.clipped:
            (inside,) = ctx.saved_tensors
            grad = grad * inside
        return grad, None, None, None, None, None


def fake_quantize_ste(x: torch.Tensor, qp: QParams, ste: str = "clipped") -> torch.Tensor:
    """Fake-quantize ``x`` (any shape, float) with ``qp``; gradient by the straight-through estimator.

    Forward ``(clamp(round(x/s) + z, qmin, qmax) - z)·s``; backward passes ``∂L/∂x̂`` unchanged
    where ``round(x/s) + z`` lies in ``[qmin, qmax]`` and, with ``ste="clipped"``, 0 outside
    (``ste="identity"`` passes it everywhere). ``s`` and ``z`` receive no gradient. ``ValueError``
    if ``x`` holds NaN or Inf (they would pass through the rounding unnoticed).
    Explained in notebooks/05_quantization_aware_training.ipynb.
    """
    require_float_tensor("x", x)
    qp = check_qparams(qp)
    require_choice("ste", ste, STE_MODES)
    return apply_qparams(x, qp, lambda v, s, z: _FakeQuantizeSTE.apply(v, s, z.float(), qp.qmin, qp.qmax,
                                                                  ste == "clipped"))


# --------------------------------------------------------------------------- observer + STE
class FakeQuantize(nn.Module):
    """An observer followed by STE fake quantization (what QAT inserts at a weight or activation).

    In training mode (or before anything was seen, or always with ``always_observe=True`` — used
    for weights, whose range is simply the current weight's) each forward first updates
    ``observer`` with the incoming tensor, then fake-quantizes with the observer's parameters.
    ``freeze()`` stops the observer (the parameters stay fixed from then on); ``set_bits(b)``
    changes the bit width. Default observer: moving-average min/max (c = 0.01), 8-bit unsigned.
    Explained in notebooks/05_quantization_aware_training.ipynb.
    """

    def __init__(self, observer: Observer | None = None, ste: str = "clipped", always_observe: bool = False):
        super().__init__()
        if observer is None:
            observer = MovingAverageMinMaxObserver()
        if not isinstance(observer, Observer):
            raise TypeError(f"observer must be a labkit Observer, got {type(observer).__name__}")
        self.observer = observer
        self.ste = require_choice("ste", ste, STE_MODES)
        self.observer_enabled = True
        self.fake_quant_enabled = True
        self.always_observe = require_bool("always_observe", always_observe)
        self._qparams: QParams | None = None

    @property
    def bits(self) -> int:
        return self.observer.bits

    def set_bits(self, bits: int) -> None:
        """Use ``bits``-bit codes from now on (the observed range is kept)."""
        self.observer.bits = check_bits(bits)
        self._qparams = None

    def freeze(self) -> None:
        """Stop updating the observer: scale and zero point stay as they are now."""
        self.observer_enabled = False

    def unfreeze(self) -> None:
        self.observer_enabled = True

    def qparams(self) -> QParams:
        if self._qparams is None:
            self._qparams = self.observer.calculate_qparams()
        return self._qparams

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.observer_enabled and (self.training or self.always_observe or not self.observer.has_data()):
            self.observer(x.detach())
            self._qparams = None
        if not self.fake_quant_enabled:
            return x
        return fake_quantize_ste(x, self.qparams(), self.ste)

    def extra_repr(self) -> str:
        return f"ste={self.ste!r}, observer_enabled={self.observer_enabled}"


# --------------------------------------------------------------------------- LSQ
def lsq_init_step(x: torch.Tensor, bits: int, signed: bool, granularity: str = "tensor",
                  axis: int | None = None) -> torch.Tensor:
    """LSQ's initial step ``s = 2·mean(|x|) / sqrt(Q_P)``: shape ``[]`` (``granularity="tensor"``) or
    ``[C]`` (``"channel"``, one per index of ``axis``; a negative ``axis`` counts from the end), the words
    of ``affine.quantize_tensor``. Explained in notebooks/05_quantization_aware_training.ipynb."""
    qp_max = qrange(bits, signed)[1]
    axis = stored_axis(check_granularity(granularity, SCALE_GRANULARITIES), axis)
    if axis is None:
        mean_abs = x.detach().abs().mean()
    else:
        mean_abs = channel_view(x.detach().abs(), axis).mean(dim=1)
    return (2 * mean_abs / math.sqrt(max(qp_max, 1))).clamp_min(1e-8)  # Q_P = 0 for 1-bit signed


class LSQQuantizer(nn.Module):
    """Learned Step Size Quantization (Esser et al. 2020): ``v̂ = round_ste(clamp(v/s, -Q_N, Q_P))·s``.

    ``s`` is an ``nn.Parameter`` (``granularity="tensor"``: one step; ``"channel"``: ``[C]``, one per index
    of ``axis``, the words of ``affine.quantize_tensor``), initialised from the
    first tensor seen with ``lsq_init_step`` unless ``step`` is given; its gradient is scaled by
    ``g = 1/sqrt(N·Q_P)`` where ``N`` is the number of values per step (``is_activation=True``:
    per sample). ``signed=None``
    decides from that first tensor (unsigned if it has no negative value). ``[-Q_N, Q_P]`` is the
    integer range of ``bits`` (e.g. ``[-128, 127]`` or ``[0, 255]``). ``axis`` in ``[-d, d - 1]`` for
    inputs with ``d`` dimensions (negative counts from the end, fixed by the first tensor seen; used
    only with ``granularity="channel"``);
    ``ValueError`` for an axis out of range or an input holding NaN/Inf.
    Explained in notebooks/05_quantization_aware_training.ipynb.
    """

    def __init__(self, bits: int = 8, signed: bool | None = None, granularity: str = "tensor", axis: int | None = None,
                 is_activation: bool = False, step: float | None = None):
        super().__init__()
        self.bits = check_bits(bits)
        if signed is not None:
            require_bool("signed", signed)
        self.signed = signed
        self.granularity = check_granularity(granularity, SCALE_GRANULARITIES)
        self.axis = stored_axis(granularity, axis)  # None per tensor; range checked against the input
        self.is_activation = require_bool("is_activation", is_activation)
        if step is not None and signed is None:
            raise ValueError("signed must be given (True or False) together with an explicit step")
        init = 1.0 if step is None else require_float("step", step, 0.0, None, low_open=True)
        self.step = nn.Parameter(torch.tensor(init))
        self.register_buffer("initialized", torch.tensor(step is not None))

    def _range(self) -> tuple[int, int]:
        qmin, qmax = qrange(self.bits, bool(self.signed))
        return -qmin, qmax  # (Q_N, Q_P)

    def set_bits(self, bits: int) -> None:
        """Change the bit width, rescaling the step so that the clipping range stays about the same."""
        bits = check_bits(bits)
        if bool(self.initialized):
            old_qp = max(self._range()[1], 1)
            self.bits = bits
            with torch.no_grad():
                self.step.mul_(old_qp / max(self._range()[1], 1))
        self.bits = bits

    def freeze(self) -> None:
        self.step.requires_grad_(False)

    def unfreeze(self) -> None:
        self.step.requires_grad_(True)

    def _initialize(self, x: torch.Tensor) -> None:
        if self.signed is None:
            self.signed = bool(x.min() < 0)
        with torch.no_grad():
            self.step.data = lsq_init_step(x, self.bits, self.signed, self.granularity, self.axis)
        self.initialized.fill_(True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        require_float_tensor("x", x)
        axis = self._channel_axis()
        if axis is not None:  # torch would fail later with a bare IndexError
            self.axis = axis = check_axis(axis, x.dim())
        if not bool(self.initialized):
            self._initialize(x)
        q_n, q_p = self._range()
        n = x[0].numel() if self.is_activation else x.numel()  # values sharing one step
        if axis is not None and not self.is_activation:
            n //= x.shape[axis]
        # |s| keeps the step positive when an optimizer step overshoots zero (as PACT does with α).
        step = grad_scale(self.step.abs().clamp_min(1e-8), 1.0 / math.sqrt(max(n, 1) * max(q_p, 1)))
        step = broadcast_channels(step, x.dim(), axis)
        return round_ste(torch.clamp(x / step, -q_n, q_p)) * step

    def _channel_axis(self) -> int | None:
        """``axis`` with ``granularity="channel"``, else None (the ``QParams.axis`` convention)."""
        return self.axis if self.granularity == "channel" else None

    def qparams(self) -> QParams:
        """The learned quantizer as ``QParams``: scale = step, zero point 0 (codes ``round(clamp(v/s))``)."""
        if not bool(self.initialized):
            raise ValueError("LSQQuantizer has not seen any tensor yet: run data through the model first")
        scale = self.step.detach().abs().float().clamp_min(torch.finfo(torch.float32).eps)
        return QParams(scale, torch.zeros_like(scale, dtype=torch.int32), self.bits, bool(self.signed),
                       symmetric=True if self.signed else False, axis=self._channel_axis())

    def extra_repr(self) -> str:
        return f"bits={self.bits}, signed={self.signed}, granularity={self.granularity!r}, axis={self.axis}"


# --------------------------------------------------------------------------- PACT
class PACTQuantizer(nn.Module):
    """PACT (Choi et al. 2018): a ReLU with a learned clipping level ``α``, quantized to ``2^bits``
    levels over ``[0, α]``.

    ``y = clamp(x, 0, α)`` (written ``0.5·(|x| - |x - α| + α)`` in the paper), ``y_q = round(y·n/α)·α/n``
    with ``n = 2^bits - 1``; STE through the rounding, so ``∂y_q/∂x = 1{0 ≤ x < α}`` and
    ``∂y_q/∂α = 1{x ≥ α}``. ``alpha=None`` initialises ``α`` to the largest value of the first
    batch (the paper starts at 10 and adds an L2 penalty on ``α`` to pull it down).
    Explained in notebooks/05_quantization_aware_training.ipynb.
    """

    def __init__(self, bits: int = 8, alpha: float | None = None):
        super().__init__()
        self.bits = check_bits(bits)
        init = 1.0 if alpha is None else require_float("alpha", alpha, 0.0, None, low_open=True)
        self.alpha = nn.Parameter(torch.tensor(float(init)))
        self.register_buffer("initialized", torch.tensor(alpha is not None))

    def set_bits(self, bits: int) -> None:
        self.bits = check_bits(bits)

    def freeze(self) -> None:
        self.alpha.requires_grad_(False)

    def unfreeze(self) -> None:
        self.alpha.requires_grad_(True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        require_float_tensor("x", x)  # NaN would slip through clamp and round, Inf set α
        if not bool(self.initialized):
            with torch.no_grad():
                self.alpha.fill_(max(float(x.max()), 1e-3))
            self.initialized.fill_(True)
        alpha = self.alpha.abs() + 1e-8  # keep α > 0 even if a step overshoots
        y = torch.minimum(torch.relu(x), alpha)  # gradient w.r.t. α: 1 where x >= α
        levels = (1 << self.bits) - 1
        step = alpha.detach() / levels
        y_q = torch.round(y.detach() / step) * step
        return y + (y_q - y).detach()  # STE: value of y_q, gradient of y

    def qparams(self) -> QParams:
        """``[0, α]`` with ``2^bits`` levels as unsigned ``QParams`` (zero point 0)."""
        scale = (self.alpha.detach().abs() + 1e-8) / ((1 << self.bits) - 1)
        return QParams(scale.float().reshape(()), torch.zeros((), dtype=torch.int32), self.bits, signed=False,
                       symmetric=False)

    def extra_repr(self) -> str:
        return f"bits={self.bits}, alpha={self.alpha.item():.4g}"


# --------------------------------------------------------------------------- saving (labkit.architecture)
def _build_fake_quantize(args, children) -> FakeQuantize:
    module = FakeQuantize(children["observer"], args["ste"], args["always_observe"])
    module.observer_enabled, module.fake_quant_enabled = args["observer_enabled"], args["fake_quant_enabled"]
    return module


architecture.register_module(
    FakeQuantize, lambda m: {"ste": m.ste, "always_observe": m.always_observe, "observer_enabled": m.observer_enabled,
                             "fake_quant_enabled": m.fake_quant_enabled}, _build_fake_quantize)
# the step (LSQ) and α (PACT) are parameters, "initialized" a buffer: all in the state dict
architecture.register_module(
    LSQQuantizer, lambda m: {"bits": m.bits, "signed": m.signed, "granularity": m.granularity, "axis": m.axis,
                             "is_activation": m.is_activation},
    lambda args, children: LSQQuantizer(**args))
architecture.register_module(PACTQuantizer, lambda m: {"bits": m.bits}, lambda args, children: PACTQuantizer(**args))


RESPONSE_KINDS = ("clipped", "identity", "lsq", "pact")   # what quantizer_response draws


def quantizer_response(kind: str, bits: int, clip: float, x: torch.Tensor | None = None) -> dict:
    """Forward values and derivatives of one quantizer at every point of ``x`` (1-D float tensor).

    ``kind``: ``"clipped"`` / ``"identity"`` (symmetric signed fake quantization of ``[-clip, clip]``
    with that STE), ``"lsq"`` (signed, step ``s = clip / Q_P``) or ``"pact"`` (``α = clip``).
    Returns ``{"x", "x_hat", "grad_x", "grad_param", "param", "param_value", "scale", "levels"}``:
    NumPy arrays of ``x``'s length for the first four (``grad_param`` is None without a learned
    parameter; for LSQ it is the raw ``∂x̂/∂s``, without the gradient scale ``g``), the parameter's
    name and value, the grid step and the grid values. Each point gets its own copy of the learned
    parameter, so one backward pass yields every point's derivative.
    ``x`` defaults to 501 points on ``[-2.5, 2.5]``. Explained in notebooks/05_quantization_aware_training.ipynb.
    """
    require_choice("kind", kind, RESPONSE_KINDS)
    bits = require_int("bits", bits, 1, 16)
    clip = require_float("clip", clip, 0.0, None, low_open=True)
    if x is None:
        x = torch.linspace(-2.5, 2.5, 501)
    if not isinstance(x, torch.Tensor) or x.dim() != 1 or not x.is_floating_point():
        raise TypeError("x must be a 1-D floating-point torch.Tensor")
    x = x.detach().float().clone().requires_grad_(True)
    n = x.numel()
    param = param_value = grad_param = None
    if kind in ("clipped", "identity"):
        qp = qparams_from_range(-clip, clip, bits, symmetric=True, signed=True)
        x_hat = fake_quantize_ste(x, qp, ste=kind)
        scale = float(qp.scale)
        levels = (torch.arange(qp.qmin, qp.qmax + 1) - int(qp.zero_point)) * scale
    elif kind == "lsq":
        q_p = max(qrange(bits, True)[1], 1)
        scale = clip / q_p
        quantizer = LSQQuantizer(bits, signed=True, granularity="channel", axis=0, step=scale)
        quantizer.step = nn.Parameter(torch.full((n,), scale))           # one step per point
        x_hat = quantizer(x.reshape(n, 1)).reshape(n)
        param, param_value = "s", scale
        qmin, qmax = qrange(bits, True)
        levels = torch.arange(qmin, qmax + 1) * scale
    else:
        quantizer = PACTQuantizer(bits, alpha=clip)
        quantizer.alpha = nn.Parameter(torch.full((n,), clip))           # one α per point
        x_hat = quantizer(x)
        param, param_value = "α", clip
        scale = clip / ((1 << bits) - 1)
        levels = torch.arange(0, (1 << bits)) * scale
    x_hat.backward(torch.ones_like(x_hat))
    if kind == "lsq":
        g = 1.0 / math.sqrt(max(qrange(bits, True)[1], 1))             # LSQ's g for N = 1 value per step
        grad_param = quantizer.step.grad.numpy() / g
    elif kind == "pact":
        grad_param = quantizer.alpha.grad.numpy()
    return {"x": x.detach().numpy(), "x_hat": x_hat.detach().numpy(), "grad_x": x.grad.numpy(),
            "grad_param": grad_param, "param": param, "param_value": param_value, "scale": scale,
            "levels": levels.double().numpy()}
