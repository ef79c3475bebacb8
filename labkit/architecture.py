"""A model as plain data: its module tree written as dicts of known kinds and constructor arguments.

``torch.save(model)`` pickles the model's classes by name, and loading it runs whatever code the
file names — which is why ``torch.load(weights_only=True)`` refuses such files. A state dict alone
is safe but not enough: it does not say that ``fc1`` became two factorised layers, that a conv lost
half its channels, or that a layer now holds int8 codes. This module writes that missing part as
plain data, so a checkpoint is (tree, state dict) and loads with ``weights_only=True``::

    describe(model)  ->  tree, state           (tree: dicts, lists, strings, numbers; state: tensors)
    build(tree, state)  ->  a new, equal model (in eval mode)

A node of the tree, one per module::

    {"kind": "Conv2d", "home": "labkit.architecture",     # which registered kind builds it
     "args": {"in_channels": 1, "out_channels": 6, ...},   # its constructor arguments
     "tensors": {"weight": "parameter", "bias": "parameter"},  # its own tensors and their roles
     "children": {"name": node, ...},                     # submodules, in order
     "hooks": [{"kind": "MaskHook", "home": "labkit.prune.masks", "args": {"name": "weight"}}]}

Every kind is registered with one function that describes an instance (``describe(module) ->
args``) and one that builds it (``build(args, children) -> module``), looked up by type:
``register_module`` here for torch's layers and labkit's models, and next to their classes for the
kinds of the higher layers (quantized and QAT layers in ``labkit.quant``, pruning masks in
``labkit.prune.masks``, the integer-only model, distillation students), so the dependency
direction holds. A loader that meets a kind it has not seen imports its ``home`` — only a module of
the ``labkit`` package, never anything else a file names. A module of an unregistered kind, or with
a forward hook of an unregistered kind (a ``FeatureTap``, ``torch.nn.utils.prune``), is refused
when the model is described, with its name: the file is never written. ``round_trip`` goes one step
further and checks that the rebuilt model computes bit-identical outputs.

Explained in notebooks/00_why_compress.ipynb.
"""
from __future__ import annotations

import copy
import hashlib
import importlib
import inspect
import json
import re
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from labkit import models

ROLES = ("parameter", "frozen parameter", "buffer", "None parameter", "None buffer")
_HOME = re.compile(r"^labkit(\.[A-Za-z_][A-Za-z0-9_]*)*$")


@dataclass(frozen=True)
class Kind:
    """How one type is saved: ``describe(obj) -> args`` and ``build(args, children) -> obj`` for a
    module, ``attach(module, args)`` for a hook, ``to_plain(obj) -> (args, tensors)`` /
    ``from_plain(args, tensors) -> obj`` for a model that is not an ``nn.Module``."""

    name: str
    home: str
    what: str  # "module", "hook" or "object"
    describe: Callable
    build: Callable


_BY_TYPE: dict[type, Kind] = {}
_BY_NAME: dict[tuple[str, str], Kind] = {}


def _register(cls: type, what: str, describe: Callable, build: Callable) -> None:
    kind = Kind(cls.__name__, build.__module__, what, describe, build)
    _BY_TYPE[cls] = kind
    _BY_NAME[(kind.home, kind.name)] = kind


def register_module(cls: type, describe: Callable, build: Callable) -> None:
    """Make modules of exactly type ``cls`` saveable: ``describe(module)`` returns its constructor
    arguments as plain data, ``build(args, children)`` a new module from them and its already built
    children (``{name: module or None}``, in order). The module defining ``build`` is the kind's home."""
    _register(cls, "module", describe, build)


def register_hook(cls: type, describe: Callable, attach: Callable) -> None:
    """Make forward pre-hooks of type ``cls`` saveable: ``describe(hook) -> args`` and
    ``attach(module, args)``, called once the module's tensors are loaded."""
    _register(cls, "hook", describe, attach)


def register_object(cls: type, to_plain: Callable, from_plain: Callable) -> None:
    """Make a model that is not an ``nn.Module`` saveable: ``to_plain(obj) -> (args, tensors)`` and
    ``from_plain(args, tensors) -> obj``."""
    _register(cls, "object", to_plain, from_plain)


def constructor_arguments(module) -> dict:
    """``{p: module.p}`` for every parameter of ``type(module).__init__``: the describe function of
    the kinds that keep each constructor argument in an attribute of the same name (observers)."""
    names = [p for p in inspect.signature(type(module).__init__).parameters if p != "self"]
    return {name: getattr(module, name) for name in names}


