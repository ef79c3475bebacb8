"""Multiply-accumulates (MACs) of every Linear and Conv call, traced with forward hooks on one example.

Explained in notebooks/00_why_compress.ipynb.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from labkit.measure.counting import effective_parameters
from labkit.validate import require_module


@dataclass(frozen=True)
class LayerMACs:
    """One call of a Linear or Conv layer during the traced forward pass (batch of one).

    ``output_shape`` excludes the batch dimension; ``params`` counts the layer's own parameters;
    ``macs`` = output elements × weight elements per output channel; ``nonzero_macs`` counts only
    the multiplications by a non-zero weight (what a perfect sparse kernel would execute).
    """

    name: str
    type: str
    output_shape: tuple
    params: int
    nonzeros: int
    macs: int
    nonzero_macs: int


def macs(model: nn.Module, input_shape) -> list[LayerMACs]:
    """Multiply-accumulates of every Linear and Conv1d/2d/3d call for one example of ``input_shape``.

    ``input_shape`` is the shape of one example without the batch dimension, e.g. ``(1, 28, 28)``.
    The model runs once (eval mode, no grad, mode restored) on zeros ``[1, *input_shape]``. For a
    layer with weight ``W`` of shape ``[C_out, ...]`` and per-example output ``Y``:
    ``MACs = Y.numel() * W[0].numel()``, which is ``H_out·W_out·C_out·(C_in/groups)·kh·kw`` for a
    conv (stride, padding and dilation enter through ``H_out, W_out``) and ``out·in`` for a Linear.
    Bias additions, activations, pooling and normalisation are not counted, as in most papers.
    Explained in notebooks/00_why_compress.ipynb.
    """
    return [layer_macs(name, module, shape) for name, module, shape in trace_calls(model, input_shape)
            if is_mac_layer(module)]


def total_macs(model: nn.Module, input_shape) -> int:
    """Sum of ``macs(model, input_shape)`` over all layers (one example). Explained in notebooks/00_why_compress.ipynb."""
    return sum(layer.macs for layer in macs(model, input_shape))


def nonzero_macs(model: nn.Module, input_shape) -> int:
    """MACs that multiply a non-zero weight: per layer ``(Y.numel() / C_out) * nnz(W)``, summed.

    The gap to ``total_macs`` is what unstructured sparsity could save with an ideal sparse kernel
    (padding positions are counted as if they held data). Explained in notebooks/00_why_compress.ipynb.
    """
    return sum(layer.nonzero_macs for layer in macs(model, input_shape))


def is_mac_layer(module: nn.Module) -> bool:
    return isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d))


def layer_macs(name: str, module: nn.Module, output_shape: tuple) -> LayerMACs:
    """Count the MACs of one Linear/Conv call from its effective weight and output shape."""
    weight = _effective_weight(module)
    # output elements per output channel, weights per output channel (a layer of width 0: none)
    positions = math.prod(output_shape) // weight.shape[0] if weight.shape[0] else 0
    fan_in = weight.numel() // weight.shape[0] if weight.shape[0] else 0
    params, nonzeros = own_counts(module)
    return LayerMACs(name=name, type=type(module).__name__, output_shape=output_shape,
                     params=params, nonzeros=nonzeros,
                     macs=math.prod(output_shape) * fan_in,
                     nonzero_macs=positions * int(torch.count_nonzero(weight)))


def _effective_weight(module: nn.Module) -> torch.Tensor:
    """``weight_orig * weight_mask`` for a pruned module, else ``weight``."""
    mask = getattr(module, "weight_mask", None)
    if hasattr(module, "weight_orig") and isinstance(mask, torch.Tensor):
        return (module.weight_orig * mask).detach()
    return module.weight.detach()


def own_counts(module: nn.Module) -> tuple[int, int]:
    """(parameters, effective non-zeros) owned by ``module`` itself, not by its children."""
    params = sum(p.numel() for p in module.parameters(recurse=False))
    nonzeros = sum(int(torch.count_nonzero(t)) for _, t in effective_parameters(module))
    return params, nonzeros


def trace_calls(model: nn.Module, input_shape) -> list[tuple[str, nn.Module, tuple | None]]:
    """Run ``model`` on zeros ``[1, *input_shape]``; return (name, module, output shape) per leaf call."""
    require_module("model", model)
    shape = _check_input_shape(input_shape)
    calls = []

    def recorder(name):
        def hook(module, inputs, output):
            out_shape = tuple(output.shape[1:]) if isinstance(output, torch.Tensor) else None
            calls.append((name or "(model)", module, out_shape))
        return hook

    leaves = [(n, m) for n, m in model.named_modules() if next(m.children(), None) is None]
    handles = [m.register_forward_hook(recorder(n)) for n, m in leaves]
    try:
        with eval_no_grad(model):
            model(_dummy_input(model, shape))
    except RuntimeError as error:
        raise ValueError(f"input_shape {shape} does not fit the model: {error}") from error
    finally:
        for handle in handles:
            handle.remove()
    return calls


def _dummy_input(model: nn.Module, shape: tuple) -> torch.Tensor:
    """Zeros ``[1, *shape]`` with the dtype and device of the model's first floating tensor."""
    tensors = [t for t in [*model.parameters(), *model.buffers()] if t.is_floating_point()]
    like = tensors[0] if tensors else torch.zeros(())
    return torch.zeros((1, *shape), dtype=like.dtype, device=like.device)


@contextmanager
def eval_no_grad(model: nn.Module):
    """``eval()`` + ``no_grad`` for the duration; every submodule's own mode is restored after."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for module, mode in modes:
            module.training = mode


def _check_input_shape(input_shape) -> tuple:
    """``input_shape`` as a tuple of positive ints (one example, no batch dimension)."""
    valid = (isinstance(input_shape, (tuple, list, torch.Size)) and len(input_shape) > 0
             and all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in input_shape))
    if not valid:
        raise ValueError("input_shape must be a non-empty tuple of positive ints (one example, "
                         f"without the batch dimension), e.g. (1, 28, 28); got {input_shape!r}")
    return tuple(input_shape)
