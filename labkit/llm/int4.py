"""Int4 weight-only storage and matrix product: two 4-bit codes per byte, one scale and zero point per group.

Layout (the file format, and what the one-call kernel reads): a code matrix uint8 ``[out, in]`` with values
``0…15`` is packed row-major into uint8 ``[out, in/2]``; byte ``k`` of a row holds column ``2k`` in its low
nibble and column ``2k+1`` in its high nibble (``byte = c[2k] | c[2k+1] << 4``). ``int4_linear`` unpacks,
dequantizes ``(q − z)·s`` group by group and multiplies in float32 — a readable Python/torch reference.
At batch 1 decoding reads every weight once per token, so memory traffic, not arithmetic, sets the
speed: 4-bit weights move 8× fewer bytes than float32 (plus the group scales). The torch reference does
not realise that speed (it materialises the float weight). ``Int4Linear`` calls the compiled kernel where
this build and CPU have it — ``kernel_status()`` says whether, and why not — and the torch reference
otherwise (``backend="torch"`` forces it): it hands its buffers once to ``labkit.kernels.Int4Weights``
(checked and laid out for the SIMD registers, the codes decoded in registers, never a float weight
matrix; ``kernel_weights()``), so each call passes only x. The two agree within float32 rounding
(different summation order).

Explained in notebooks/16_transformer_compression.ipynb
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from labkit.llm.rtn import QuantizedWeight
from labkit.validate import require_choice


def pack_int4(codes: torch.Tensor) -> torch.Tensor:
    """uint8 ``[out, in]`` codes in ``[0, 15]`` (``in`` even) → packed uint8 ``[out, in/2]``."""
    if not isinstance(codes, torch.Tensor) or codes.dtype != torch.uint8 or codes.dim() != 2:
        raise TypeError("codes must be a uint8 tensor [out, in]")
    if codes.shape[1] % 2:
        raise ValueError(f"the input width must be even to pack two codes per byte, got {codes.shape[1]}")
    if codes.numel() and int(codes.max()) > 15:
        raise ValueError(f"codes must lie in [0, 15] for 4 bits, got a maximum of {int(codes.max())}")
    return codes[:, 0::2] | (codes[:, 1::2] << 4)


def unpack_int4(packed: torch.Tensor) -> torch.Tensor:
    """Inverse of ``pack_int4``: uint8 ``[out, in/2]`` → uint8 ``[out, in]`` (bit-exact)."""
    if not isinstance(packed, torch.Tensor) or packed.dtype != torch.uint8 or packed.dim() != 2:
        raise TypeError("packed must be a uint8 tensor [out, in/2]")
    return torch.stack([packed & 0x0F, packed >> 4], dim=2).reshape(packed.shape[0], -1)


def dequantize_int4(packed: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, group_size: int) -> torch.Tensor:
    """float32 ``[out, in]`` weight ``(q − z)·s`` from packed codes and per-group ``scale``/``zero_point`` ``[out, G]``."""
    q = unpack_int4(packed).float().view(packed.shape[0], -1, group_size)
    return ((q - zero_point.float().unsqueeze(-1)) * scale.unsqueeze(-1)).reshape(packed.shape[0], -1)


def int4_linear(x: torch.Tensor, packed: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor,
                group_size: int, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``x Ŵᵀ + b`` for ``x`` float32 ``[..., in]`` and an int4 group-quantized ``Ŵ`` ``[out, in]`` (torch reference)."""
    return F.linear(x, dequantize_int4(packed, scale, zero_point, group_size), bias)


BACKENDS = ("auto", "kernel", "torch")
_STATUS: list = []          # [(available, reason)] once probed, for this process


def kernel_status() -> tuple[bool, str]:
    """``(available, reason)``: whether ``labkit.kernels.int4_linear`` and ``kernels.Int4Weights`` run here
    (probed once on a 4 × 64 layer against the torch reference); ``reason`` says why not (an old build, a
    missing function)."""
    if not _STATUS:
        try:
            from labkit import kernels

            g = torch.Generator().manual_seed(0)
            codes = torch.randint(0, 16, (4, 64), dtype=torch.uint8, generator=g)
            packed, scale = pack_int4(codes), torch.rand(4, 2, generator=g) + 0.5
            zero, x = torch.full((4, 2), 8, dtype=torch.uint8), torch.randn(3, 64, generator=g)
            want = int4_linear(x, packed, scale, zero, 32)
            got = torch.from_numpy(kernels.int4_linear(x.numpy(), packed.numpy(), scale.numpy(), zero.numpy(), 32))
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
            prepared = kernels.Int4Weights(packed.numpy(), scale.numpy(), zero.numpy(), 32)
            torch.testing.assert_close(torch.from_numpy(prepared(x.numpy())), want, rtol=1e-4, atol=1e-4)
            _STATUS.append((True, f"labkit.kernels.Int4Weights and int4_linear ({kernels.isa()} path)"))
        except Exception as error:          # any failure means: use the torch reference, and say why
            _STATUS.append((False, f"compiled int4 kernel unavailable ({type(error).__name__}: {error})"))
    return _STATUS[0]


