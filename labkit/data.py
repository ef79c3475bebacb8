"""Datasets for the lab: real MNIST (shipped, the default), ``digits``, Fashion-MNIST and CIFAR-10.

Every dataset comes back the same way, so every model runs on every dataset:
``load(name, split)`` returns a ``TensorDataset`` of images ``x`` float32 ``[N, C, H, W]`` whose
pixels are exactly ``uint8 / 255`` (no mean/std normalisation) and labels ``y`` int64 ``[N]``.

Data policy (see ``datasets/README.md``):

* ``mnist``, the default, ships inside the package: its four original IDX files (CC BY-SA 3.0,
  Yann LeCun & Corinna Cortes) lie in ``labkit/datasets/mnist/``, so it works offline, always.
  Its 10,000 test images resolve a difference of 0.01 points between two methods' error counts.
* ``digits`` ships inside scikit-learn (1,438 / 359 small 8x8 images): fast unit tests.
* The other datasets are read from their *original* files (IDX ``.gz`` files, the CIFAR-10 python
  tarball), looked up first in the folder named by the environment variable ``LABKIT_DATA``, then
  in the package (MNIST), then in the cache folder ``cache_dir()``. Every file is checked against the catalogue below (size,
  then its SHA-256, or MD5 where no SHA-256 is published) before it is parsed.
* ``load`` never touches the network. Only an explicit ``download(name)`` (or ``make data``, or
  ``python -m labkit.data download mnist``) does, and it writes each file to a temporary file in
  the cache folder and renames it into place only after the checksum matched.
"""
from __future__ import annotations

import argparse
import functools
import gzip
import hashlib
import http.client
import os
import pickle
import sys
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import torch
from torch.utils.data import TensorDataset

from labkit.validate import require_choice, require_int

DATASETS = ("digits", "mnist", "fashion-mnist", "cifar10")
SPLITS = ("train", "test")


class DatasetNotFoundError(FileNotFoundError):
    """The original files of a dataset are neither under ``LABKIT_DATA`` nor in the cache."""


class ChecksumError(ValueError):
    """A file's bytes differ from the catalogue: it is not the original file (or it is damaged)."""


class DownloadError(OSError):
    """No mirror could deliver a file (typically: this machine is offline)."""


# ----------------------------------------------------------------------------------------------
# The catalogue: one row per original file, one card per dataset.
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DataFile:
    """One original file: its name, size in bytes, MD5, SHA-256 (None if unpublished) and mirrors."""

    filename: str
    size: int
    md5: str
    sha256: str | None
    urls: tuple[str, ...]

    def checksum(self) -> tuple[str, str]:
        """The strongest published checksum as ``(algorithm, hex digest)``."""
        return ("sha256", self.sha256) if self.sha256 else ("md5", self.md5)


@dataclass(frozen=True)
class DatasetCard:
    """What ``info`` reports about a dataset, plus the files it is read from."""

    shape: tuple[int, int, int]
    class_names: tuple[str, ...]
    sizes: tuple[int, int]  # (train, test)
    licence: str
    source: str
    files: tuple[DataFile, ...]


def _mirrored(filename: str, size: int, md5: str, sha256: str | None, bases: tuple[str, ...]) -> DataFile:
    return DataFile(filename, size, md5, sha256, tuple(base + filename for base in bases))


_MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
_FASHION_MIRRORS = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
)
_CIFAR_MIRRORS = ("https://www.cs.toronto.edu/~kriz/",)

_DIGIT_NAMES = tuple(str(d) for d in range(10))

