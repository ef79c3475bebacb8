"""Pruning masks as a re-parametrisation: ``weight = weight_orig * weight_mask``, recomputed before
every forward pass by a forward pre-hook — the design of ``torch.nn.utils.prune``, from scratch.

Why not simply write zeros into ``weight``? Because the optimizer would bring them back: the
gradient of a zeroed weight is not zero, so the next Adam step moves it away from 0. With the
re-parametrisation the trained tensor is ``weight_orig`` (a Parameter), the mask is a buffer (saved
in the state dict, never trained) and the forward pass only ever sees ``orig * mask``, whose
gradient with respect to ``orig`` is ``grad * mask`` — exactly zero where the mask is 0.
``remove`` turns it back into a plain ``weight`` Parameter holding the zeros: pruning made permanent.

After ``apply_mask(module, "weight", mask=m)`` a module has:

* ``weight_orig`` — ``nn.Parameter``, the trainable weights (same shape as the weight);
* ``weight_mask`` — buffer of the same shape, float 0/1 (1 = kept);
* ``weight`` — a plain tensor attribute ``weight_orig * weight_mask`` (no longer a Parameter);
* a ``MaskHook`` in ``module._forward_pre_hooks`` recomputing ``weight`` before each forward.

Outside a forward pass ``weight`` holds a detached copy (``apply_mask`` and ``reapply_masks`` set it
under ``no_grad``), so a pruned model can be ``copy.deepcopy``-ed — except right after a forward
pass with gradients, when ``weight`` is part of the autograd graph (as in ``torch.nn.utils.prune``).

Explained in notebooks/07_unstructured_pruning.ipynb.
"""
from __future__ import annotations

import torch
from torch import nn

from labkit import architecture
from labkit.validate import require_module

PRUNABLE_TYPES = (nn.Linear, nn.Conv2d)


class MaskHook:
    """Forward pre-hook setting ``module.<name> = module.<name>_orig * module.<name>_mask``."""

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return f"MaskHook({self.name!r})"

    def __call__(self, module: nn.Module, inputs) -> None:
        setattr(module, self.name, masked_weight(module, self.name))


def masked_weight(module: nn.Module, name: str = "weight") -> torch.Tensor:
    """``<name>_orig * <name>_mask`` of a pruned module (differentiable with respect to ``_orig``)."""
    return getattr(module, name + "_orig") * getattr(module, name + "_mask")


def _check_module(module, name: str = "module") -> nn.Module:
    return require_module(name, module, allow_meta=True)     # masks and layer lists need only shapes


def _check_name(module: nn.Module, name) -> str:
    if not isinstance(name, str):
        raise TypeError(f"name must be a str naming a parameter, got {type(name).__name__}")
    if not is_pruned(module, name) and not isinstance(module._parameters.get(name), nn.Parameter):
        params = [n for n, _ in module.named_parameters(recurse=False)]
        raise ValueError(f"name must be a parameter of {type(module).__name__}, one of {params}; got {name!r}")
    return name


def _find_hook(module: nn.Module, name: str):
    for key, hook in module._forward_pre_hooks.items():
        if isinstance(hook, MaskHook) and hook.name == name:
            return key
    return None


def is_pruned(module, name: str = "weight") -> bool:
    """True if ``module.<name>`` is re-parametrised by a mask (``<name>_orig`` + ``<name>_mask`` + hook).

    Explained in notebooks/07_unstructured_pruning.ipynb.
    """
    _check_module(module)
    return (isinstance(module._parameters.get(name + "_orig"), nn.Parameter)
            and isinstance(module._buffers.get(name + "_mask"), torch.Tensor))


def apply_mask(module: nn.Module, name: str = "weight", *, mask) -> nn.Module:
    """Prune ``module.<name>`` with ``mask`` (same shape; bool or 0/1 float; 1 = keep), in place.

    The first call moves the Parameter to ``<name>_orig``, registers the buffer ``<name>_mask``
    (float, same dtype as the weight) and a forward pre-hook computing ``<name> = orig * mask``. On
    an already pruned module the masks combine: ``new mask = old mask · mask`` (a pruned weight
    stays pruned, as in ``torch.nn.utils.prune``). Raises ``TypeError`` for a non-module or a
    non-tensor mask, ``ValueError`` for an unknown parameter name, a wrong shape or values other than
    0 and 1. Returns the module. Explained in notebooks/07_unstructured_pruning.ipynb.
    """
    _check_module(module)
    name = _check_name(module, name)
    current = getattr(module, name + "_orig") if is_pruned(module, name) else module._parameters[name]
    mask = _check_mask(mask, current)
    if is_pruned(module, name):
        getattr(module, name + "_mask").mul_(mask)
    else:
        del module._parameters[name]
        module.register_parameter(name + "_orig", current)
        module.register_buffer(name + "_mask", mask)
        module.register_forward_pre_hook(MaskHook(name))
    with torch.no_grad():  # a detached value until the next forward, so copy.deepcopy(model) works
        setattr(module, name, masked_weight(module, name))
    return module


