"""GPTQ (Frantar, Ashkboos, Hoefler & Alistarh, "GPTQ: Accurate Post-Training Quantization for Generative
Pre-trained Transformers", ICLR 2023): quantize a linear layer column by column, each column's rounding
error pushed onto the columns not yet quantized, weighted by the inverse Hessian of the layer's loss.

For a layer ``y = W x`` and calibration inputs ``X`` ``[n, in]``, the loss ``‖W Xᵀ − Ŵ Xᵀ‖²`` has Hessian
``H = 2 XᵀX / n`` (``[in, in]``, the same for every output row). Optimal Brain Quantization quantizes
column ``j`` (``q_j = quant(w_j)``) and updates the remaining columns ``F``::

    w_F ← w_F − (w_j − q_j) / [H_F⁻¹]_jj · [H_F⁻¹]_{j,F}

GPTQ's three tricks, all here: (1) every row uses the same column order, so one ``H⁻¹`` serves all
rows; (2) the rows of the upper Cholesky factor ``U`` of ``H⁻¹`` (``H⁻¹ = UᵀU``) hold exactly the
``[H_F⁻¹]_{j,F} / sqrt([H_F⁻¹]_jj)`` needed after each elimination, so no inverse is updated; (3) *lazy
batch* updates: inside a block of ``block_size`` columns updates are applied immediately, the rest of
the matrix gets one matrix product per block. Dampening adds ``λ·mean(diag H)`` to the diagonal.
Group scales are found on a group's (already updated) weights when the sweep reaches its first column.

Explained in notebooks/16_transformer_compression.ipynb
"""
from __future__ import annotations

import torch

from labkit.llm.rtn import QuantizedWeight, check_weight_args
from labkit.quant.affine import QParams, qparams_from_range, quantize, tensor_range
from labkit.validate import require_float, require_float_tensor, require_int


def hessian(inputs: torch.Tensor) -> torch.Tensor:
    """``H = 2 XᵀX / n`` in float64 from calibration inputs ``X`` float ``[n, in]`` (n tokens, n ≥ 1)."""
    inputs = require_float_tensor("inputs", inputs, allow_empty=False)
    if inputs.dim() != 2:
        raise ValueError(f"inputs must be [n, in] (calibration tokens × features), got shape {tuple(inputs.shape)}")
    x = inputs.double()
    return 2.0 * x.T @ x / x.shape[0]


def inverse_hessian_factor(h: torch.Tensor, damp: float = 0.01, max_tries: int = 3) -> torch.Tensor:
    """Upper Cholesky factor ``U`` of ``(H + λI)⁻¹`` (``(H + λI)⁻¹ = UᵀU``), float64 ``[in, in]``.

    ``λ = damp·mean(diag H)``; a zero diagonal entry (a dead input) is set to 1 first. If the Cholesky
    fails, ``damp`` is multiplied by 10 and tried again, ``max_tries`` times in all (up to ``λ = mean(diag H)``
    by default); then ``ValueError``. A negative diagonal entry cannot come from ``2XᵀX/n``: refused at once.
    """
    damp = require_float("damp", damp, 0.0, None)
    h = h.double().clone()
    if h.dim() != 2 or h.shape[0] != h.shape[1]:
        raise ValueError(f"the Hessian must be square [in, in], got shape {tuple(h.shape)}")
    if not torch.isfinite(h).all():
        raise ValueError("the Hessian holds NaN or Inf: check the calibration inputs")
    if bool((torch.diag(h) < 0).any()):
        raise ValueError("the Hessian has a negative diagonal entry: it is not 2·XᵀX/n of any calibration inputs")
    dead = torch.diag(h) == 0
    h[dead, dead] = 1.0
    mean_diag = float(torch.diag(h).mean())
    for attempt in range(max_tries):
        lam = damp * 10 ** attempt * abs(mean_diag)
        lower, info = torch.linalg.cholesky_ex(h + lam * torch.eye(h.shape[0], dtype=h.dtype))
        if int(info) == 0:
            inverse = torch.cholesky_inverse(lower)
            return torch.linalg.cholesky(inverse, upper=True)
    raise ValueError(f"the Hessian is not positive definite even with dampening {damp * 10 ** (max_tries - 1):g}·mean(diag H) "
                     f"(mean diag {mean_diag:.3g}): the calibration inputs do not define a valid Hessian")


