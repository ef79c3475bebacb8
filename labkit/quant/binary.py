"""Binary and ternary weights: BinaryConnect, XNOR-style scaled binary, ternary weight networks.

Papers:
- Courbariaux, Bengio, David. "BinaryConnect: Training Deep Neural Networks with binary weights
  during propagations." NeurIPS 2015.
- Rastegari, Ordonez, Redmon, Farhadi. "XNOR-Net: ImageNet Classification Using Binary
  Convolutional Neural Networks." ECCV 2016.
- Li, Zhang, Liu. "Ternary Weight Networks." arXiv:1605.04711, 2016.

The idea shared by all three: keep a real-valued ("latent") weight ``W`` for the optimizer, and use
a 1- or 2-bit version ``Ŵ = Q(W)`` in the forward pass. ``Q`` is a step function whose derivative is
zero almost everywhere, so the backward pass uses the *straight-through estimator* (STE) of the
hard-tanh: ``∂L/∂W = ∂L/∂Ŵ · 1{|W| ≤ 1}``.

``per_channel`` (every function and layer here): one scale ``α`` per output channel — in
``labkit.quant.affine``'s words ``granularity="channel", axis=0`` (``affine.weight_granularity``) —
instead of one for the whole weight.

Explained in notebooks/02_binary_ternary.ipynb
"""
from __future__ import annotations

import copy
import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F

from labkit.quant.affine import broadcast_channels, channel_view, weight_granularity
from labkit.validate import require_choice, require_float, require_module

METHODS = ("binaryconnect", "xnor", "ternary")

__all__ = [
    "METHODS", "hard_sigmoid", "binarize_deterministic", "binarize_stochastic", "xnor_binarize",
    "ternary_threshold", "ternarize", "seed_ternary_quantize", "hard_tanh_ste", "quantize_weight",
    "BinaryLinear", "BinaryConv2d", "binarize_model", "clip_latent_weights", "count_levels",
    "weight_levels",
]


# --------------------------------------------------------------------------- argument checks
def _check_weight(name: str, w) -> torch.Tensor:
    if not isinstance(w, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(w).__name__}")
    if not w.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {w.dtype}")
    if w.numel() == 0:
        raise ValueError(f"{name} must not be empty, got shape {tuple(w.shape)}")
    if not torch.isfinite(w).all():
        raise ValueError(f"{name} must contain only finite values (found NaN or Inf)")
    return w


def _check_per_channel(per_channel, w: torch.Tensor) -> bool:
    if not isinstance(per_channel, bool):
        raise TypeError(f"per_channel must be a bool, got {type(per_channel).__name__}")
    if per_channel and w.dim() < 2:
        raise ValueError(f"per_channel=True needs a weight with an output-channel dimension "
                         f"(dim >= 2), got shape {tuple(w.shape)}")
    return per_channel


def _channel_mean(x: torch.Tensor, per_channel: bool) -> torch.Tensor:
    """Mean over the whole tensor, or per output channel (``affine.channel_view``) as ``[C, 1, ...]``."""
    granularity, axis = weight_granularity(per_channel)
    if granularity == "tensor":
        return x.mean()
    return broadcast_channels(channel_view(x, axis).mean(dim=1), x.dim(), axis)


# --------------------------------------------------------------------------- the quantizers
def hard_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """BinaryConnect's hard sigmoid ``σ(x) = clip((x + 1) / 2, 0, 1)``, elementwise, same shape."""
    return ((x + 1) / 2).clamp(0, 1)


def binarize_deterministic(w: torch.Tensor) -> torch.Tensor:
    """BinaryConnect's deterministic binarization ``w_b = +1 if w >= 0 else -1``.

    Same shape and dtype as ``w``; note ``torch.sign(0) = 0``, so zero is sent to ``+1`` explicitly
    (otherwise a weight that is exactly zero would become a third level).
    Explained in notebooks/02_binary_ternary.ipynb
    """
    _check_weight("w", w)
    return torch.where(w >= 0, torch.ones_like(w), -torch.ones_like(w))


