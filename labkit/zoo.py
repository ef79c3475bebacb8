"""Trained checkpoints for every model of ``labkit.models``: shipped, cached, or trained on demand.

``pretrained(name, dataset)`` looks in three places, in order:

1. ``labkit/checkpoints/{name}-{dataset}.pt`` — shipped with the package (every model, on MNIST
   and on digits);
2. ``<data.cache_dir()>/zoo/{name}-{dataset}.pt`` — trained earlier on this machine;
3. nowhere: it trains the model with ``RECIPES[(name, dataset)]`` (progress bar) and caches it.

A checkpoint is a plain dict of strings, numbers and tensors — ``{"model", "dataset",
"in_channels", "num_classes", "image_size", "state_dict", "test_accuracy", "recipe", ...}`` —
plus ``weights_sha256``, a SHA-256 over every tensor's name, dtype, shape and bytes. It is written
atomically, read back with ``torch.load(weights_only=True)`` (which refuses to run pickled code),
and its weights are hashed again and compared before they are used: a flipped byte, a truncated or
an empty file raises ``CheckpointError`` naming the file and what to do, never a silently different
model. Rebuild the shipped checkpoints with ``python -m labkit.zoo ship --dataset mnist``.

``save_checkpoint`` takes every model the lab makes — pruned with masks or for good, shrunk by
surgery, fake-quantized for QAT, quantized (PTQ, QAT-converted, dynamic), factorised, integer-only,
a distillation student — because it also writes ``architecture``: the module tree as plain data
(``labkit.architecture``), with its own ``architecture_sha256``. Before writing, it rebuilds the model
from what it is about to write and checks the outputs are bit-identical; a model it cannot save
that way is refused with the reason, and nothing is written.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import pickle
import time
import warnings
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from labkit import architecture, data, models, train
from labkit.files import atomic_write
from labkit.validate import require_choice, require_module

SHIPPED_DIR = Path(__file__).resolve().parent / "checkpoints"


@dataclass(frozen=True)
class Recipe:
    """How a zoo model is trained: the keyword arguments ``train.fit`` receives."""

    epochs: int = 5
    lr: float = 1e-3
    batch_size: int = 64
    seed: int = 0
    optimizer: str = "adam"
    weight_decay: float = 0.0
    lr_schedule: str = "cosine"


DEFAULT_RECIPE = Recipe()

# digits: each run takes ≤ ~30 s on 2 cores. MNIST targets (Han et al. 2015 error rates):
# LeNet-300-100 1.64 %, LeNet-5 0.80 % (Caffe's, our "lenet5-caffe"). AdamW with decoupled weight
# decay 0.05 and a cosine schedule reach them (benchmarks/baselines.py); Fashion-MNIST reuses them.
RECIPES: dict[tuple[str, str], Recipe] = {
    ("lenet300", "digits"): Recipe(epochs=20, lr=1e-3, batch_size=32, weight_decay=1e-4),
    ("lenet5", "digits"): Recipe(epochs=20, lr=2e-3, batch_size=32, weight_decay=1e-4),
    ("vgg", "digits"): Recipe(epochs=8, lr=3e-3, batch_size=64, weight_decay=1e-4),
    ("resnet", "digits"): Recipe(epochs=8, lr=3e-3, batch_size=64, weight_decay=1e-4),
    ("mobilenet", "digits"): Recipe(epochs=10, lr=5e-3, batch_size=64, weight_decay=1e-4),
    ("lenet5-caffe", "digits"): Recipe(epochs=20, lr=1e-3, batch_size=32, weight_decay=1e-4),
    ("lenet300", "mnist"): Recipe(epochs=15, lr=1e-3, batch_size=64, weight_decay=0.05),
    ("lenet5", "mnist"): Recipe(epochs=15, lr=3e-3, batch_size=64, weight_decay=0.05),
    ("vgg", "mnist"): Recipe(epochs=5, lr=2e-3, batch_size=128, weight_decay=0.05),
    ("resnet", "mnist"): Recipe(epochs=5, lr=2e-3, batch_size=128, weight_decay=0.05),
    ("mobilenet", "mnist"): Recipe(epochs=5, lr=3e-3, batch_size=128, weight_decay=0.05),
    ("lenet5-caffe", "mnist"): Recipe(epochs=15, lr=1e-3, batch_size=64, weight_decay=0.05),
}
for (_name, _ds), _recipe in list(RECIPES.items()):
    if _ds == "mnist":
        RECIPES[(_name, "fashion-mnist")] = _recipe

_LOADED: dict[tuple[str, str], dict] = {}  # (name, dataset) -> checkpoint dict, this process


def recipe_for(name: str, dataset: str) -> Recipe:
    """The training recipe of ``(name, dataset)``: ``RECIPES`` entry, else ``DEFAULT_RECIPE``."""
    return RECIPES.get((name, dataset), DEFAULT_RECIPE)


def checkpoint_name(name: str, dataset: str) -> str:
    """File name of a zoo checkpoint: ``{name}-{dataset}.pt``."""
    return f"{name}-{dataset}.pt"


def cache_path(name: str, dataset: str) -> Path:
    """Where a checkpoint trained on this machine lives: ``<data.cache_dir()>/zoo/{name}-{dataset}.pt``."""
    return data.cache_dir() / "zoo" / checkpoint_name(name, dataset)


def pretrained(name: str, dataset: str = "mnist", *, train_if_missing: bool = True,
               progress: bool = True) -> nn.Module:
    """A trained ``models.build(name)`` for ``dataset``, in ``eval()`` mode, as a fresh copy.

    Looks for the shipped checkpoint, then the cached one, else (``train_if_missing``) trains it
    with ``recipe_for(name, dataset)`` and caches it; a cached checkpoint trained with another
    recipe is retrained when ``train_if_missing``. The loaded tensors are kept in memory, so a
    second call costs only a ``load_state_dict``; every call returns an independent model that
    callers may prune or quantize. Raises ``FileNotFoundError`` when nothing is found and
    ``train_if_missing`` is False. Explained in notebooks/00_why_compress.ipynb.
    """
    name = require_choice("name", name, models.MODEL_NAMES)
    dataset = data.dataset_name(dataset, "dataset")  # "DIGITS" works, as in data.load
    key = (name, dataset)
    if key not in _LOADED:
        _LOADED[key] = _find_or_train(name, dataset, train_if_missing, progress)
    return _rebuild(_LOADED[key])


def checkpoint_info(name: str, dataset: str = "mnist") -> dict:
    """The metadata of the checkpoint ``pretrained(name, dataset)`` returns, without the weights
    (``test_accuracy``, ``recipe``, ``train_seconds``...). Loads or trains it if needed.
    """
    dataset = data.dataset_name(dataset, "dataset")
    pretrained(name, dataset, progress=False)
    return {k: v for k, v in _LOADED[(name, dataset)].items() if k not in ("state_dict", "architecture")}


def _find_or_train(name: str, dataset: str, train_if_missing: bool, progress: bool) -> dict:
    shipped, cached = SHIPPED_DIR / checkpoint_name(name, dataset), cache_path(name, dataset)
    if shipped.is_file():
        return _read(shipped, fix="reinstall labkit, or restore the file with `git checkout`")
    if cached.is_file():
        try:
            checkpoint = _read(cached, fix="delete it, or call pretrained(..., train_if_missing=True)")
        except CheckpointError as err:
            if not train_if_missing:
                raise
            warnings.warn(f"{err} -- retraining it now.", RuntimeWarning, stacklevel=3)
            checkpoint = None
        # A cached model trained with an older recipe is retrained (when allowed), not reused.
        if checkpoint is not None and (checkpoint.get("recipe") == asdict(recipe_for(name, dataset))
                                       or not train_if_missing):
            return checkpoint
    elif not train_if_missing:
        raise FileNotFoundError(f"no checkpoint for {name} on {dataset}: looked for "
                                f"{SHIPPED_DIR / checkpoint_name(name, dataset)} and "
                                f"{cache_path(name, dataset)}; pass train_if_missing=True to train it")
    model, meta = train_model(name, dataset, progress=progress)
    save_checkpoint(model, cache_path(name, dataset), **meta)
    return _read(cache_path(name, dataset))


def train_model(name: str, dataset: str = "mnist", recipe: Recipe | None = None,
                *, progress: bool = True) -> tuple[nn.Module, dict]:
    """Train ``name`` on ``dataset``'s train split with ``recipe`` (default ``recipe_for``) from a
    seeded initialisation; return the model in eval mode and its metadata ``{"dataset",
    "test_accuracy", "recipe", "train_seconds"}``. Saves nothing. Same recipe, same weights.
    Explained in notebooks/00_why_compress.ipynb.
    """
    name = require_choice("name", name, models.MODEL_NAMES)
    dataset = data.dataset_name(dataset, "dataset")  # "DIGITS" works, as in data.load
    recipe = recipe or recipe_for(name, dataset)
    train_set, test_set = data.load(dataset, "train"), data.load(dataset, "test")
    channels, size = train_set.tensors[0].shape[1], train_set.tensors[0].shape[-1]
    train.set_seed(recipe.seed)
    model = models.build(name, in_channels=channels, num_classes=data.info(dataset)["num_classes"],
                         image_size=size)
    start = time.perf_counter()
    train.fit(model, train_set, progress=progress, **asdict(recipe))
    seconds = time.perf_counter() - start
    model.eval()
    meta = {"dataset": dataset, "test_accuracy": train.evaluate(model, test_set),
            "recipe": asdict(recipe), "train_seconds": round(seconds, 2)}
    return model, meta


RESERVED_KEYS = ("architecture", "architecture_sha256", "state_dict", "weights_sha256")


def save_checkpoint(model, path, **meta) -> Path:
    """Write ``model`` — any model the lab makes — and ``meta`` to ``path`` atomically, or refuse it.

    The file holds the ``architecture`` (``labkit.architecture.describe``: the module tree as plain
    data) and its ``architecture_sha256``, the ``state_dict`` (tensors on the CPU) and its
    ``weights_sha256``, ``model.config()`` for labkit's models (``model``, ``in_channels``,
    ``num_classes``, ``image_size``), and the keyword arguments: plain strings, numbers, booleans,
    None, lists and dicts (e.g. ``dataset``, ``test_accuracy``). Before anything is written the model
    is rebuilt from that content and must give bit-identical outputs (``architecture.round_trip``):
    a module of a kind that has no saved form, a forward hook, or ``meta`` that is not plain data
    raises ``TypeError`` with the reason. The file goes to a temporary file in the same folder, then
    ``os.replace``, so a crash never leaves a half-written checkpoint. Returns the path.
    Explained in notebooks/00_why_compress.ipynb.
    """
    _check_meta(meta)
    path = _check_path(path)
    if isinstance(model, nn.Module):
        require_module("model", model)  # a meta-device model has no weights to write
    tree, state = architecture.round_trip(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    config = model.config() if callable(getattr(model, "config", None)) else {}
    checkpoint = {**meta, **config, "architecture": tree, "architecture_sha256": architecture.digest(tree),
                  "state_dict": state, "weights_sha256": weights_digest(state)}
    with atomic_write(path) as f:
        torch.save(checkpoint, f)
    return path


def load_checkpoint(path):
    """Rebuild the model saved at ``path`` (read with ``torch.load(weights_only=True)``), in eval mode.

    The weights and the architecture are hashed and compared with the ``weights_sha256`` and
    ``architecture_sha256`` written by ``save_checkpoint``; a damaged, truncated, empty or foreign
    file raises ``CheckpointError`` naming the file. Returns an ``nn.Module`` (or, for an integer-only
    model, a ``labkit.quant.integer.IntegerModel``) computing exactly what the saved model computed.
    Explained in notebooks/00_why_compress.ipynb.
    """
    path = _check_path(path)
    return _rebuild(_read(path), path)


def _check_path(path) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike naming a checkpoint file, got {type(path).__name__}")
    if str(path) == "" or Path(path).is_dir():
        raise ValueError(f"path must name a file, got {str(path)!r} (a folder)")
    return Path(path)


def _check_meta(meta: dict, where: str = "meta") -> None:
    """Keyword arguments must be plain data that ``torch.load(weights_only=True)`` reads back."""
    for key, value in meta.items():
        if where == "meta" and key in RESERVED_KEYS:
            raise TypeError(f"meta key {key!r} is reserved for the checkpoint itself ({', '.join(RESERVED_KEYS)})")
        if isinstance(value, dict):
            _check_meta(value, f"{where}[{key!r}]")
            if not all(isinstance(k, str) for k in value):
                raise TypeError(f"{where}[{key!r}] must have string keys")
        elif isinstance(value, (list, tuple)):
            _check_meta(dict(enumerate(value)), f"{where}[{key!r}]")
        elif value is not None and not isinstance(value, (str, int, float, bool)):
            raise TypeError(f"{where}[{key!r}] must be plain data (str, number, bool, None, list, dict), "
                            f"got {type(value).__name__}: it could not be read back with weights_only=True")


class CheckpointError(ValueError):
    """A checkpoint file is damaged, truncated, empty, not a labkit checkpoint, or fails its checksum."""


def weights_digest(state_dict: dict) -> str:
    """SHA-256 (hex) over a state dict's tensors in key order: each name, dtype, shape and raw bytes.

    Two state dicts have the same digest exactly when they hold bit-identical tensors under the
    same names. ``save_checkpoint`` stores it as ``weights_sha256``; loading recomputes it.
    """
    digest = hashlib.sha256()
    for key in sorted(state_dict):
        tensor = state_dict[key].detach().cpu().contiguous()
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


_UNREADABLE = (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, OSError, ValueError)


def _read(path: Path, fix: str = "delete it and save or train it again") -> dict:
    """Load and verify one checkpoint file; every way it can be broken is a ``CheckpointError``."""
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes): {fix}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except _UNREADABLE as exc:
        raise CheckpointError(f"checkpoint {path} is damaged or truncated ({path.stat().st_size} bytes; "
                              f"torch.load said: {str(exc).splitlines()[0][:200]}): {fix}") from exc
    keys = set(checkpoint if isinstance(checkpoint, dict) else ())
    required = {"state_dict"} | ({"architecture_sha256"} if "architecture" in keys else
                                 {"model", "in_channels", "num_classes", "image_size"})  # before architectures
    missing = sorted(required - keys)
    if missing:
        raise CheckpointError(f"{path} is not a labkit checkpoint: it lacks {missing}")
    expected = checkpoint.get("weights_sha256")
    if expected is None:
        raise CheckpointError(f"checkpoint {path} has no weights_sha256 (written by an older labkit), so "
                              f"its weights cannot be verified: {fix}")
    if weights_digest(checkpoint["state_dict"]) != expected:
        raise CheckpointError(f"checkpoint {path} fails its checksum: its weights changed after it was "
                              f"written (a damaged file): {fix}")
    if "architecture" in checkpoint and architecture.digest(checkpoint["architecture"]) != checkpoint[
            "architecture_sha256"]:
        raise CheckpointError(f"checkpoint {path} fails its architecture checksum: its module tree changed "
                              f"after it was written (a damaged file): {fix}")
    return checkpoint


def _rebuild(checkpoint: dict, path=None):
    """The model of a verified checkpoint; its tensors are copied, so the cached ones stay untouched."""
    try:
        if "architecture" in checkpoint:
            return architecture.build(checkpoint["architecture"], checkpoint["state_dict"])
        model = models.build(checkpoint["model"], in_channels=checkpoint["in_channels"],
                             num_classes=checkpoint["num_classes"], image_size=checkpoint["image_size"])
        model.load_state_dict(checkpoint["state_dict"])
    except (ValueError, TypeError, RuntimeError, KeyError) as error:
        raise CheckpointError(f"checkpoint {path or checkpoint.get('model')} passes its checksums but cannot be "
                              f"rebuilt ({str(error).splitlines()[0][:300]}): it was written by another "
                              "version of labkit, or by hand") from error
    return model.eval()


def ship(names=models.MODEL_NAMES, dataset: str = "mnist", folder: Path = SHIPPED_DIR,
         progress: bool = True) -> list[dict]:
    """Retrain ``names`` on ``dataset`` with their recipes and save them into ``folder``
    (the package's shipped checkpoints by default); returns one metadata dict per model.
    """
    rows = []
    for name in names:
        model, meta = train_model(name, dataset, progress=progress)
        save_checkpoint(model, Path(folder) / checkpoint_name(name, dataset), **meta)
        rows.append({"model": name, **meta})
        print(f"{name:10s} {dataset}: test accuracy {meta['test_accuracy']:.2%} "
              f"in {meta['train_seconds']:.1f} s", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    """``python -m labkit.zoo ship [--models ...] [--dataset mnist|digits]``: rebuild shipped checkpoints."""
    parser = argparse.ArgumentParser(prog="python -m labkit.zoo", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    ship_cmd = commands.add_parser("ship", help="retrain the shipped checkpoints")
    ship_cmd.add_argument("--models", nargs="+", default=list(models.MODEL_NAMES), choices=models.MODEL_NAMES)
    ship_cmd.add_argument("--dataset", default="mnist", choices=("mnist", "digits"))
    ship_cmd.add_argument("--folder", default=str(SHIPPED_DIR))
    args = parser.parse_args(argv)
    ship(args.models, dataset=args.dataset, folder=Path(args.folder))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
