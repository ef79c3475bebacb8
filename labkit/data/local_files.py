"""Finding and verifying a dataset's original files on this machine (no network here).

A file is looked up under ``$LABKIT_DATA``, then in the package (``SHIPPED_DATA``, MNIST), then in
``cache_dir()``; one of the catalogue's size is checked against its SHA-256 (or MD5) once per process.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from labkit.data.catalogue import CATALOGUE, IDX_FILES, DataFile
from labkit.data.errors import ChecksumError, DatasetNotFoundError


# Datasets whose original files ship inside the package (``labkit/datasets/<name>/``).
SHIPPED_DATA = Path(__file__).resolve().parent.parent / "datasets"


# The folder above the labkit package: a git checkout when labkit is installed editable (or run
# from the source tree), site-packages otherwise. A module-level name so tests can move it.
PACKAGE_PARENT = Path(__file__).resolve().parent.parent.parent


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


def _catalogue_file(name: str, filename: str) -> DataFile:
    return next(f for f in CATALOGUE[name].files if f.filename == filename)


def _split_filenames(name: str, split: str) -> tuple[str, ...]:
    if name == "digits":
        return ()
    if name == "cifar10":
        return (CATALOGUE["cifar10"].files[0].filename,)
    return IDX_FILES[split]


def locate_split(name: str, split: str) -> tuple[Path, ...]:
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


def is_intact(path: Path, datafile: DataFile) -> bool:
    if path.stat().st_size != datafile.size:
        return False
    try:
        _verify(path, datafile)
    except ChecksumError:
        return False
    return True


def new_hash(algorithm: str):
    # MD5 is only an integrity check here, never security: say so, for FIPS-mode Pythons.
    return hashlib.new(algorithm, usedforsecurity=False)


def _file_digest(path: Path, algorithm: str) -> str:
    digest = new_hash(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