def binarize_stochastic(w: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """BinaryConnect's stochastic binarization: ``w_b = +1`` with probability ``σ(w)``, else ``-1``.

    ``σ`` is the hard sigmoid, so ``E[w_b] = 2σ(w) - 1 = clip(w, -1, 1)``: on average the binary
    weight equals the (clipped) real weight. Same shape as ``w``; pass a seeded ``generator`` for
    reproducible draws. Explained in notebooks/02_binary_ternary.ipynb
    """
    _check_weight("w", w)
    u = torch.rand(w.shape, generator=generator, dtype=w.dtype, device=w.device)
    return torch.where(u < hard_sigmoid(w), torch.ones_like(w), -torch.ones_like(w))


def xnor_binarize(w: torch.Tensor, per_channel: bool = False) -> torch.Tensor:
    """XNOR-Net scaled binary weights ``Ŵ = α · sign(W)`` with ``α = (1/n) Σ |W_i|``.

    ``α`` is the mean absolute value over the whole tensor (``per_channel=False``, seed 001 §4.1.1)
    or, with ``per_channel``, over each output channel ``c`` (``granularity="channel", axis=0`` in
    ``affine``'s words: ``α_c = mean |W_c|``, dim 0 of a Linear ``[out, in]`` or
    Conv2d ``[out, in, kh, kw]`` weight, as in the paper). It minimises ``‖W - αB‖²`` over ``α``
    for ``B = sign(W)``. Returns a tensor of the shape of ``w``. (Seed 001 §4.1.1 introduces this
    formula as ternary quantization to {-1, 0, 1}; it has no zero level — it is scaled binary.)
    Explained in notebooks/02_binary_ternary.ipynb
    """
    _check_weight("w", w)
    _check_per_channel(per_channel, w)
    alpha = _channel_mean(w.abs(), per_channel)
    return alpha * binarize_deterministic(w)


def ternary_threshold(w: torch.Tensor, per_channel: bool = False, factor: float = 0.7) -> torch.Tensor:
    """TWN threshold ``Δ = factor · E|W|`` (``factor = 0.7`` in the paper): a scalar, or ``[C, 1, ...]``.

    Li & Liu derive ``Δ* ≈ 0.6σ`` for Gaussian and uniform weights, i.e. ``≈ 0.7·E|W|``.
    Explained in notebooks/02_binary_ternary.ipynb
    """
    _check_weight("w", w)
    _check_per_channel(per_channel, w)
    factor = require_float("factor", factor, 0.0, None, low_open=True)
    return factor * _channel_mean(w.abs(), per_channel)


def ternarize(w: torch.Tensor, per_channel: bool = False, factor: float = 0.7) -> torch.Tensor:
    """Ternary weight networks: ``Ŵ = α · t`` with ``t ∈ {-1, 0, +1}``.

    ``t_i = sign(W_i)`` where ``|W_i| > Δ`` and ``0`` elsewhere, ``Δ = factor · E|W|``, and
    ``α = mean of |W_i| over the kept weights (|W_i| > Δ)`` — the least-squares scale for that
    support. Per tensor or, with ``per_channel``, per output channel (``granularity="channel", axis=0``). Returns a tensor of the shape of ``w``
    with exactly three values per tensor (per channel when ``per_channel``): ``-α, 0, +α``.
    Explained in notebooks/02_binary_ternary.ipynb
    """
    delta = ternary_threshold(w, per_channel, factor)
    keep = w.abs() > delta
    t = torch.sign(w) * keep + 0.0      # "+ 0.0" turns the -0.0 of sign(-x)·0 into 0.0
    kept_sum = _channel_mean(w.abs() * keep, per_channel)
    kept_frac = _channel_mean(keep.to(w.dtype), per_channel)
    alpha = kept_sum / kept_frac.clamp_min(torch.finfo(w.dtype).tiny)   # mean |W| over kept weights
    return alpha * t


class _SeedTernaryQuantize(torch.autograd.Function):
    """Seed 001 §5.1's ``TernaryQuantize``, copied as written (its name says ternary; it is binary)."""

    @staticmethod
    def forward(ctx, input):
        ctx.save_for_backward(input)
        out = torch.sign(input)
        out[out == 0] = 1           # the only zeros sign() makes are sent to +1: no zero level left
        return out

    @staticmethod
    def backward(ctx, grad_output):
        input, = ctx.saved_tensors
        grad_input = grad_output.clone()
        grad_input[input.abs() > 1] = 0
        return grad_input


def seed_ternary_quantize(x: torch.Tensor) -> torch.Tensor:
    """The seed's BUGGY "ternary" quantizer (seed 001 §5.1), kept to show the error.

    It computes ``sign(x)`` and then replaces the zeros by ``+1``, so every output is ``±1``: this is
    BinaryConnect's deterministic binarization (no scale, no threshold), not a ternary quantizer.
    A ternary quantizer needs a threshold ``Δ`` below which weights become ``0`` — see
    :func:`ternarize`. Backward is the hard-tanh STE. Explained in notebooks/02_binary_ternary.ipynb
    """
    _check_weight("x", x)
    return _SeedTernaryQuantize.apply(x)


class _HardTanhSTE(torch.autograd.Function):
    """Forward: return the quantized tensor. Backward: pass the gradient to the latent weight where |w| <= 1."""

    @staticmethod
    def forward(ctx, w, w_quantized):
        ctx.save_for_backward(w.abs() <= 1)     # save the mask, not w: later in-place updates of w are safe
        return w_quantized

    @staticmethod
    def backward(ctx, grad_output):
        inside, = ctx.saved_tensors
        return grad_output * inside.to(grad_output.dtype), None


def hard_tanh_ste(w: torch.Tensor, w_quantized: torch.Tensor) -> torch.Tensor:
    """Straight-through estimator: value of ``w_quantized``, gradient ``∂L/∂w = ∂L/∂ŵ · 1{|w| ≤ 1}``.

    This is the derivative of ``hardtanh(w) = clip(w, -1, 1)``, used instead of the derivative of the
    step function (zero almost everywhere). The scale ``α`` is treated as a constant.
    Explained in notebooks/02_binary_ternary.ipynb
    """
    if w.shape != w_quantized.shape:
        raise ValueError(f"w_quantized must have the shape of w {tuple(w.shape)}, got {tuple(w_quantized.shape)}")
    return _HardTanhSTE.apply(w, w_quantized.detach())


def quantize_weight(w: torch.Tensor, method: str = "binaryconnect", per_channel: bool = False,
                    stochastic: bool = False, generator: torch.Generator | None = None) -> torch.Tensor:
    """Quantize ``w`` with ``method`` in the forward pass, hard-tanh STE in the backward pass.

    ``method``: ``"binaryconnect"`` (±1, deterministic or ``stochastic``), ``"xnor"`` (±α) or
    ``"ternary"`` (−α, 0, +α). Returns a tensor of the shape of ``w`` that is differentiable w.r.t.
    ``w``. Explained in notebooks/02_binary_ternary.ipynb
    """
    require_choice("method", method, METHODS)
    if not isinstance(stochastic, bool):
        raise TypeError(f"stochastic must be a bool, got {type(stochastic).__name__}")
    if stochastic and method != "binaryconnect":
        raise ValueError(f"stochastic=True is only defined for method='binaryconnect', got method={method!r}")
    with torch.no_grad():
        if method == "binaryconnect":
            _check_per_channel(per_channel, w)   # BinaryConnect has no scale: per_channel changes nothing
            wq = binarize_stochastic(w, generator) if stochastic else binarize_deterministic(w)
        elif method == "xnor":
            wq = xnor_binarize(w, per_channel)
        else:
            wq = ternarize(w, per_channel)
    return hard_tanh_ste(w, wq)


# --------------------------------------------------------------------------- layers
class _BinaryWeightMixin:
    """Shared by BinaryLinear / BinaryConv2d: latent float ``weight``, quantized in ``forward``."""

    def _setup_quantizer(self, method, per_channel, stochastic, clip_latent):
        require_choice("method", method, METHODS)
        for name, value in (("per_channel", per_channel), ("stochastic", stochastic)):
            if not isinstance(value, bool):
                raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
        if stochastic and method != "binaryconnect":
            raise ValueError(f"stochastic=True is only defined for method='binaryconnect', got {method!r}")
        self.method, self.per_channel, self.stochastic = method, per_channel, stochastic
        # BinaryConnect clips the latent weights to [-1, 1] after every update.
        self.clip_latent = (method == "binaryconnect") if clip_latent is None else bool(clip_latent)

    def quantized_weight(self) -> torch.Tensor:
        """The weight used in the forward pass (differentiable w.r.t. the latent ``weight`` via the STE)."""
        if self.training and self.clip_latent:
            # Clipping before use is the same as clipping after the previous optimizer step, and it
            # means any training loop (labkit.train.fit included) keeps the latent weights in [-1, 1].
            with torch.no_grad():
                if self.weight.abs().max() > 1:
                    self.weight.clamp_(-1, 1)
        stochastic = self.stochastic and self.training   # test time: deterministic, as in the paper
        return quantize_weight(self.weight, self.method, self.per_channel, stochastic)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", method={self.method!r}, per_channel={self.per_channel}"

    @classmethod
    def _copy_from(cls, layer, module, method, per_channel, stochastic, clip_latent):
        layer._setup_quantizer(method, per_channel, stochastic, clip_latent)
        with torch.no_grad():
            layer.weight.copy_(module.weight)
            if module.bias is not None:
                layer.bias.copy_(module.bias)
        return layer.to(device=module.weight.device, dtype=module.weight.dtype).train(module.training)


class BinaryLinear(_BinaryWeightMixin, nn.Linear):
    """``nn.Linear`` whose forward uses ``quantize_weight(weight, method)``: ``y = x Ŵᵀ + b``.

    ``weight`` stays the float latent parameter the optimizer updates; the bias stays float.
    Explained in notebooks/02_binary_ternary.ipynb
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, method: str = "binaryconnect",
                 per_channel: bool = False, stochastic: bool = False, clip_latent: bool | None = None):
        super().__init__(in_features, out_features, bias=bias)
        self._setup_quantizer(method, per_channel, stochastic, clip_latent)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.quantized_weight(), self.bias)

    @classmethod
    def from_float(cls, module: nn.Linear, method: str = "binaryconnect", per_channel: bool = False,
                   stochastic: bool = False, clip_latent: bool | None = None) -> "BinaryLinear":
        """A BinaryLinear with a copy of ``module``'s weight and bias (``module`` is not changed)."""
        if not isinstance(module, nn.Linear):
            raise TypeError(f"module must be an nn.Linear, got {type(module).__name__}")
        layer = cls(module.in_features, module.out_features, module.bias is not None)
        return cls._copy_from(layer, module, method, per_channel, stochastic, clip_latent)


class BinaryConv2d(_BinaryWeightMixin, nn.Conv2d):
    """``nn.Conv2d`` whose forward uses ``quantize_weight(weight, method)`` (weight ``[out, in/g, kh, kw]``).

    Explained in notebooks/02_binary_ternary.ipynb
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros", method: str = "binaryconnect",
                 per_channel: bool = False, stochastic: bool = False, clip_latent: bool | None = None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode)
        self._setup_quantizer(method, per_channel, stochastic, clip_latent)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.quantized_weight(), self.bias)

    @classmethod
    def from_float(cls, module: nn.Conv2d, method: str = "binaryconnect", per_channel: bool = False,
                   stochastic: bool = False, clip_latent: bool | None = None) -> "BinaryConv2d":
        """A BinaryConv2d with a copy of ``module``'s configuration, weight and bias."""
        if not isinstance(module, nn.Conv2d):
            raise TypeError(f"module must be an nn.Conv2d, got {type(module).__name__}")
        layer = cls(module.in_channels, module.out_channels, module.kernel_size, module.stride, module.padding,
                    module.dilation, module.groups, module.bias is not None, module.padding_mode)
        return cls._copy_from(layer, module, method, per_channel, stochastic, clip_latent)


def _weight_layers(model: nn.Module) -> list[str]:
    """Names of the Linear / Conv2d layers of ``model`` in registration (= forward, for Sequential) order."""
    return [name for name, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


def binarize_model(model: nn.Module, method: str = "binaryconnect", per_channel: bool = False,
                   skip_first_last: bool = True, stochastic: bool = False) -> nn.Module:
    """A deep copy of ``model`` whose Conv2d / Linear layers use binary or ternary weights in forward.

    Every ``nn.Linear`` becomes a :class:`BinaryLinear` and every ``nn.Conv2d`` a :class:`BinaryConv2d`
    (same weights, now latent). With ``skip_first_last=True`` the first and last of those layers stay
    full precision, as in the XNOR-Net and TWN experiments: the first sees raw pixels and the last
    produces the logits, and both hold few weights. ``per_channel``: one scale per output channel
    (``granularity="channel", axis=0``) for XNOR / ternary. ``model`` itself is not changed.
    Explained in notebooks/02_binary_ternary.ipynb
    """
    require_module("model", model)
    require_choice("method", method, METHODS)
    if not isinstance(skip_first_last, bool):
        raise TypeError(f"skip_first_last must be a bool, got {type(skip_first_last).__name__}")
    names = _weight_layers(model)
    if not names:
        raise ValueError("model has no nn.Linear or nn.Conv2d layer to binarize")
    targets = names[1:-1] if skip_first_last else names
    if not targets:
        warnings.warn(f"binarize_model: the model has only {len(names)} weight layer(s) and "
                      f"skip_first_last=True keeps them all in full precision", stacklevel=2)
    model = copy.deepcopy(model)
    for name in targets:
        module = model.get_submodule(name)
        if isinstance(module, _BinaryWeightMixin):
            continue
        cls = BinaryLinear if isinstance(module, nn.Linear) else BinaryConv2d
        model.set_submodule(name, cls.from_float(module, method, per_channel, stochastic))
    return model


@torch.no_grad()
def clip_latent_weights(model: nn.Module, bound: float = 1.0) -> None:
    """Clip the latent weights of every binary layer of ``model`` to ``[-bound, bound]`` in place.

    BinaryConnect does this after each optimizer step (the layers also do it at the start of each
    training forward when ``clip_latent`` is on). Explained in notebooks/02_binary_ternary.ipynb
    """
    require_module("model", model)
    bound = require_float("bound", bound, 0.0, None, low_open=True)
    for m in model.modules():
        if isinstance(m, _BinaryWeightMixin):
            m.weight.clamp_(-bound, bound)


def count_levels(w: torch.Tensor, per_channel: bool = False):
    """Number of distinct values in ``w``: an int, or a ``[C]`` int64 tensor (one count per dim-0 slice).

    Explained in notebooks/02_binary_ternary.ipynb
    """
    if not isinstance(w, torch.Tensor):
        raise TypeError(f"w must be a torch.Tensor, got {type(w).__name__}")
    if w.numel() == 0:
        raise ValueError(f"w must not be empty, got shape {tuple(w.shape)}")
    _check_per_channel(per_channel, w)
    w = w.detach()
    granularity, axis = weight_granularity(per_channel)
    if granularity == "tensor":
        return int(torch.unique(w).numel())
    return torch.tensor([torch.unique(row).numel() for row in channel_view(w, axis)], dtype=torch.int64)


@torch.no_grad()
def weight_levels(model: nn.Module, per_channel: bool = False) -> dict[str, int]:
    """``{layer name: number of distinct weight values seen in forward}`` for every Linear / Conv2d.

    Binary layers report the levels of their quantized weight (2 for BinaryConnect / per-tensor XNOR,
    3 for per-tensor ternary); float layers report their raw weight. With ``per_channel=True`` the
    count is the largest over output channels. Explained in notebooks/02_binary_ternary.ipynb
    """
    require_module("model", model)
    levels = {}
    for name in _weight_layers(model):
        m = model.get_submodule(name)
        if isinstance(m, _BinaryWeightMixin):
            w = quantize_weight(m.weight, m.method, m.per_channel)   # deterministic, no clipping side effect
        else:
            w = m.weight
        counts = count_levels(w, per_channel)
        levels[name] = int(counts.max()) if per_channel else counts
    return levels


def ternary_error(weight: torch.Tensor, factor: float, per_channel: bool = False) -> dict:
    """Sparsity and relative error of ``ternarize(weight, per_channel, factor)``.

    Returns ``{"delta", "alpha", "sparsity", "rel_error"}``: ``delta`` and ``alpha`` as floats (their
    mean over output channels when ``per_channel``), ``sparsity`` = fraction of zeros of ``Ŵ``,
    ``rel_error = ‖W − Ŵ‖² / ‖W‖²``. Explained in notebooks/02_binary_ternary.ipynb.
    """
    w = weight.detach().to(torch.float64)
    w_hat = ternarize(w, per_channel=per_channel, factor=factor)
    delta = ternary_threshold(w, per_channel=per_channel, factor=factor)
    kept = w_hat != 0
    granularity, axis = weight_granularity(per_channel)
    alpha = channel_view(w_hat.abs(), axis).amax(dim=1) if granularity == "channel" else w_hat.abs().max()
    return {"delta": float(delta.mean()), "alpha": float(alpha.mean()),
            "sparsity": float(1.0 - kept.double().mean()),
            "rel_error": float(((w - w_hat) ** 2).sum() / (w ** 2).sum().clamp_min(1e-300))}
