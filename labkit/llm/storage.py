"""Bytes on disk of a compressed ``TinyGPT``: what a deployment would actually write.

``save_compressed(model, path)`` writes one ``torch.save`` file: the config, every float tensor of the
modules that are not quantized (embeddings, LayerNorms, head), and for each quantized layer the tensors
its ``storage()`` names (bit-packed codes, scales, zero points, outlier columns). ``nbytes_on_disk``
returns the file's size, container overhead included. The file is written atomically.
``load_compressed(path)`` reads every one of them back — weight-only (RTN/GPTQ/AWQ), W8A8 / SmoothQuant,
LLM.int8() and int4-packed — with bit-identical outputs (each layer's ``storage()`` names its ``kind``).

Explained in notebooks/16_transformer_compression.ipynb
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from labkit.files import atomic_write
from labkit.llm.model import TinyGPT


def compressed_state(model: TinyGPT) -> dict:
    """``{"config", "float", "layers"}``: the tensors a compressed model must store."""
    if not isinstance(model, TinyGPT):
        raise TypeError(f"model must be a TinyGPT, got {type(model).__name__}")
    layers = {n: m.storage() for n, m in model.named_modules() if hasattr(m, "storage")}
    floats = {k: v for k, v in model.state_dict().items()
              if not any(k.startswith(n + ".") for n in layers)}
    return {"config": model.config.to_dict(), "float": floats, "layers": layers}


def save_compressed(model: TinyGPT, path) -> int:
    """Write ``compressed_state(model)`` to ``path`` atomically; return its size in bytes."""
    path = Path(path)
    with atomic_write(path) as f:
        torch.save(compressed_state(model), f)
    return path.stat().st_size


def nbytes_on_disk(model: TinyGPT) -> int:
    """Size of ``save_compressed(model)`` written to a temporary folder."""
    with tempfile.TemporaryDirectory() as folder:
        return save_compressed(model, Path(folder) / "model.pt")


def layer_loaders() -> dict:
    """``kind`` (the ``"kind"`` a layer's ``storage()`` writes) → the function rebuilding that layer."""
    from labkit.llm.int4 import Int4Linear
    from labkit.llm.llm_int8 import Int8MixedLinear
    from labkit.llm.smoothquant import W8A8Linear
    from labkit.llm.weight_only import from_storage

    return {"weight-only": from_storage, "w8a8": W8A8Linear.from_storage, "llm.int8": Int8MixedLinear.from_storage,
            "int4": Int4Linear.from_storage}


def load_compressed(path) -> TinyGPT:
    """The compressed ``TinyGPT`` again from ``save_compressed``'s file: weight-only (RTN/GPTQ/AWQ), W8A8
    (naive or SmoothQuant: the smoothed LayerNorms are float tensors), LLM.int8() and int4-packed layers;
    its outputs are bit-identical to the saved model's."""
    from labkit.llm.model import GPTConfig

    blob = torch.load(Path(path), map_location="cpu", weights_only=True)
    model = TinyGPT(GPTConfig(**blob["config"]))
    loaders = layer_loaders()
    for name, stored in blob["layers"].items():
        kind = stored.get("kind", "weight-only" if "format" in stored else None)
        if kind not in loaders:
            raise ValueError(f"layer {name} has kind {kind!r}: load_compressed reads {sorted(loaders)}")
        parent, child = name.rsplit(".", 1)
        model.get_submodule(parent).register_module(child, loaders[kind](stored))
    missing, unexpected = model.load_state_dict(blob["float"], strict=False)
    if unexpected or any(not any(k.startswith(n + ".") for n in blob["layers"]) for k in missing):
        raise ValueError(f"{path}: the float tensors do not match the model (missing {missing}, unexpected {unexpected})")
    return model.eval()
