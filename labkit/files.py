"""Writing a file so that it is either complete or not there: the one home of labkit's atomic writes.

Checkpoints (``zoo``, ``llm.checkpoint``), compressed models (``pipeline.fileformat``, ``llm.storage``),
sweep caches (``pipeline.sweep``) and benchmark results are written through ``atomic_write``: the bytes
go to a temporary file beside the target, which is flushed to disk and renamed over the target only
when writing succeeded. An interrupted or failing write leaves the old file (or none) and no
temporary file behind.
"""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_write(path, mode: str = "wb"):
    """Open a temporary file beside ``path`` for writing (``mode`` "wb" or "w"); on leaving the block
    without an error it is flushed, fsync'ed, made readable by all (0644) and renamed onto ``path``;
    on an error it is removed and the error raised. The parent folder is created if missing."""
    if mode not in ("wb", "w"):
        raise ValueError(f"mode must be 'wb' or 'w', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)    # mkstemp creates owner-only files; what labkit writes is readable by all
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
