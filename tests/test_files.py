"""labkit.files.atomic_write: the target is whole or untouched, and no temporary file is left."""
import os
import stat

import pytest

from labkit.files import atomic_write


def test_writes_the_file_readable_by_all_and_creates_its_folder(tmp_path):
    target = tmp_path / "new" / "file.bin"
    with atomic_write(target) as f:
        f.write(b"\x00\x01\x02")
    assert target.read_bytes() == b"\x00\x01\x02"
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o644
    assert os.listdir(target.parent) == ["file.bin"]


def test_an_error_while_writing_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "results.json"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="interrupted"):
        with atomic_write(target, "w") as f:
            f.write("half of the new")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["results.json"]


def test_mode_is_refused_unless_it_writes(tmp_path):
    with pytest.raises(ValueError, match="mode must be 'wb' or 'w'"):
        with atomic_write(tmp_path / "x", "r"):
            pass
    assert os.listdir(tmp_path) == []
