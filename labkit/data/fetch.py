"""Downloading original files: ``download(name)``, the only code in labkit that touches the network."""

from __future__ import annotations

import http.client
import os
import tempfile
import urllib.request
from pathlib import Path

from labkit.data import local_files
from labkit.data.catalogue import CATALOGUE, DataFile, dataset_name
from labkit.data.errors import ChecksumError, DownloadError
from labkit.data.sklearn_digits import digits_folder


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
        return digits_folder()
    if root is None and (local_files.SHIPPED_DATA / name).is_dir():
        print(f"{name} ships inside labkit ({local_files.SHIPPED_DATA / name}): nothing to download.")
        return local_files.SHIPPED_DATA / name
    folder = (Path(root).expanduser() if root is not None else local_files.cache_dir()) / name
    created = [p for p in (folder, *folder.parents) if not p.exists()]  # deepest first
    folder.mkdir(parents=True, exist_ok=True)
    try:
        for datafile in CATALOGUE[name].files:
            target = folder / datafile.filename
            if not (target.is_file() and local_files.is_intact(target, datafile)):
                _fetch(datafile, target, progress)
    finally:
        for path in created:  # a failed first download leaves no empty folders behind
            if not any(path.iterdir()):
                path.rmdir()
    return folder


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

    digests = {"md5": local_files.new_hash("md5"), "sha256": local_files.new_hash("sha256")}
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