class Int4Linear(nn.Module):
    """A linear layer that stores packed int4 weights (``pack_int4``) and group scales.

    Built from a 4-bit ``QuantizedWeight``; with AWQ's ``input_scale`` ``s`` the input is divided by ``s``
    first (in a deployed model that division is folded into the previous operator). ``forward``: x float32
    ``[..., in]`` → ``[..., out]``, on the compiled kernel (``kernel_weights()``) or the torch reference.
    """

    def __init__(self, quantized: QuantizedWeight, bias: torch.Tensor | None = None, backend: str = "auto"):
        super().__init__()
        self.backend = require_choice("backend", backend, BACKENDS)
        if quantized.bits != 4:
            raise ValueError(f"Int4Linear needs a 4-bit QuantizedWeight, got bits={quantized.bits}")
        self._set(pack_int4(quantized.codes), quantized.qparams.scale.clone(),
                  quantized.qparams.zero_point.to(torch.uint8), quantized.input_scale,
                  None if bias is None else bias.detach().clone())

    def _set(self, packed, scale, zero_point, input_scale, bias) -> None:
        in_features = 2 * packed.shape[1]
        if scale.dim() != 2 or scale.shape[0] != packed.shape[0] or in_features % scale.shape[1]:
            raise ValueError(f"scale must be [out, groups] with groups dividing in = {in_features}, got "
                             f"{tuple(scale.shape)} for packed codes {tuple(packed.shape)}")
        self.group_size = in_features // scale.shape[1]
        self._kernel_cache = None   # (buffer ids and versions, the buffers, kernels.Int4Weights): kernel_weights()
        for name, value in (("packed", packed), ("scale", scale), ("zero_point", zero_point),
                            ("input_scale", input_scale), ("bias", bias)):
            self.register_buffer(name, value)

    @classmethod
    def from_storage(cls, stored: dict) -> "Int4Linear":
        """The layer again from its ``storage()`` dict (bit-identical outputs; the group size is
        ``2·packed.shape[1] / scale.shape[1]``)."""
        layer = cls.__new__(cls)
        nn.Module.__init__(layer)
        layer.backend = "auto"
        layer._set(stored["packed"], stored["scale"], stored["zero_point"], stored.get("input_scale"),
                   stored.get("bias"))
        return layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        buffers = self._buffers   # not self.packed etc.: nn.Module.__getattr__ costs as much as the kernel
        if buffers["input_scale"] is not None:
            x = x / buffers["input_scale"]
        if not self.uses_kernel():
            return int4_linear(x, buffers["packed"], buffers["scale"], buffers["zero_point"], self.group_size,
                               buffers["bias"])
        if x.dtype != torch.float32 or x.requires_grad:
            x = x.detach().float()
        array = x.numpy()         # a view; numpy's reshape copies only what is not contiguous
        out = self.kernel_weights().forward(array.reshape(-1, array.shape[-1]))
        return torch.from_numpy(out.reshape(*array.shape[:-1], out.shape[-1]))

    def kernel_weights(self):
        """The compiled kernel's copy of the buffers, checked and laid out once (``kernels.Int4Weights``):
        made on first use, and again whenever a buffer was replaced (``load_state_dict``, ``.to``,
        assignment) or changed in place (the tensor's version counter), so a call never reads stale weights."""
        buffers = self._buffers
        packed, scale, zero_point, bias = (buffers[n] for n in ("packed", "scale", "zero_point", "bias"))
        key = (id(packed), packed._version, id(scale), scale._version, id(zero_point), zero_point._version,
               id(bias), -1 if bias is None else bias._version)
        cache = self._kernel_cache
        if cache is None or cache[0] != key:
            from labkit import kernels

            arrays = [None if t is None else t.detach().contiguous().numpy() for t in (packed, scale, zero_point, bias)]
            weights = kernels.Int4Weights(*arrays[:3], self.group_size, arrays[3])
            # the tensors are kept, so that their ids in the key cannot be reused by new ones
            cache = self._kernel_cache = (key, (packed, scale, zero_point, bias), weights)
        return cache[2]

    def __getstate__(self) -> dict:
        """Copies and pickles leave the compiled kernel's copy behind (it is made again on first use)."""
        return {**self.__dict__, "_kernel_cache": None}

    def uses_kernel(self) -> bool:
        """True when ``forward`` runs the compiled kernel: ``backend`` "kernel", or "auto" where it is available
        (``backend="kernel"`` without it raises ``RuntimeError`` with the reason)."""
        if self.backend == "torch":
            return False
        available, reason = kernel_status()
        if self.backend == "kernel" and not available:
            raise RuntimeError(f"backend='kernel' but {reason}")
        return available

    def storage(self) -> dict:
        """Packed codes, float32 scales, uint8 zero points (and AWQ's input scale, the bias)."""
        names = ("packed", "scale", "zero_point", "input_scale", "bias")
        return {"kind": "int4", **{n: getattr(self, n) for n in names if getattr(self, n) is not None}}


def to_int4_model(model: nn.Module, backend: str = "auto") -> nn.Module:
    """A copy of a ``weight_only.quantize_weights(..., bits=4)`` model whose layers are ``Int4Linear``
    (``backend``: "auto" = the compiled kernel where available, "kernel", or "torch")."""
    import copy

    from labkit.llm.weight_only import GroupQuantLinear

    twin = copy.deepcopy(model)
    layers = [(n, m) for n, m in twin.named_modules() if isinstance(m, GroupQuantLinear)]
    if not layers or any(m.quantized.bits != 4 for _, m in layers):
        raise ValueError("model must come from quantize_weights(..., bits=4): every block linear 4-bit")
    for name, module in layers:
        parent, child = name.rsplit(".", 1)
        twin.get_submodule(parent).register_module(child, Int4Linear(module.quantized, module.bias, backend))
    return twin
