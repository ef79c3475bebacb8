"""Factorise the layers of a whole model in place and report what it saved, layer by layer.

Each chosen ``nn.Linear`` becomes a truncated SVD pair (``svd.svd_linear``) and each chosen
``nn.Conv2d`` (groups = 1) a Tucker-2 triple (``tucker.tucker2_conv``) or a CP quadruple
(``cp.cp_conv``). The factorised module takes the layer's place under the same name (``fc1`` becomes
``fc1.first`` + ``fc1.second``), so the rest of the model is untouched. A layer whose factorised form
would have at least as many parameters as the original (rank above the break-even) is left as it is
unless ``force=True``. Explained in notebooks/13_lowrank_lightweight.ipynb.
"""
from __future__ import annotations

import copy
from collections.abc import Mapping

from torch import nn

from labkit import measure
from labkit.lowrank.cp import cp_conv
from labkit.lowrank.svd import svd_linear
from labkit.lowrank.tucker import tucker2_conv
from labkit.validate import require_choice, require_float, require_module

CONV_METHODS = ("tucker2", "cp")


def factorisable_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Every ``nn.Linear`` and plain ``nn.Conv2d`` (groups = 1, dilation = 1) by qualified name."""
    return {name: m for name, m in model.named_modules()
            if isinstance(m, nn.Linear) or (isinstance(m, nn.Conv2d) and m.groups == 1
                                             and tuple(m.dilation) == (1, 1) and m.padding_mode == "zeros")}


def model_input_shape(model: nn.Module, input_shape=None) -> tuple:
    """``input_shape`` as a tuple, or ``(C, S, S)`` from a labkit model's ``config()`` when it is None."""
    if input_shape is not None:
        return tuple(input_shape)
    if hasattr(model, "config"):
        cfg = model.config()
        return (cfg["in_channels"], cfg["image_size"], cfg["image_size"])
    raise ValueError("input_shape (one example without the batch dimension, e.g. (1, 28, 28)) is needed "
                     "for a model built outside labkit.models")


def _macs_by_layer(model: nn.Module, input_shape) -> dict[str, int]:
    return {row.name: row.macs for row in measure.macs(model, input_shape)}


def _factorise(layer: nn.Module, spec, energy, conv_method: str) -> nn.Module:
    if isinstance(layer, nn.Linear):
        return svd_linear(layer, spec, energy=energy)
    if conv_method == "cp":
        if spec is None:
            raise ValueError("conv_method='cp' needs an explicit integer rank per conv layer (no energy=)")
        return cp_conv(layer, spec)
    return tucker2_conv(layer, spec, energy=energy)


def _rank_of(module: nn.Module):
    if isinstance(module, nn.Sequential) and hasattr(module, "first"):
        if hasattr(module, "core"):
            return (module.first.out_channels, module.core.out_channels)
        return module.first.out_features if isinstance(module.first, nn.Linear) else module.first.out_channels
    return None


def decompose_model(model: nn.Module, ranks: Mapping | None = None, *, energy: float | None = None,
                    layers=None, conv_method: str = "tucker2", input_shape=None, force: bool = False) -> list[dict]:
    """Replace layers of ``model`` by their low-rank factorisation (in place); return one row per layer.

    Give ``ranks`` — ``{layer name: rank}`` (an int for a Linear, an int or ``(R_in, R_out)`` for a
    conv) — or ``energy`` ∈ (0, 1], applied to every name in ``layers`` (default: all factorisable
    layers). Each row: ``layer``, ``type``, ``method`` (``svd``/``tucker2``/``cp``/``kept``), ``rank``,
    ``params_before``, ``params_after``, ``macs_before``, ``macs_after`` (one example of
    ``input_shape``, read from the model's config for labkit models). Explained in
    notebooks/13_lowrank_lightweight.ipynb.
    """
    require_module("model", model)  # a meta-device model has no weights to factorise
    conv_method = require_choice("conv_method", conv_method, CONV_METHODS)
    if (ranks is None) == (energy is None):
        raise ValueError("give exactly one of ranks= ({layer: rank}) or energy= (a fraction in (0, 1])")
    candidates = factorisable_layers(model)
    if ranks is not None:
        if not isinstance(ranks, Mapping) or not ranks:
            raise TypeError("ranks must be a non-empty dict {layer name: rank}")
        names = list(ranks)
    else:
        energy = require_float("energy", energy, 0.0, 1.0, low_open=True)
        names = list(candidates) if layers is None else list(layers)
    for name in names:
        if name not in candidates:
            found = dict(model.named_modules()).get(name)
            why = "no such layer" if found is None else f"unsupported layer type {type(found).__name__}" + (
                " (grouped/dilated conv)" if isinstance(found, nn.Conv2d) else "")
            raise ValueError(f"cannot factorise {name!r}: {why}; factorisable layers are {list(candidates)}")
    shape = model_input_shape(model, input_shape)
    before = _macs_by_layer(model, shape)
    rows = []
    for name in names:
        layer = candidates[name]
        new = _factorise(layer, ranks[name] if ranks is not None else None, energy, conv_method)
        params_before = sum(p.numel() for p in layer.parameters())
        params_after = sum(p.numel() for p in new.parameters())
        method = "svd" if isinstance(layer, nn.Linear) else conv_method
        if params_after >= params_before and not force:
            method, new, params_after = "kept", layer, params_before
        model.set_submodule(name, new)
        rows.append({"layer": name, "type": type(layer).__name__, "method": method, "rank": _rank_of(new),
                     "params_before": params_before, "params_after": params_after})
    after = _macs_by_layer(model, shape)
    for row in rows:
        name = row["layer"]
        row["macs_before"] = before[name]
        row["macs_after"] = sum(v for k, v in after.items() if k == name or k.startswith(name + "."))
    return rows


def report_totals(rows: list[dict]) -> dict:
    """Sums of ``params_before/after`` and ``macs_before/after`` over the rows of ``decompose_model``."""
    keys = ("params_before", "params_after", "macs_before", "macs_after")
    return {k: sum(r[k] for r in rows) for k in keys}


def factorised_copy(model: nn.Module, **kwargs) -> tuple[nn.Module, list[dict]]:
    """``decompose_model`` on a deep copy: ``(new model, rows)``; ``model`` is untouched.
    Explained in notebooks/13_lowrank_lightweight.ipynb."""
    clone = copy.deepcopy(model)
    return clone, decompose_model(clone, **kwargs)
