"""Bytes on disk of a compressed ``TinyGPT``: what a deployment would actually write.

``save_compressed(model, path)`` writes one ``torch.save`` file: the config, every float tensor of the
modules that are not quantized (embeddings, LayerNorms, head), and for each quantized layer the tensors
its ``storage()`` names (bit-packed codes, scales, zero points, outlier columns). ``nbytes_on_disk``
returns the file's size, container overhead included. The file is written atomically.
``load_compressed(path)`` reads a weight-only model (RTN/GPTQ/AWQ) back, bit-identical; the files of
W8A8, LLM.int8() and int4-packed models are measured but not read back (no loader for them yet).

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


def load_compressed(path) -> TinyGPT:
    """A weight-only quantized ``TinyGPT`` (``GroupQuantLinear`` layers) from ``save_compressed``'s file."""
    from labkit.llm.model import GPTConfig
    from labkit.llm.weight_only import from_storage

    blob = torch.load(Path(path), map_location="cpu", weights_only=True)
    model = TinyGPT(GPTConfig(**blob["config"]))
    for name, stored in blob["layers"].items():
        if "format" not in stored:
            raise ValueError(f"layer {name} is not a weight-only quantized layer: load_compressed reads RTN/GPTQ/AWQ "
                             f"models only")
        parent, child = name.rsplit(".", 1)
        model.get_submodule(parent).register_module(child, from_storage(stored))
    missing, unexpected = model.load_state_dict(blob["float"], strict=False)
    if unexpected or any(not any(k.startswith(n + ".") for n in blob["layers"]) for k in missing):
        raise ValueError(f"{path}: the float tensors do not match the model (missing {missing}, unexpected {unexpected})")
    return model.eval()
