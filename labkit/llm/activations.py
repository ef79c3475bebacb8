"""Activation statistics of the model's linear layers: inputs for calibration, per-channel maxima, outliers.

``capture_inputs(model, ids, names)`` runs ``model`` on calibration ids and returns, for each named
``nn.Linear``, its inputs flattened to ``[tokens, in]`` (GPTQ builds its Hessian from them, AWQ its
scales). ``channel_absmax`` is ``max_tokens |X_j|`` per input channel ``j``: SmoothQuant's and
LLM.int8()'s statistic. ``outlier_ratio`` (largest channel maximum over the median one) says whether a
layer's input has the *outlier channels* that Dettmers et al. (2022) found in every transformer above
~6.7 B parameters, which make per-tensor int8 activations lose the other channels' precision.

Explained in notebooks/16_transformer_compression.ipynb
"""
from __future__ import annotations

import torch
from torch import nn

from labkit.llm.model import TinyGPT, check_ids, linear_layers
from labkit.validate import require_float


@torch.no_grad()
def capture_inputs(model: TinyGPT, ids: torch.Tensor, names=None) -> dict[str, torch.Tensor]:
    """Inputs of the named linear layers (default: all of ``linear_layers``) on ``ids`` int64 ``[B, T]``:
    ``{name: float32 [B·T, in]}``."""
    layers = linear_layers(model)
    ids = check_ids(ids, model.config)
    names = list(layers) if names is None else list(names)
    unknown = [n for n in names if n not in layers]
    if unknown:
        raise ValueError(f"names must be linear layers of the model ({', '.join(layers)}), got {unknown}")
    captured: dict[str, list] = {n: [] for n in names}
    hooks = [layers[n].register_forward_pre_hook(_recorder(captured[n])) for n in names]
    try:
        model(ids)
    finally:
        for h in hooks:
            h.remove()
    return {n: torch.cat(v) for n, v in captured.items()}


def _recorder(store: list):
    def hook(module: nn.Module, args):
        store.append(args[0].detach().reshape(-1, args[0].shape[-1]).float())
    return hook


def channel_absmax(inputs: torch.Tensor) -> torch.Tensor:
    """``max_tokens |X_j|`` float32 ``[in]`` of inputs ``[n, in]``."""
    if not isinstance(inputs, torch.Tensor) or inputs.dim() != 2 or inputs.shape[0] == 0:
        raise ValueError("inputs must be a non-empty [n, in] tensor")
    return inputs.abs().amax(0).float()


def outlier_ratio(absmax: torch.Tensor) -> float:
    """Largest channel maximum over the median channel maximum (1 = no outlier channel)."""
    return float(absmax.max() / absmax.median().clamp(min=1e-12))


@torch.no_grad()
def inject_outlier_channels(model: TinyGPT, channels, factor: float = 30.0) -> TinyGPT:
    """A controlled experiment: a copy of ``model`` whose LayerNorms feeding ``attn.qkv`` and ``mlp.fc1``
    multiply ``channels`` by ``factor`` and whose consumers divide those weight columns by ``factor``.

    The float function is unchanged (up to float rounding): ``(W/f)(f·x) = W x``; but those channels'
    activations are now ``factor`` times larger — the outlier pattern of large LLMs, on a small model.
    """
    import copy

    factor = require_float("factor", factor, 0.0, None, low_open=True)
    twin = copy.deepcopy(model)
    channels = torch.as_tensor(channels, dtype=torch.long)
    if channels.numel() and (int(channels.min()) < 0 or int(channels.max()) >= model.config.d_model):
        raise ValueError(f"channels must lie in [0, {model.config.d_model - 1}]")
    for block in twin.blocks:
        for ln, linear in ((block.ln1, block.attn.qkv), (block.ln2, block.mlp.fc1)):
            ln.weight[channels] *= factor
            ln.bias[channels] *= factor
            linear.weight[:, channels] /= factor
    return twin