# --------------------------------------------------------------------------- describing a model
def describe(model) -> tuple[dict, dict[str, torch.Tensor]]:
    """``(tree, state)``: the plain-data tree of ``model`` and its tensors (detached, on the CPU).

    ``model`` is an ``nn.Module`` of registered kinds, or a registered non-module model (the
    integer-only model). ``TypeError`` naming the first module (or hook) that has no saved form.
    Explained in notebooks/00_why_compress.ipynb.
    """
    if not isinstance(model, nn.Module):
        kind = _kind_of(model, "model", "object")
        args, tensors = kind.describe(model)
        return _node(kind, args), {k: v.detach().cpu() for k, v in tensors.items()}
    tree = _describe_module(model, "model")
    tied = _tied_parameters(model)
    if tied:
        tree["tied"] = tied
    return tree, {k: v.detach().cpu() for k, v in model.state_dict().items()}


def _node(kind: Kind, args: dict) -> dict:
    return {"kind": kind.name, "home": kind.home, "args": args}


def _kind_of(obj, where: str, what: str) -> Kind:
    kind = _BY_TYPE.get(type(obj))
    if kind is None or kind.what != what:
        cls = type(obj)
        raise TypeError(f"model cannot be saved: {where} is a {cls.__module__}.{cls.__qualname__}, which has no "
                        f"saved form (saveable: {', '.join(sorted({k.name for k in _BY_TYPE.values()}))}); "
                        "save the model before adding it, or after converting it to one of those")
    return kind


def _describe_module(module: nn.Module, where: str) -> dict:
    kind = _kind_of(module, where, "module")
    node = _node(kind, kind.describe(module))
    tensors = _tensor_roles(module)
    if tensors:
        node["tensors"] = tensors
    hooks = _describe_hooks(module, where)
    if hooks:
        node["hooks"] = hooks
    if module._modules:
        node["children"] = {name: None if child is None else _describe_module(child, f"{where}.{name}")
                            for name, child in module._modules.items()}
    return node


def _tensor_roles(module: nn.Module) -> dict[str, str]:
    """The module's own parameters and (persistent) buffers and what each is (see ``ROLES``)."""
    roles = {}
    for name, param in module._parameters.items():
        roles[name] = "None parameter" if param is None else \
            "parameter" if param.requires_grad else "frozen parameter"
    for name, buffer in module._buffers.items():
        if name not in module._non_persistent_buffers_set:
            roles[name] = "None buffer" if buffer is None else "buffer"
    return roles


def _describe_hooks(module: nn.Module, where: str) -> list[dict]:
    """Forward (pre-)hooks change what a module computes: each must be of a registered kind."""
    if module._forward_hooks:
        hook = next(iter(module._forward_hooks.values()))
        name = getattr(hook, "__qualname__", type(hook).__qualname__)
        raise TypeError(f"model cannot be saved: {where} has a forward hook ({name}), which changes what it "
                        "computes and has no saved form; remove it first (a FeatureTap: tap.remove())")
    kinds = [(_kind_of(hook, f"the forward pre-hook of {where}", "hook"), hook)
             for hook in module._forward_pre_hooks.values()]
    return [_node(kind, kind.describe(hook)) for kind, hook in kinds]


def _tied_parameters(model: nn.Module) -> dict[str, str]:
    """``{alias: first name}`` for every parameter reachable under two names (tied weights)."""
    first, tied = {}, {}
    for name, param in model.named_parameters(remove_duplicate=False):
        if id(param) in first:
            tied[name] = first[id(param)]
        else:
            first[id(param)] = name
    return tied


def digest(tree: dict) -> str:
    """SHA-256 (hex) of the tree written as canonical JSON: a changed stride or width changes it."""
    return hashlib.sha256(json.dumps(tree, sort_keys=True).encode()).hexdigest()


# --------------------------------------------------------------------------- building it back
def build(tree: dict, state: dict[str, torch.Tensor]):
    """A new model from ``describe``'s ``(tree, state)``, in eval mode, holding copies of the tensors.

    Imports the home of a kind it has not seen (only ``labkit`` modules). ``ValueError`` for a tree
    that is not well formed, names a kind that no labkit module registers, or does not match
    ``state`` (a missing or unexpected tensor). The global random state is left as it was.
    Explained in notebooks/00_why_compress.ipynb.
    """
    _check_node(tree, "model")
    kind = _lookup(tree, "model")
    if kind.what == "object":
        return kind.build(tree["args"], {k: v.clone() for k, v in state.items()})
    with torch.random.fork_rng(devices=[]):  # constructors draw random weights that are overwritten
        model = _build_module(tree, "model")
    remaining = dict(state)
    _load_tensors(model, tree, remaining, "")
    if remaining:
        raise ValueError(f"the state dict holds tensors the architecture does not: {sorted(remaining)[:5]}")
    for alias, target in tree.get("tied", {}).items():
        _retie(model, alias, target)
    _attach_hooks(model, tree)
    return model.eval()


