"""Channel surgery: rebuild a network with some output channels physically removed.

A *channel group* is a producer layer (Conv2d or Linear) whose output channels may be removed, the
BatchNorm that normalises them (if any) and the consumer layer that reads them. Removing channel
``c`` deletes ``W_prod[c]``, ``b_prod[c]``, ``γ_c, β_c, μ_c, σ²_c`` and the consumer's input slice
``W_cons[:, c]`` — or, after a ``Flatten`` of ``[C, H, W]``, its ``H·W`` columns ``c·HW … c·HW+HW−1``.

Supported: ``nn.Sequential`` chains (LeNet-5, the VGG; between producer and consumer only
BatchNorm, ReLU, pooling, Dropout, Identity and one Flatten), and ResNet ``BasicBlock``s, where only
the *inner* width (conv1 → bn1 → conv2) is pruned. conv2's output is added to the shortcut, so its
channels are coupled with the shortcut's and with every other block on the same residual stream;
removing them would need the same indices everywhere on that stream, so they are left alone.

**Folding the constant of a removed channel** (``fold=True``). A channel whose BatchNorm scale is
``γ_c = 0`` outputs the constant ``β_c`` whatever the input (without a BatchNorm: a filter of zeros
outputs its bias ``b_c``); after the ReLU it is ``a_c = relu(β_c)``, and max-pooling keeps it. Simply
deleting the channel would also delete that constant's contribution to the consumer,
``Δ_o = Σ_c a_c · Σ_{taps} W_cons[o, c, taps]``; the fold adds ``Δ`` to the consumer's bias (or
subtracts it from the running mean of the BatchNorm right after a bias-free consumer, which is the
same shift). This is *exact* when the consumer reads the constant at every tap: a Linear layer
(after a Flatten, or in a Linear chain) or an unpadded convolution (LeNet-5's conv2). A zero-padded
convolution (the VGG's 3×3 convs, a ResNet block's conv2) sees zeros instead of ``a_c`` where its
window hangs over the border, so there the fold is exact on the interior positions only and the
one-pixel border ring is off by ``a_c`` times the weights of the taps that fall outside.
Explained in notebooks/09_structured_pruning.ipynb.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from labkit.models import BasicBlock
from labkit.validate import require_bool, require_module

_PASS_THROUGH = (nn.ReLU, nn.MaxPool2d, nn.AvgPool2d, nn.Dropout, nn.Identity)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)


@dataclass(frozen=True)
class ChannelGroup:
    """``layer`` (producer) → optional ``norm`` → ... → ``consumer``; ``positions`` is the number of
    consumer inputs per channel (``H·W`` after a Flatten, else 1); ``channels`` the producer's ``C_out``;
    ``relu`` whether a ReLU lies between producer and consumer; ``consumer_norm`` the BatchNorm right
    after the consumer, if any (where ``fold=True`` puts the shift of a bias-free consumer)."""

    layer: str
    norm: str | None
    consumer: str
    positions: int
    channels: int
    relu: bool = False
    consumer_norm: str | None = None


def _check_model(model) -> None:
    require_module("model", model)
    pruned = [n for n, m in model.named_modules() if hasattr(m, "weight_mask")]
    if pruned:
        raise ValueError(f"layers {pruned} carry chapter-07 masks; call prune.remove_all(model) first")


def channel_groups(model: nn.Module, *, linear: bool = False) -> dict[str, ChannelGroup]:
    """``{producer name: ChannelGroup}`` of every layer whose output channels can be removed.

    ``nn.Sequential`` models: every Conv2d (``groups=1``) followed by another Conv2d or by a Flatten
    and a Linear — plus hidden Linear layers when ``linear=True``. Models with ``BasicBlock``s: each
    block's ``conv1``. Anything else (depthwise convolutions, unknown layers between a producer and
    its consumer, other architectures) raises ``ValueError`` naming it.
    Explained in notebooks/09_structured_pruning.ipynb.
    """
    _check_model(model)
    if isinstance(model, nn.Sequential):
        groups = _sequential_groups(model, linear)
    else:
        blocks = {n: m for n, m in model.named_modules() if isinstance(m, BasicBlock)}
        groups = {f"{n}.conv1": ChannelGroup(f"{n}.conv1", f"{n}.bn1", f"{n}.conv2", 1, b.conv1.out_channels,
                                             relu=True, consumer_norm=f"{n}.bn2")
                  for n, b in blocks.items()}
    if not groups:
        raise ValueError(f"unsupported model type {type(model).__name__}: structured surgery handles "
                         "nn.Sequential chains of Conv2d/Linear children (LeNet-5, VGG) and ResNet BasicBlocks")
    return groups


def _sequential_groups(model: nn.Sequential, linear: bool) -> dict[str, ChannelGroup]:
    children = list(model.named_children())
    mac_at = [i for i, (_, m) in enumerate(children) if isinstance(m, (nn.Conv2d, nn.Linear))]
    groups = {}
    for i, j in zip(mac_at, mac_at[1:]):
        name, layer = children[i]
        if isinstance(layer, nn.Linear) and not linear:
            continue
        if isinstance(layer, nn.Conv2d) and layer.groups != 1:
            raise ValueError(f"unsupported layer {name!r}: grouped/depthwise Conv2d (groups={layer.groups})")
        norm, flatten, relu = None, False, False
        for between, module in children[i + 1:j]:
            if isinstance(module, _NORMS):
                norm = between
            elif isinstance(module, nn.Flatten):
                flatten = True
            elif isinstance(module, nn.ReLU):
                relu = True
            elif not isinstance(module, _PASS_THROUGH):
                raise ValueError(f"unsupported module {between!r} ({type(module).__name__}) between "
                                 f"{name!r} and {children[j][0]!r}")
        consumer_name, consumer = children[j]
        out = layer.out_channels if isinstance(layer, nn.Conv2d) else layer.out_features
        if isinstance(consumer, nn.Conv2d):
            if consumer.groups != 1:
                raise ValueError(f"unsupported layer {consumer_name!r}: grouped Conv2d")
            if flatten:
                raise ValueError(f"unsupported Flatten between {name!r} and Conv2d {consumer_name!r}")
            positions = 1
        elif isinstance(layer, nn.Linear) or not flatten:
            if isinstance(layer, nn.Conv2d):
                raise ValueError(f"unsupported Conv2d {name!r} → Linear {consumer_name!r} without a Flatten")
            positions = 1
        else:
            positions = consumer.in_features // out
            if positions * out != consumer.in_features:
                raise ValueError(f"{consumer_name!r} has {consumer.in_features} inputs, not a multiple of "
                                 f"{out} channels of {name!r}")
        after = children[j + 1] if j + 1 < len(children) else (None, None)
        consumer_norm = after[0] if isinstance(after[1], _NORMS) else None
        groups[name] = ChannelGroup(name, norm, consumer_name, positions, out, relu, consumer_norm)
    return groups


def _check_keep(groups: dict, keep) -> dict[str, torch.Tensor]:
    if not isinstance(keep, dict):
        raise TypeError(f"keep must be a dict {{group name: kept channel indices}}, got {type(keep).__name__}")
    checked = {}
    for name, idx in keep.items():
        if name not in groups:
            raise ValueError(f"keep has unknown group {name!r}; prunable groups are {list(groups)}")
        idx = torch.as_tensor(idx).reshape(-1)
        c = groups[name].channels
        if idx.numel() == 0:
            raise ValueError(f"keep[{name!r}] must keep at least one channel of {c}")
        if idx.is_floating_point() or idx.dtype == torch.bool:
            raise TypeError(f"keep[{name!r}] must hold integer channel indices, got dtype {idx.dtype}")
        idx = torch.unique(idx.long())  # sorted, no duplicates
        if idx[0] < 0 or idx[-1] >= c:
            raise ValueError(f"keep[{name!r}] indices must be in [0, {c - 1}], got {idx.tolist()}")
        checked[name] = idx
    return checked


def _inputs(idx: torch.Tensor, positions: int) -> torch.Tensor:
    """Channel indices → consumer input indices (``c·P + p`` for ``p < P``, channel-major as Flatten)."""
    return (idx[:, None] * positions + torch.arange(positions)).reshape(-1)


def prune_channels(model: nn.Module, keep: dict, *, fold: bool = False) -> nn.Module:
    """A copy of ``model`` in which group ``g`` keeps only the output channels ``keep[g]``.

    ``keep`` maps names of ``channel_groups(model, linear=True)`` to integer indices (sorted and
    de-duplicated here; at least one, each in ``[0, C_out)``). For each group the producer weight
    ``[C_out, ...]`` becomes ``[k, ...]`` (bias and BatchNorm ``γ, β, μ, σ²`` likewise) and the
    consumer weight ``[O, C_out·P, ...]`` becomes ``[O, k·P, ...]``. With ``fold=True`` the constant
    ``a_c = relu(β_c)`` (or ``relu(b_c)`` without a BatchNorm) of every removed channel is first folded
    into the consumer (``removed_constants``, ``fold_removed_channels``; exact for Linear and unpadded
    conv consumers, interior-exact for zero-padded ones — see the module docstring). The copy is a
    genuinely smaller dense module of the same class; ``model`` is unchanged.
    Explained in notebooks/09_structured_pruning.ipynb.
    """
    groups = channel_groups(model, linear=True)
    keep = _check_keep(groups, keep)
    require_bool("fold", fold)
    new = copy.deepcopy(model)
    if fold:
        fold_removed_channels(new, keep)
    out_keep, in_keep = {}, {}
    for name, idx in keep.items():
        group = groups[name]
        out_keep[group.layer] = idx
        in_keep[group.consumer] = _inputs(idx, group.positions)
        if group.norm is not None:
            new.set_submodule(group.norm, _slice_norm(new.get_submodule(group.norm), idx))
    for name in list(dict.fromkeys([*out_keep, *in_keep])):
        new.set_submodule(name, _slice_layer(new.get_submodule(name), out_keep.get(name), in_keep.get(name)))
    return new


def zero_channels(model: nn.Module, keep: dict, *, keep_shift: bool = False) -> nn.Module:
    """Zero, in place, every channel *not* in ``keep[g]``: producer rows and bias, and BatchNorm ``γ, β``.

    The removed channels then output exactly 0 (after BN and ReLU), so ``prune_channels(model, keep)``
    computes the same function — the check that the surgery is right. With ``keep_shift=True`` only
    the varying part goes: the producer's filter rows and the BatchNorm scale ``γ``; the shift (``β``,
    or the producer bias without a BatchNorm) stays, so each removed channel outputs the constant
    ``relu(β_c)`` — the γ ≈ 0 channel of network slimming, the check of ``prune_channels(..., fold=True)``.
    Returns ``model``. Explained in notebooks/09_structured_pruning.ipynb.
    """
    groups = channel_groups(model, linear=True)
    keep = _check_keep(groups, keep)
    with torch.no_grad():
        for name, idx in keep.items():
            group = groups[name]
            drop = _dropped(group, idx)
            layer = model.get_submodule(group.layer)
            norm = None if group.norm is None else model.get_submodule(group.norm)
            tensors = [layer.weight, *([] if keep_shift and norm is None else [layer.bias])]
            if norm is not None:
                tensors += [norm.weight, *([] if keep_shift else [norm.bias])]
            for tensor in tensors:
                if tensor is not None:
                    tensor[drop] = 0.0
    return model


def _dropped(group: ChannelGroup, idx: torch.Tensor) -> torch.Tensor:
    drop = torch.ones(group.channels, dtype=torch.bool)
    drop[idx] = False
    return drop


def removed_constants(model: nn.Module, group: ChannelGroup, idx: torch.Tensor) -> torch.Tensor:
    """``a_c`` of every channel of ``group`` *not* in ``idx``: float ``[C_out − k]``, in channel order.

    ``a_c = β_c`` of the group's BatchNorm (its output when ``γ_c = 0``), or the producer's bias
    ``b_c`` without a BatchNorm (its output when the filter is 0; 0 without a bias), then ``relu``
    when a ReLU lies between producer and consumer. Explained in notebooks/09_structured_pruning.ipynb.
    """
    drop = _dropped(group, idx)
    source = model.get_submodule(group.norm) if group.norm is not None else model.get_submodule(group.layer)
    shift = source.bias
    value = torch.zeros(int(drop.sum())) if shift is None else shift.detach()[drop]
    return value.clamp_min(0.0) if group.relu else value


def fold_removed_channels(model: nn.Module, keep: dict) -> nn.Module:
    """Add, in place, the constant contribution of every channel *not* in ``keep[g]`` to its consumer.

    For group ``g`` with consumer weight ``W [O, C·P, ...]``: ``Δ_o = Σ_{c removed} a_c · Σ W[o, c·P + p, taps]``
    (``a_c`` from ``removed_constants``). ``Δ`` goes into the consumer's bias, or — when the consumer
    has no bias and a BatchNorm follows it — ``running_mean −= Δ`` of that BatchNorm (eval mode: the
    same function; train mode: the batch mean absorbs any constant); otherwise a bias is created. The
    channels themselves are not removed (``prune_channels(..., fold=True)`` does both). Returns ``model``.
    Explained in notebooks/09_structured_pruning.ipynb.
    """
    groups = channel_groups(model, linear=True)
    keep = _check_keep(groups, keep)
    with torch.no_grad():
        for name, idx in keep.items():
            group = groups[name]
            consumer = model.get_submodule(group.consumer)
            drop_inputs = _inputs(torch.nonzero(_dropped(group, idx)).reshape(-1), group.positions)
            if drop_inputs.numel() == 0:          # this group keeps every channel: nothing to fold
                continue
            constants = removed_constants(model, group, idx).to(consumer.weight.dtype)
            per_input = constants.repeat_interleave(group.positions)
            tap_sums = consumer.weight[:, drop_inputs].reshape(consumer.weight.shape[0], len(drop_inputs), -1).sum(2)
            _add_shift(model, group, consumer, tap_sums @ per_input)
    return model


def _add_shift(model: nn.Module, group: ChannelGroup, consumer: nn.Module, delta: torch.Tensor) -> None:
    if consumer.bias is not None:
        consumer.bias.add_(delta)
        return
    norm = None if group.consumer_norm is None else model.get_submodule(group.consumer_norm)
    if norm is not None and norm.track_running_stats:
        norm.running_mean.sub_(delta)
        return
    consumer.bias = nn.Parameter(delta.clone())


def _slice_layer(layer: nn.Module, rows, cols) -> nn.Module:
    """A new Conv2d/Linear with output rows ``rows`` and input columns ``cols`` (None = all)."""
    weight = layer.weight.detach()
    if rows is not None:
        weight = weight[rows]
    if cols is not None:
        weight = weight[:, cols]
    bias = None if layer.bias is None else layer.bias.detach()
    if bias is not None and rows is not None:
        bias = bias[rows]
    if isinstance(layer, nn.Conv2d):
        new = nn.Conv2d(weight.shape[1], weight.shape[0], layer.kernel_size, stride=layer.stride,
                        padding=layer.padding, dilation=layer.dilation, bias=bias is not None,
                        padding_mode=layer.padding_mode)
    elif isinstance(layer, nn.Linear):
        new = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    else:
        raise ValueError(f"unsupported module type {type(layer).__name__} for channel surgery")
    new = new.to(device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        new.weight.copy_(weight)
        if bias is not None:
            new.bias.copy_(bias)
    return new.train(layer.training)


def _slice_norm(norm: nn.Module, idx: torch.Tensor) -> nn.Module:
    """A new BatchNorm with the channels ``idx``: ``γ, β`` and the running mean and variance."""
    new = type(norm)(len(idx), eps=norm.eps, momentum=norm.momentum, affine=norm.affine,
                     track_running_stats=norm.track_running_stats)
    new = new.to(device=idx.device if norm.weight is None else norm.weight.device)
    with torch.no_grad():
        if norm.affine:
            new.weight.copy_(norm.weight[idx])
            new.bias.copy_(norm.bias[idx])
        if norm.track_running_stats:
            new.running_mean.copy_(norm.running_mean[idx])
            new.running_var.copy_(norm.running_var[idx])
            new.num_batches_tracked.copy_(norm.num_batches_tracked)
    return new.train(norm.training)
