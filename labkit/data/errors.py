"""The three ways getting a dataset goes wrong, each a subclass of the built-in error it is."""

from __future__ import annotations


class DatasetNotFoundError(FileNotFoundError):
    """The original files of a dataset are neither under ``LABKIT_DATA`` nor in the cache."""


class ChecksumError(ValueError):
    """A file's bytes differ from the catalogue: it is not the original file (or it is damaged)."""


class DownloadError(OSError):
    """No mirror could deliver a file (typically: this machine is offline)."""