CATALOGUE: dict[str, DatasetCard] = {
    "digits": DatasetCard(
        shape=(1, 28, 28), class_names=_DIGIT_NAMES, sizes=(1438, 359),
        licence="CC BY 4.0 (UCI Optical Recognition of Handwritten Digits); shipped in scikit-learn (BSD-3-Clause)",
        source="sklearn.datasets.load_digits (Alpaydin & Kaynak, UCI, 1998): 8x8 images, values 0..16",
        files=()),
    "mnist": DatasetCard(
        shape=(1, 28, 28), class_names=_DIGIT_NAMES, sizes=(60000, 10000),
        licence="CC BY-SA 3.0 (Yann LeCun & Corinna Cortes)",
        source="http://yann.lecun.com/exdb/mnist/ (original IDX files)",
        files=(
            _mirrored("train-images-idx3-ubyte.gz", 9912422, "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                      "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609", _MNIST_MIRRORS),
            _mirrored("train-labels-idx1-ubyte.gz", 28881, "d53e105ee54ea40749a09fcbcd1e9432",
                      "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c", _MNIST_MIRRORS),
            _mirrored("t10k-images-idx3-ubyte.gz", 1648877, "9fb629c4189551a2d022fa330f9573f3",
                      "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6", _MNIST_MIRRORS),
            _mirrored("t10k-labels-idx1-ubyte.gz", 4542, "ec29112dd5afa0611ce80d1b7f02629c",
                      "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6", _MNIST_MIRRORS),
        )),
    "fashion-mnist": DatasetCard(
        shape=(1, 28, 28),
        class_names=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                     "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
        sizes=(60000, 10000),
        licence="MIT, Copyright (c) 2017 Zalando SE",
        source="https://github.com/zalandoresearch/fashion-mnist (original IDX files)",
        files=(
            _mirrored("train-images-idx3-ubyte.gz", 26421880, "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                      "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84", _FASHION_MIRRORS),
            _mirrored("train-labels-idx1-ubyte.gz", 29515, "25c81989df183df01b3e8a0aad5dffbe",
                      "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845", _FASHION_MIRRORS),
            _mirrored("t10k-images-idx3-ubyte.gz", 4422102, "bef4ecab320f06d8554ea6380940ec79",
                      "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073", _FASHION_MIRRORS),
            _mirrored("t10k-labels-idx1-ubyte.gz", 5148, "bb300cfdad3c16e7a12a480ee83cd310",
                      "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5", _FASHION_MIRRORS),
        )),
    "cifar10": DatasetCard(
        shape=(3, 32, 32),
        class_names=("airplane", "automobile", "bird", "cat", "deer",
                     "dog", "frog", "horse", "ship", "truck"),
        sizes=(50000, 10000),
        licence="no formal licence; free to use, cite Krizhevsky (2009), Learning Multiple Layers of "
                "Features from Tiny Images",
        source="https://www.cs.toronto.edu/~kriz/cifar.html (python version)",
        files=(
            _mirrored("cifar-10-python.tar.gz", 170498071, "c58f30108f718f92721af3b95e74349a",
                      "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce", _CIFAR_MIRRORS),
        )),
}

_IDX_FILES = {  # split -> (images, labels), the same names for MNIST and Fashion-MNIST
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_CIFAR_BATCHES = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}
_IDX_IMAGES_MAGIC, _IDX_LABELS_MAGIC = 2051, 2049


# ----------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------

def load(name: str = "mnist", split: str = "train") -> TensorDataset:
    """Return one split of a dataset as ``TensorDataset(x, y)``, never touching the network.

    ``x`` is float32 ``[N, C, H, W]`` with ``x = uint8_pixel / 255`` in ``[0, 1]`` (``1x28x28`` for
    digits/MNIST/Fashion-MNIST, ``3x32x32`` for CIFAR-10) and ``y`` is int64 ``[N]`` in
    ``[0, num_classes)``. Files are parsed once per process; every call returns fresh tensors,
    so changing them in place never changes what the next call returns. Missing files raise
    ``DatasetNotFoundError`` (a ``FileNotFoundError``) saying where to put them; a file that fails
    its checksum raises ``ChecksumError`` (a ``ValueError``).
    Explained in notebooks/00_why_compress.ipynb.
    """
    name, split = dataset_name(name), _check_split(split)
    images, labels = _parsed(name, split, _locate_split(name, split))
    return TensorDataset(images.to(torch.float32).div_(255.0), labels.clone())


def eval_subset(name: str = "mnist", n: int = 512, seed: int = 0) -> TensorDataset:
    """A fixed, seeded, class-balanced subset of the *test* split, for fast interactive evaluation.

    Returns ``TensorDataset(x, y)`` like ``load(name, "test")`` but with ``min(n, N_test)`` samples,
    kept in test-split order. Classes are taken round-robin from a seeded shuffle, so every class
    gets ``n // num_classes`` samples (give or take one) as long as it has that many.
    Explained in notebooks/00_why_compress.ipynb.
    """
    name = dataset_name(name)
    n = require_int("n", n, low=1)
    seed = require_int("seed", seed, low=0, high=2**32 - 1)
    x, y = load(name, "test").tensors
    index = torch.from_numpy(_balanced_indices(y.numpy(), n, seed))
    return TensorDataset(x[index], y[index])


def info(name: str) -> dict:
    """Facts about a dataset: ``shape`` (C, H, W), ``num_classes``, ``class_names``, ``sizes``
    (samples per split), ``licence``, ``source`` and the original ``files``; reads no file.
    Explained in notebooks/00_why_compress.ipynb.
    """
    name = dataset_name(name)
    card = CATALOGUE[name]
    return {
        "name": name,
        "shape": card.shape,
        "num_classes": len(card.class_names),
        "class_names": card.class_names,
        "sizes": dict(zip(SPLITS, card.sizes)),
        "licence": card.licence,
        "source": card.source,
        "files": tuple(f.filename for f in card.files),
    }


# Datasets whose original files ship inside the package (``labkit/datasets/<name>/``).
SHIPPED_DATA = Path(__file__).resolve().parent / "datasets"

# The folder above the labkit package: a git checkout when labkit is installed editable (or run
# from the source tree), site-packages otherwise. A module-level name so tests can move it.
PACKAGE_PARENT = Path(__file__).resolve().parent.parent


def cache_dir() -> Path:
    """The folder ``download`` writes to: ``$LABKIT_CACHE`` if set, else ``datasets/cache`` of the
    checkout labkit runs from (git-ignored), else ``~/.cache/labkit``. Nothing is created here.
    """
    env = os.environ.get("LABKIT_CACHE")
    if env:
        return Path(env).expanduser()
    if _is_checkout(PACKAGE_PARENT):
        return PACKAGE_PARENT / "datasets" / "cache"
    return Path.home() / ".cache" / "labkit"


def _is_checkout(root: Path) -> bool:
    """True for labkit's own source tree. A bare ``datasets/`` folder is not enough: installed into
    site-packages, labkit sits next to Hugging Face's ``datasets`` package, which is no cache."""
    return all((root / marker).is_file() for marker in ("pyproject.toml", "datasets/README.md"))


def download(name: str, root: str | os.PathLike | None = None, progress: bool = True) -> Path:
    """Fetch the original files of ``name`` into ``root/name`` (``root`` defaults to ``cache_dir()``)
    and return that folder. Each file is streamed from the first mirror that answers into a
    temporary file next to its target, checked (size, SHA-256 or MD5), then renamed into place with
    ``os.replace``: a failed or corrupt download leaves nothing behind. Files already present and
    intact are not fetched again. Raises ``ChecksumError`` or ``DownloadError``.
    Explained in notebooks/00_why_compress.ipynb.
    """
    name = dataset_name(name)
    if name == "digits":
        print("digits ships inside scikit-learn: nothing to download.")
        return _digits_folder()
    if root is None and (SHIPPED_DATA / name).is_dir():
        print(f"{name} ships inside labkit ({SHIPPED_DATA / name}): nothing to download.")
        return SHIPPED_DATA / name
    folder = (Path(root).expanduser() if root is not None else cache_dir()) / name
    created = [p for p in (folder, *folder.parents) if not p.exists()]  # deepest first
    folder.mkdir(parents=True, exist_ok=True)
    try:
        for datafile in CATALOGUE[name].files:
            target = folder / datafile.filename
            if not (target.is_file() and _is_intact(target, datafile)):
                _fetch(datafile, target, progress)
    finally:
        for path in created:  # a failed first download leaves no empty folders behind
            if not any(path.iterdir()):
                path.rmdir()
    return folder


# ----------------------------------------------------------------------------------------------
# Argument checks
# ----------------------------------------------------------------------------------------------

def dataset_name(name, argument: str = "name") -> str:
    """The canonical spelling of a dataset name (``" MNIST "`` → ``"mnist"``), one of ``DATASETS``.

    Raises ``ValueError`` naming ``argument`` and listing the valid names. Every module that takes
    a dataset name (``zoo`` too) goes through here, so they all accept the same spellings.
    """
    if isinstance(name, str):
        name = name.strip().lower()
    return require_choice(argument, name, DATASETS)


def _check_split(split) -> str:
    return require_choice("split", split, SPLITS)


# ----------------------------------------------------------------------------------------------
# Finding and verifying files (no network here)
# ----------------------------------------------------------------------------------------------

def _catalogue_file(name: str, filename: str) -> DataFile:
    return next(f for f in CATALOGUE[name].files if f.filename == filename)


def _split_filenames(name: str, split: str) -> tuple[str, ...]:
    if name == "digits":
        return ()
    if name == "cifar10":
        return (CATALOGUE["cifar10"].files[0].filename,)
    return _IDX_FILES[split]


def _locate_split(name: str, split: str) -> tuple[Path, ...]:
    return tuple(_locate(name, _catalogue_file(name, f)) for f in _split_filenames(name, split))


def _candidates(name: str, filename: str) -> list[Path]:
    """Where a file may be, in order: ``$LABKIT_DATA/<name>/``, ``$LABKIT_DATA/``, the copy shipped
    in the package (MNIST), the cache."""
    paths = []
    data = os.environ.get("LABKIT_DATA")
    if data:
        root = Path(data).expanduser()
        paths += [root / name / filename, root / filename]
    paths += [SHIPPED_DATA / name / filename, cache_dir() / name / filename]
    return paths


def _locate(name: str, datafile: DataFile) -> Path:
    """The first candidate with the catalogue size, verified by checksum (once per process).

    A file of the wrong size is skipped, not rejected: MNIST and Fashion-MNIST share file names,
    so a flat ``LABKIT_DATA`` folder may hold the other dataset's file under the same name.
    """
    looked = []
    for path in _candidates(name, datafile.filename):
        if not path.is_file():
            looked.append(f"{path} (absent)")
        elif path.stat().st_size != datafile.size:
            looked.append(f"{path} ({path.stat().st_size} bytes, expected {datafile.size}: not the original)")
        else:
            _verify(path, datafile)
            return path
    raise DatasetNotFoundError(_missing_message(name, datafile.filename, looked))


def _missing_message(name: str, filename: str, looked: list[str]) -> str:
    places = "\n".join(f"  - {line}" for line in looked)
    return (f"{name}: cannot find the original file {filename}. Looked in:\n{places}\n"
            f"labkit never downloads by surprise. Either set LABKIT_DATA to a folder that already "
            f"holds the original files (as $LABKIT_DATA/{name}/{filename} or $LABKIT_DATA/{filename}), "
            f"or fetch them once with labkit.data.download({name!r}) (`make data` fetches MNIST and "
            f"Fashion-MNIST), or use 'mnist' (the default), whose files ship inside labkit.")


_VERIFIED: set[tuple[str, int, int]] = set()  # (path, size, mtime_ns) of files whose hash matched


def _verify(path: Path, datafile: DataFile) -> None:
    """Raise ``ChecksumError`` unless the file's digest matches the catalogue."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key in _VERIFIED:
        return
    algorithm, expected = datafile.checksum()
    actual = _file_digest(path, algorithm)
    if actual != expected:
        raise ChecksumError(f"{path} is not the original {datafile.filename}: its {algorithm} is {actual}, "
                            f"expected {expected}. Delete it and fetch it again with labkit.data.download().")
    _VERIFIED.add(key)


def _is_intact(path: Path, datafile: DataFile) -> bool:
    if path.stat().st_size != datafile.size:
        return False
    try:
        _verify(path, datafile)
    except ChecksumError:
        return False
    return True


def _new_hash(algorithm: str):
    # MD5 is only an integrity check here, never security: say so, for FIPS-mode Pythons.
    return hashlib.new(algorithm, usedforsecurity=False)


def _file_digest(path: Path, algorithm: str) -> str:
    digest = _new_hash(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# ----------------------------------------------------------------------------------------------
# Downloading (only ever called by download())
# ----------------------------------------------------------------------------------------------

def _fetch(datafile: DataFile, target: Path, progress: bool) -> None:
    """Try each mirror in turn; a mirror that is down or serves wrong bytes passes to the next."""
    failures: list[tuple[str, Exception]] = []
    for url in datafile.urls:
        try:
            _fetch_one(url, datafile, target, progress)
            return
        except (ChecksumError, OSError, http.client.HTTPException) as err:
            failures.append((url, err))
    mismatches = [err for _, err in failures if isinstance(err, ChecksumError)]
    if mismatches:
        raise mismatches[0]
    raise DownloadError(_offline_message(datafile, failures))


def _fetch_one(url: str, datafile: DataFile, target: Path, progress: bool) -> None:
    """Stream ``url`` to a temporary file in ``target``'s folder; rename it only if it is intact."""
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
            size, digests = _copy_hashing(response, out, datafile, progress)
        _check_download(url, datafile, size, digests)
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def _copy_hashing(response, out, datafile: DataFile, progress: bool) -> tuple[int, dict[str, str]]:
    """Copy a response to ``out`` in 1 MiB chunks, hashing on the way; returns (bytes, digests)."""
    from tqdm.auto import tqdm

    digests = {"md5": _new_hash("md5"), "sha256": _new_hash("sha256")}
    size = 0
    with tqdm(total=datafile.size, unit="B", unit_scale=True, desc=datafile.filename,
              disable=not progress) as bar:
        for chunk in iter(lambda: response.read(1 << 20), b""):
            out.write(chunk)
            for digest in digests.values():
                digest.update(chunk)
            size += len(chunk)
            bar.update(len(chunk))
    return size, {algorithm: d.hexdigest() for algorithm, d in digests.items()}


def _check_download(url: str, datafile: DataFile, size: int, digests: dict[str, str]) -> None:
    algorithm, expected = datafile.checksum()
    if digests[algorithm] != expected:
        raise ChecksumError(f"{datafile.filename} from {url} failed its {algorithm} check: expected "
                            f"{expected}, got {digests[algorithm]} ({size} bytes, expected {datafile.size}). "
                            f"The download was discarded; nothing was written to the cache.")


def _offline_message(datafile: DataFile, failures: list[tuple[str, Exception]]) -> str:
    tried = "\n".join(f"  - {url}: {err}" for url, err in failures)
    return (f"could not download {datafile.filename} from any mirror:\n{tried}\n"
            f"If this machine is offline, copy the original files into a folder and set LABKIT_DATA "
            f"to it (see datasets/README.md), or use 'mnist' (the default), whose files ship "
            f"inside labkit.")


# ----------------------------------------------------------------------------------------------
# Parsing: uint8 images [N, C, H, W] and int64 labels [N], cached per process
# ----------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=8)
def _parsed(name: str, split: str, paths: tuple[Path, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """Parse once per (dataset, split, files); ``load`` hands out converted copies only."""
    if name == "digits":
        images, labels = _digits_arrays(split)
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
    wanted = _CIFAR_BATCHES[_check_split(split)]
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


# ----------------------------------------------------------------------------------------------
# The embedded default: scikit-learn's digits, reshaped to MNIST's frame
# ----------------------------------------------------------------------------------------------

_DIGITS_TEST_FRACTION, _DIGITS_SPLIT_SEED = 0.2, 0


def _digits_folder() -> Path:
    import sklearn.datasets

    return Path(sklearn.datasets.__file__).parent / "data"


def _digits_arrays(split: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    labels = bunch.target.astype(np.int64)
    train, test = _stratified_split(labels, _DIGITS_TEST_FRACTION, _DIGITS_SPLIT_SEED)
    index = train if split == "train" else test
    return _digits_to_mnist_frame(bunch.images[index]), labels[index]


def _digits_to_mnist_frame(images: np.ndarray) -> np.ndarray:
    """8x8 images with values 0..16 -> uint8 ``[N, 1, 28, 28]`` laid out like MNIST.

    MNIST centres each digit in a 20x20 box inside a 28x28 frame, so: scale to [0, 1] (divide by
    16), upsample 8x8 -> 20x20 bilinearly (``align_corners=False``: each output pixel is a convex
    mix of its nearest inputs, so values stay in [0, 1]), pad 4 zero pixels on every side, and
    round to uint8 so that, as for MNIST, every pixel is exactly ``k / 255``.
    """
    x = torch.from_numpy(np.asarray(images, dtype=np.float32) / 16.0)[:, None]
    x = torch.nn.functional.interpolate(x, size=(20, 20), mode="bilinear", align_corners=False)
    x = torch.nn.functional.pad(x, (4, 4, 4, 4))
    return (x * 255.0).round().clamp(0, 255).to(torch.uint8).numpy()


def _stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, test) indices: each class sends ``round(test_fraction * count)`` samples to test.

    Uses ``np.random.RandomState``, whose stream numpy promises never to change, so the split is
    the same on every machine and numpy version.
    """
    rng = np.random.RandomState(seed)
    test = [rng.permutation(np.flatnonzero(labels == c))[:int(round(test_fraction * np.sum(labels == c)))]
            for c in np.unique(labels)]
    test = np.sort(np.concatenate(test))
    return np.setdiff1d(np.arange(len(labels)), test), test


def _balanced_indices(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Sorted indices of ``min(n, len(labels))`` samples taken round-robin over classes.

    Shuffle with the seed, give each sample its rank within its class, then order by (rank,
    class): the first ``n`` hold one sample of each class before any class gets a second.
    """
    order = np.random.RandomState(seed).permutation(len(labels))
    rank = np.empty(len(labels), dtype=np.int64)
    for c in np.unique(labels):
        members = order[labels[order] == c]
        rank[members] = np.arange(len(members))
    return np.sort(np.lexsort((labels, rank))[:n])


# ----------------------------------------------------------------------------------------------
# Command line: python -m labkit.data download mnist fashion-mnist
# ----------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    """``python -m labkit.data download NAME...``: fetch datasets, print where they are."""
    parser = argparse.ArgumentParser(prog="python -m labkit.data", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    fetch = commands.add_parser("download", help="fetch original files, verify them, store them in the cache")
    fetch.add_argument("names", nargs="+", choices=DATASETS, metavar="NAME", help=", ".join(DATASETS))
    fetch.add_argument("--root", default=None, help="folder to store into (default: the cache folder)")
    fetch.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    for name in args.names:
        try:
            folder = download(name, root=args.root, progress=not args.quiet)
        except (ChecksumError, DownloadError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        print(f"{name}: {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