def _check_mask(mask, weight: torch.Tensor) -> torch.Tensor:
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"mask must be a torch.Tensor of 0/1 (or bool), got {type(mask).__name__}")
    if mask.shape != weight.shape:
        raise ValueError(f"mask must have the weight's shape {tuple(weight.shape)}, got {tuple(mask.shape)}")
    mask = mask.detach().to(device=weight.device, dtype=weight.dtype)
    if not bool(((mask == 0) | (mask == 1)).all()):
        raise ValueError("mask must hold only 0 and 1 (or False/True)")
    return mask.clone()


def remove(module, name: str = "weight") -> nn.Module:
    """Make the pruning of ``module.<name>`` permanent: ``<name> = Parameter(orig * mask)``.

    Deletes ``<name>_orig``, ``<name>_mask`` and the hook; the zeros stay in the new Parameter
    (and an optimizer may now move them again). Raises ``ValueError`` if the module is not pruned.
    Returns the module. Explained in notebooks/07_unstructured_pruning.ipynb.
    """
    _check_module(module)
    if not is_pruned(module, name):
        raise ValueError(f"module {type(module).__name__} has no pruned parameter {name!r} to remove "
                         f"(no {name}_orig / {name}_mask)")
    weight = masked_weight(module, name).detach()
    key = _find_hook(module, name)
    if key is not None:
        del module._forward_pre_hooks[key]
    del module._parameters[name + "_orig"]
    del module._buffers[name + "_mask"]
    if name in module.__dict__:
        delattr(module, name)
    module.register_parameter(name, nn.Parameter(weight))
    return module


def remove_all(model) -> nn.Module:
    """``remove`` on every pruned ``weight`` of ``model``; returns the model.

    Explained in notebooks/07_unstructured_pruning.ipynb.
    """
    _check_module(model, "model")
    for module in model.modules():
        if is_pruned(module, "weight"):
            remove(module, "weight")
    return model


@torch.no_grad()
def reapply_masks(model) -> None:
    """``orig.mul_(mask)`` for every pruned weight of ``model``: zero the trainable copy as well.

    The effective weight ``orig * mask`` is zero at pruned positions anyway; this keeps
    ``weight_orig`` zero there too (weight decay, a revived optimizer state), so ``remove`` and the
    masks always agree. Use as ``train.fit(..., after_step=reapply_masks)``.
    Explained in notebooks/07_unstructured_pruning.ipynb.
    """
    _check_module(model, "model")
    for module in model.modules():
        if is_pruned(module, "weight"):
            module.weight_orig.mul_(module.weight_mask)
            module.weight = masked_weight(module, "weight")


def prunable_layers(model) -> dict[str, nn.Module]:
    """``{qualified name: module}`` of every ``nn.Linear`` and ``nn.Conv2d`` in ``model``, in order.

    Explained in notebooks/07_unstructured_pruning.ipynb.
    """
    _check_module(model, "model")
    return {name: m for name, m in model.named_modules() if isinstance(m, PRUNABLE_TYPES)}


def require_prunable(model, purpose: str = "prune") -> dict[str, nn.Module]:
    """``prunable_layers(model)`` of a model with values to read, or ``ValueError`` when it has no
    ``nn.Linear``/``nn.Conv2d`` layer ("model has no ... layer to <purpose>"). The one check every
    pruning, scoring and sparse-training entry point makes on its ``model`` argument."""
    require_module("model", model)   # a meta-device model has shapes but no weights to rank
    layers = prunable_layers(model)
    if not layers:
        raise ValueError(f"model has no nn.Linear or nn.Conv2d layer to {purpose}")
    return layers

def effective_weight(module: nn.Module) -> torch.Tensor:
    """The weight the forward pass uses (``orig * mask`` if pruned), detached."""
    return (masked_weight(module) if is_pruned(module) else module.weight).detach()


def sparsity(model) -> dict:
    """Fraction of zero *weights* per prunable layer and over all of them (biases excluded).

    Returns ``{"layers": {name: zeros / numel}, "global": Σ zeros / Σ numel, "zeros": int,
    "total": int}``, counting zeros of the effective weight ``orig * mask``. (``measure.sparsity``
    counts every parameter, biases included.) Raises ``ValueError`` for a model without Linear/Conv2d
    layers. Explained in notebooks/07_unstructured_pruning.ipynb.
    """
    layers = prunable_layers(model)
    if not layers:
        raise ValueError("model has no nn.Linear or nn.Conv2d layer to measure")
    per_layer, zeros, total = {}, 0, 0
    for name, module in layers.items():
        w = effective_weight(module)
        z = int((w == 0).sum())
        per_layer[name] = z / w.numel()
        zeros, total = zeros + z, total + w.numel()
    return {"layers": per_layer, "global": zeros / total, "zeros": zeros, "total": total}


# --------------------------------------------------------------------------- saving (labkit.architecture)
def _reattach_mask(module: nn.Module, args: dict) -> None:
    """Put back the hook of a saved pruned module, whose ``<name>_orig`` and ``<name>_mask`` are loaded."""
    name = args["name"]
    if not is_pruned(module, name):
        raise ValueError(f"a saved mask hook names {name!r}, but the module has no {name}_orig / {name}_mask")
    module.register_forward_pre_hook(MaskHook(name))
    with torch.no_grad():
        setattr(module, name, masked_weight(module, name))


architecture.register_hook(MaskHook, lambda hook: {"name": hook.name}, _reattach_mask)