def _lookup(node: dict, where: str, what: str | None = None) -> Kind:
    """The registered kind a node names, importing its home first if needed (a labkit module only);
    ``what`` ("module", "hook") is what the node must be."""
    key = (node["home"], node["kind"])
    if key not in _BY_NAME:
        if not _HOME.match(node["home"]):
            raise ValueError(f"{where}: kind {node['kind']!r} comes from {node['home']!r}, not a labkit module")
        try:
            importlib.import_module(node["home"])  # a labkit module registers its kinds when imported
        except ImportError as error:
            raise ValueError(f"{where}: kind {node['kind']!r}: cannot import {node['home']!r} ({error})") from None
    if key not in _BY_NAME:
        raise ValueError(f"{where}: kind {node['kind']!r} is not registered by {node['home']!r} (a newer labkit's file?)")
    kind = _BY_NAME[key]
    if what is not None and kind.what != what:
        raise ValueError(f"{where}: kind {node['kind']!r} is a {kind.what}, not a {what}")
    return kind


def _check_node(node, where: str) -> None:
    """A node must be a dict with a string kind and home, dict args, valid roles and named children."""
    def named(item) -> bool:
        return (isinstance(item, dict) and isinstance(item.get("kind"), str) and isinstance(item.get("home"), str)
                and isinstance(item.get("args"), dict))

    ok = (named(node) and isinstance(node.get("tensors", {}), dict)
          and all(role in ROLES for role in node.get("tensors", {}).values())
          and isinstance(node.get("children", {}), dict) and isinstance(node.get("hooks", []), list)
          and all(named(hook) for hook in node.get("hooks", [])))
    if not ok:
        raise ValueError(f"the architecture is damaged at {where}: not a well-formed node")
    tied = node.get("tied", {})
    if not isinstance(tied, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in tied.items()):
        raise ValueError(f"the architecture is damaged at {where}: bad tied parameters")
    for name, child in node.get("children", {}).items():
        if not isinstance(name, str) or not name or "." in name:
            raise ValueError(f"the architecture is damaged at {where}: bad child name {name!r}")
        if child is not None:
            _check_node(child, f"{where}.{name}")


def _build_module(node: dict, where: str) -> nn.Module:
    children = {name: None if child is None else _build_module(child, f"{where}.{name}")
                for name, child in node.get("children", {}).items()}
    module = _lookup(node, where, "module").build(node["args"], children)
    if list(module._modules) != list(children) or any(module._modules[n] is not c for n, c in children.items()):
        raise ValueError(f"{where}: building a {node['kind']} did not keep its described children")
    return module


def _load_tensors(module: nn.Module, node: dict, state: dict, prefix: str) -> None:
    """Give every module exactly the tensors its node lists, with the saved values (copied)."""
    roles = node.get("tensors", {})
    for name in [n for n in module._parameters if n not in roles]:
        del module._parameters[name]
    for name in [n for n in module._buffers if n not in roles and n not in module._non_persistent_buffers_set]:
        del module._buffers[name]
    for name, role in roles.items():
        module._parameters.pop(name, None)
        module._buffers.pop(name, None)
        module.__dict__.pop(name, None)
        if role == "None parameter":
            module._parameters[name] = None
        elif role == "None buffer":
            module._buffers[name] = None
        else:
            if prefix + name not in state:
                raise ValueError(f"the state dict lacks {prefix + name!r}, which the architecture lists")
            tensor = state.pop(prefix + name).clone()
            if role == "buffer":
                module._buffers[name] = tensor
            else:
                module._parameters[name] = nn.Parameter(tensor, requires_grad=role == "parameter"
                                                        and tensor.is_floating_point())
    for name, child in module._modules.items():
        if child is not None:
            _load_tensors(child, node["children"][name], state, f"{prefix}{name}.")


def _retie(model: nn.Module, alias: str, target: str) -> None:
    """Make parameter ``alias`` the very Parameter ``target`` again (a tied weight)."""
    owner, _, name = alias.rpartition(".")
    source, _, source_name = target.rpartition(".")
    model.get_submodule(owner)._parameters[name] = model.get_submodule(source)._parameters[source_name]


def _attach_hooks(module: nn.Module, node: dict) -> None:
    for hook in node.get("hooks", []):
        _lookup(hook, "a hook", "hook").build(module, hook["args"])
    for name, child in module._modules.items():
        if child is not None:
            _attach_hooks(child, node["children"][name])


