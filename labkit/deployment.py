"""Deployment budgets: does a model fit a microcontroller, a phone, a server?

The seeds' application sections (seed 000 §5, seed 001 §6, seed 002 §6) name the places a compressed
model goes — embedded and IoT devices, phones, servers — without a number. A device has a few hard
limits: where the weights live (flash), the working memory for activations (SRAM / RAM), and a time
budget per input. ``DEVICES`` states one of each kind with its source; ``footprint`` measures a model
the way those limits read it:

- **weight bytes** — the file ``labkit.measure.serialize`` writes in a storage format (bytes on disk,
  never ``sys.getsizeof``);
- **MACs** per input (``labkit.measure.total_macs``);
- **peak activation bytes** — a layer-by-layer executor holds one layer's input and output at a time,
  so the working memory is ``max over layers of (input + output values) × bytes per value`` (the
  quantity MCUNet — Lin et al., NeurIPS 2020 — fits into a microcontroller's SRAM). For a network with
  skip connections the shortcut must be kept too: this is then a lower bound.

Latency is measured on *this* machine (``labkit.measure.compare_latency``); a phone core is slower and a
microcontroller cannot be measured here, so ``verdicts`` estimates the microcontroller's time from the
MACs at the stated throughput and says which numbers are estimates.
Explained in notebooks/15_robustness_faq_trends.ipynb.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from labkit import measure
from labkit.validate import require_choice, require_float, require_int, require_module

KIB, MIB, GIB = 1024, 1024**2, 1024**3
POOLING = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)


@dataclass(frozen=True)
class Device:
    """A deployment target. ``storage_bytes``: where the weights live; ``memory_bytes``: working memory
    for activations; ``latency_ms``: the time budget per input (None: none stated);
    ``macs_per_second``: an assumed throughput for estimating latency where nothing can be measured
    (None: use the measured latency); ``source``: where each number comes from."""

    name: str
    storage_bytes: int | None
    memory_bytes: int
    latency_ms: float | None
    macs_per_second: float | None
    source: str


DEVICES = (
    Device("microcontroller (STM32F746: Cortex-M7, 216 MHz)", 1 * MIB, 320 * KIB, 100.0, 216e6,
           "1 MB flash and 320 KB SRAM: ST's STM32F746xx datasheet — the board MCUNet (Lin et al., NeurIPS 2020) "
           "deploys to. Throughput: at most one MAC per cycle, 216 M MAC/s (our optimistic assumption). "
           "Latency budget: 10 inferences/s (our assumption for a sensor)."),
    Device("phone (Google Pixel 1, one big CPU core)", None, 4 * GIB, 75.0, None,
           "75 ms per image: MnasNet's latency target on a Pixel phone's CPU (Tan et al., CVPR 2019); 4 GB RAM: "
           "Google's Pixel specification. No storage limit binds at this scale."),
    Device("server (MLPerf Inference datacenter, NVIDIA T4 class)", None, 16 * GIB, 15.0, None,
           "15 ms: the 99th-percentile latency bound of ResNet-50 in MLPerf Inference's server scenario "
           "(Reddi et al., ISCA 2020); 16 GB: an NVIDIA T4's memory."),
)


def peak_activation_values(model: nn.Module, input_shape) -> int:
    """``max over computing layers of (input numel + output numel)`` for one input of shape
    ``input_shape`` (``(C, H, W)``, no batch dimension): the values a layer-by-layer executor holds at once.

    Computing layers are the leaf modules with parameters (conv, linear, batch norm) and pooling;
    activations (ReLU...), ``Flatten``, ``Identity`` and ``Dropout`` are left out — a deployment runtime
    fuses them into the layer before or runs them in place. Explained in notebooks/15_robustness_faq_trends.ipynb."""
    require_module("model", model)
    shape = tuple(require_int("input_shape", s, 1, None) for s in input_shape)
    sizes, hooks = [], []
    for module in model.modules():
        computes = any(True for _ in module.parameters(recurse=False)) or isinstance(module, POOLING)
        if computes and not list(module.children()):
            hooks.append(module.register_forward_hook(
                lambda m, inputs, output: sizes.append(sum(t.numel() for t in inputs) + output.numel())))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros((1, *shape), dtype=next(model.parameters()).dtype))
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    return max(sizes)


def footprint(model: nn.Module, input_shape, fmt: str = "fp32", *, activation_bytes: int | None = None,
              values_fmt: str = "fp32") -> dict:
    """``{"format", "weight_bytes", "macs", "peak_activation_bytes"}`` of ``model`` stored in ``fmt``.

    ``fmt`` one of ``measure.STORAGE_FORMATS`` (``values_fmt`` for sparse formats); activations take
    ``activation_bytes`` each (default: 1 for an integer format, 2 for fp16, else 4).
    Explained in notebooks/15_robustness_faq_trends.ipynb.
    """
    require_choice("fmt", fmt, measure.STORAGE_FORMATS)
    if activation_bytes is None:
        activation_bytes = 1 if fmt.startswith("int") or values_fmt == "int8" else 2 if fmt == "fp16" else 4
    activation_bytes = require_int("activation_bytes", activation_bytes, 1, 8)
    return {"format": fmt if fmt not in ("bitmask", "csr") else f"{fmt}:{values_fmt}",
            "weight_bytes": measure.size_on_disk(model, fmt, values_fmt=values_fmt),
            "macs": measure.total_macs(model, tuple(input_shape)),
            "peak_activation_bytes": activation_bytes * peak_activation_values(model, input_shape)}


def verdicts(row: dict, latency_ms: float, devices=DEVICES) -> dict[str, str]:
    """``{device name: "fits" | "too slow (…)" | "weights too big (…)" | "activations too big (…)"}`` for a
    ``footprint`` row and its latency measured here. A device with ``macs_per_second`` is judged on the
    estimate ``macs / macs_per_second``; the others on ``latency_ms`` measured on this machine.
    Explained in notebooks/15_robustness_faq_trends.ipynb."""
    latency_ms = require_float("latency_ms", latency_ms, 0.0, None)
    out = {}
    for device in devices:
        problems = []
        if device.storage_bytes is not None and row["weight_bytes"] > device.storage_bytes:
            problems.append(f"weights {row['weight_bytes'] / device.storage_bytes:.2f}× its storage")
        if row["peak_activation_bytes"] > device.memory_bytes:
            problems.append(f"activations {row['peak_activation_bytes'] / device.memory_bytes:.2f}× its memory")
        estimate = row["macs"] / device.macs_per_second * 1e3 if device.macs_per_second else latency_ms
        if device.latency_ms is not None and estimate > device.latency_ms:
            problems.append(f"{estimate:.0f} ms > {device.latency_ms:.0f} ms")
        out[device.name] = "fits" if not problems else "no: " + "; ".join(problems)
    return out
