"""Parsing original files: uint8 images ``[N, C, H, W]`` and int64 labels ``[N]``, cached per process.

IDX files (MNIST, Fashion-MNIST) and the CIFAR-10 python tarball, read strictly.
Explained in notebooks/00_why_compress.ipynb.
"""

from __future__ import annotations

import functools
import gzip
import os
import pickle
import tarfile
from pathlib import Path, PurePosixPath

import numpy as np
import torch

from labkit.data.catalogue import check_split
from labkit.data.sklearn_digits import digits_arrays


_CIFAR_BATCHES = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}

_IDX_IMAGES_MAGIC, _IDX_LABELS_MAGIC = 2051, 2049


@functools.lru_cache(maxsize=8)
def parsed(name: str, split: str, paths: tuple[Path, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """Parse once per (dataset, split, files); ``load`` hands out converted copies only."""
    if name == "digits":
        images, labels = digits_arrays(split)
    elif name == "cifar10":
        images, labels = read_cifar_tar(paths[0], split)
    else:
        images, labels = _idx_pair(paths[0], paths[1])
    return torch.from_numpy(images), torch.from_numpy(labels)


def read_idx(path: str | os.PathLike, magic: int | None = None) -> np.ndarray:
    """Read an IDX file (gzip-compressed if its name ends in ``.gz``) as a uint8 array.

    Layout: a big-endian header ``00 00 <type> <ndim>`` (so magic 2051 = ``0x0803``: unsigned
    bytes, 3 dimensions, for images; 2049 = ``0x0801`` for labels), then ``ndim`` big-endian
    uint32 sizes, then ``prod(sizes)`` bytes in C order. Raises ``ValueError`` for a magic other
    than ``magic`` (when given), a type other than unsigned byte, or a wrong number of bytes.
    Explained in notebooks/00_why_compress.ipynb.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    return _parse_idx(raw, path, magic)


def _parse_idx(raw: bytes, path: Path, magic: int | None) -> np.ndarray:
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path} is not an IDX file: it must start with two zero bytes")
    found = int.from_bytes(raw[:4], "big")
    if magic is not None and found != magic:
        raise ValueError(f"{path}: IDX magic number is {found}, expected {magic}")
    if raw[2] != 0x08:
        raise ValueError(f"{path}: IDX type code 0x{raw[2]:02x} is not 0x08 (unsigned byte)")
    ndim, header = raw[3], 4 + 4 * raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    if len(raw) < header or len(raw) - header != int(np.prod(shape)):
        raise ValueError(f"{path}: IDX header promises shape {shape} but the file holds "
                         f"{max(len(raw) - header, 0)} data bytes")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape).copy()


def _idx_pair(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images ``[N, 1, 28, 28]`` uint8 and labels ``[N]`` int64 from an MNIST-style file pair."""
    images = read_idx(images_path, _IDX_IMAGES_MAGIC)
    labels = read_idx(labels_path, _IDX_LABELS_MAGIC).astype(np.int64)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(f"{images_path} holds {images.shape} images but {labels_path} holds "
                         f"{labels.shape} labels")
    return images[:, None], _check_labels(labels, labels_path)


def _check_labels(labels: np.ndarray, source, num_classes: int = 10) -> np.ndarray:
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"{source}: labels must lie in [0, {num_classes - 1}], "
                         f"found {labels.min()}..{labels.max()}")
    return labels


def read_cifar_tar(path: str | os.PathLike, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Read one split of ``cifar-10-python.tar.gz`` straight from the tarball (nothing extracted).

    Each batch is a pickled dict: ``data`` uint8 ``[10000, 3072]`` (1024 red, then 1024 green,
    then 1024 blue values, each a 32x32 image in row order) and ``labels`` (10000 ints). Returns
    images uint8 ``[N, 3, 32, 32]`` and labels int64 ``[N]`` (train: data_batch_1..5 in order).
    Explained in notebooks/00_why_compress.ipynb.
    """
    wanted = _CIFAR_BATCHES[check_split(split)]
    batches = {}
    with tarfile.open(path, "r:gz") as tar:
        for member in tar:
            base = PurePosixPath(member.name).name
            if member.isfile() and base in wanted:
                batches[base] = _read_cifar_batch(tar.extractfile(member), f"{path}:{member.name}")
    missing = [b for b in wanted if b not in batches]
    if missing:
        raise ValueError(f"{path} lacks the CIFAR-10 batches {missing}")
    images = np.concatenate([batches[b][0] for b in wanted])
    labels = np.concatenate([batches[b][1] for b in wanted])
    return images, labels


def _read_cifar_batch(fileobj, source: str) -> tuple[np.ndarray, np.ndarray]:
    batch = _NumpyOnlyUnpickler(fileobj, encoding="bytes").load()
    data = np.asarray(_field(batch, "data", source), dtype=np.uint8)
    labels = np.asarray(_field(batch, "labels", source), dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
        raise ValueError(f"{source}: expected data [N, 3072] and N labels, got {data.shape} and {labels.shape}")
    return data.reshape(-1, 3, 32, 32), _check_labels(labels, source)


def _field(batch, key: str, source: str):
    """CIFAR batches were pickled by Python 2, so their keys read back as bytes (``b"data"``)."""
    for candidate in (key.encode(), key):
        if isinstance(batch, dict) and candidate in batch:
            return batch[candidate]
    raise ValueError(f"{source}: not a CIFAR-10 batch (no {key!r} entry)")


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickling can run arbitrary code; a CIFAR batch needs only what rebuilds a numpy array."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
    }

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR-10 batch")
        return super().find_class(module, name)