# --------------------------------------------------------------------------- the round trip
def round_trip(model) -> tuple[dict, dict[str, torch.Tensor]]:
    """``describe(model)``, after checking that ``build`` gives back a model with bit-identical outputs.

    The check runs both models (the original on a deep copy, so nothing in it changes) in eval mode
    on two seeded random inputs of the model's input shape — known for labkit's models (``config()``)
    and the integer-only model; for other models only the structure and tensors are checked.
    ``TypeError`` naming the reason when the model cannot be saved faithfully.
    Explained in notebooks/00_why_compress.ipynb.
    """
    tree, state = describe(model)
    try:
        rebuilt = build(tree, state)
    except (ValueError, TypeError) as error:
        raise TypeError(f"model cannot be saved: it would not load back ({error})") from error
    shape = input_shape(model)
    if shape is not None and not _same_outputs(model, rebuilt, shape):
        raise TypeError(f"model cannot be saved faithfully: rebuilt from its saved form, {type(model).__name__} "
                        "computes different outputs (one of its modules holds state that its kind does not "
                        "describe); save it before that change, or convert it first")
    return tree, state


def input_shape(model) -> tuple | None:
    """One example's shape ``(C, S, S)`` from a labkit model's ``config()`` (or the integer-only
    model's first layer), else None."""
    config = model.config() if callable(getattr(model, "config", None)) else {}
    if {"in_channels", "image_size"} <= set(config):
        return (config["in_channels"], config["image_size"], config["image_size"])
    layers = getattr(model, "layers", None)  # an IntegerModel
    if isinstance(layers, list) and layers and hasattr(layers[0], "in_shape"):
        return tuple(layers[0].in_shape)
    return None


def _same_outputs(model, rebuilt, shape: tuple) -> bool:
    x = torch.rand((2, *shape), generator=torch.Generator().manual_seed(0))
    if not isinstance(model, nn.Module):
        pixels = (x * 255).round().to(torch.uint8).numpy()
        return bool((model.forward_uint8(pixels) == rebuilt.forward_uint8(pixels)).all())
    try:
        original = copy.deepcopy(model).eval()
        x = x.to(next((p.dtype for p in original.parameters() if p.is_floating_point()), torch.float32))
        with torch.no_grad():
            expected = original(x)
    except (RuntimeError, IndexError, ValueError):  # no copy (a masked weight right after backward), or
        return True                                   # a model that cannot run on its own input shape
    try:
        with torch.no_grad():
            return torch.equal(expected, rebuilt(x))
    except (RuntimeError, IndexError, ValueError):  # the original runs, its rebuilt copy does not
        return False


# --------------------------------------------------------------------------- torch's layers and labkit's models
def with_children(module: nn.Module, children: dict) -> nn.Module:
    """``module`` with exactly ``children`` as its submodules, in that order: the ``build`` of a
    container or a model whose layers are all children (``nn.Sequential``, ``models.LeNet5``...)."""
    module._modules.clear()
    module._modules.update(children)
    return module


def _leaf(cls: type, *names: str, flags: tuple[str, ...] = ()) -> None:
    """Register a torch layer whose constructor arguments are attributes of the same name; each of
    ``flags`` (e.g. ``bias``) is saved as whether that parameter exists."""
    def describe_layer(module):
        args = {name: getattr(module, name) for name in names}
        args.update({flag: getattr(module, flag) is not None for flag in flags})
        return args

    def build_layer(args, children):
        return cls(**args)

    register_module(cls, describe_layer, build_layer)


_leaf(nn.Linear, "in_features", "out_features", flags=("bias",))
_leaf(nn.Conv2d, "in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups",
      "padding_mode", flags=("bias",))
for _norm in (nn.BatchNorm1d, nn.BatchNorm2d):
    _leaf(_norm, "num_features", "eps", "momentum", "affine", "track_running_stats")
_leaf(nn.ReLU, "inplace")
_leaf(nn.MaxPool2d, "kernel_size", "stride", "padding", "dilation", "return_indices", "ceil_mode")
_leaf(nn.AvgPool2d, "kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override")
_leaf(nn.AdaptiveAvgPool2d, "output_size")
_leaf(nn.Flatten, "start_dim", "end_dim")
_leaf(nn.Dropout, "p", "inplace")
_leaf(nn.Identity)
register_module(nn.Sequential, lambda module: {}, lambda args, children: with_children(nn.Sequential(), children))


def _model_config(module) -> dict:
    return {key: value for key, value in module.config().items() if key != "model"}


for _cls in (models.LeNet300100, models.LeNet5, models.LeNet5Caffe, models.SmallVGG, models.SmallResNet,
             models.MobileNetSmall):
    # built as models.build builds them, then given the described layers (pruned, factorised...)
    register_module(_cls, _model_config, lambda args, children, cls=_cls: with_children(cls(**args), children))
# Every layer of a block is one of its children, described on its own: the block's own arguments
# only have to produce *a* block, whose layers are then replaced.
register_module(models.BasicBlock, lambda module: {},
                lambda args, children: with_children(models.BasicBlock(1, 1), children))
register_module(models.DepthwiseSeparable, lambda module: {},
                lambda args, children: with_children(models.DepthwiseSeparable(1, 1), children))