def _group_qparams(w_group: torch.Tensor, bits: int) -> QParams:
    """Per-row asymmetric parameters ``[out]`` from a group's columns ``[out, g]``."""
    lo, hi = tensor_range(w_group, "channel", axis=0)
    return qparams_from_range(lo, hi, bits, symmetric=False, signed=False, axis=0)


def gptq_quantize(weight: torch.Tensor, h: torch.Tensor, bits: int = 4, group_size: int | None = 64,
                  block_size: int = 128, damp: float = 0.01, act_order: bool = False) -> QuantizedWeight:
    """Quantize ``weight`` float ``[out, in]`` with GPTQ given the Hessian ``h`` ``[in, in]`` (``hessian``).

    Columns are processed in order 0…in−1 in blocks of ``block_size`` (rounded up to a multiple of
    ``group_size`` so that a group never straddles two blocks); a group's scale is found on its already
    updated weights when the sweep reaches its first column. ``act_order=True`` processes the columns in
    decreasing order of ``diag(H)`` (the inputs with the most energy first, while many columns are left to
    absorb their error; the reference implementation's ``--act-order``) with *static groups*: every group's
    scale is found on the unquantized weight before the sweep (AutoGPTQ's ``static_groups=True``), so the
    groups stay contiguous in the original column order and the storage is unchanged (the reference's
    act-order with groups instead forms groups in the permuted order and stores a column→group index).
    Returns a ``QuantizedWeight`` on the same grid as ``rtn_quantize`` (same storage, different codes).
    Explained in notebooks/16_transformer_compression.ipynb.
    """
    w, bits, group_size = check_weight_args(weight, bits, group_size)
    block_size = require_int("block_size", block_size, 1, None)
    if not isinstance(act_order, bool):
        raise TypeError(f"act_order must be True or False, got {act_order!r}")
    if not isinstance(h, torch.Tensor) or h.shape != (w.shape[1], w.shape[1]):
        raise ValueError(f"h must be the [in, in] = [{w.shape[1]}, {w.shape[1]}] Hessian, got "
                         f"{tuple(h.shape) if isinstance(h, torch.Tensor) else type(h).__name__}")
    w = w.double()
    w[:, torch.diag(h) == 0] = 0.0                  # a dead input never contributes: quantize it to 0
    if act_order:
        order = torch.argsort(torch.diag(h), descending=True, stable=True)
        groups = {g: _group_qparams(w[:, g * group_size:(g + 1) * group_size].float(), bits)
                  for g in range(w.shape[1] // group_size)}

        def params(j, w_now):              # static: found before the sweep, by original column
            return groups[int(order[j]) // group_size]
    else:
        order, groups = torch.arange(w.shape[1]), {}
        block_size = -(-block_size // group_size) * group_size

        def params(j, w_now):              # a group's scale from its updated weights, at its first column
            if j // group_size not in groups:
                groups[j // group_size] = _group_qparams(w_now[:, j:j + group_size].float(), bits)
            return groups[j // group_size]
    w = w[:, order]
    u = inverse_hessian_factor(h.double()[order][:, order], damp)
    codes = torch.zeros(w.shape, dtype=torch.uint8)
    for start in range(0, w.shape[1], block_size):
        stop = min(start + block_size, w.shape[1])
        errors = _quantize_block(w, u, start, stop, params, codes)
        w[:, stop:] -= errors @ u[start:stop, stop:]          # the lazy batch update
    qp = QParams(torch.stack([groups[g].scale for g in sorted(groups)], 1),
                 torch.stack([groups[g].zero_point for g in sorted(groups)], 1), bits, False, False, 0, group_size)
    return QuantizedWeight(codes[:, torch.argsort(order)], qp)


def _quantize_block(w, u, start, stop, params, codes) -> torch.Tensor:
    """Quantize columns ``start:stop`` of ``w`` (in processing order) in place, updating the block's later
    columns; ``params(j, w)`` gives column ``j``'s group parameters. Returns the scaled errors
    ``(w_j − q_j) / U_jj`` ``[out, stop − start]``."""
    errors = torch.zeros(w.shape[0], stop - start, dtype=w.dtype)
    for j in range(start, stop):
        qp = params(j, w)
        q = quantize(w[:, j:j + 1].float(), qp)
        codes[:, j] = q[:, 0]
        q_value = (q.double()[:, 0] - qp.zero_point.double()) * qp.scale.double()
        err = (w[:, j] - q_value) / u[j, j]
        w[:, j + 1:stop] -= err.unsqueeze(1) * u[j, j + 1:stop].unsqueeze(0)
        errors[:, j - start] = err
    return errors
