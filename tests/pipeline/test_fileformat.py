"""The compressed-model file: exact round trips, honest sizes, clear errors, nothing half-written."""
from __future__ import annotations

import copy
import json
import struct
import zlib
from pathlib import Path

import pytest
import torch

from labkit import measure, prune
from labkit.pipeline import fileformat
from labkit.pipeline.fileformat import CompressedFileError
from labkit.quant import codebook, integer, ptq


def _same_outputs(a, b, x) -> bool:
    if isinstance(a, torch.nn.Module):
        with torch.no_grad():
            return torch.equal(a.eval()(x), b(x))
    return bool((a(x) == b(x)).all())


def _models(lenet300, lenet5, digits_train):
    pruned = lenet300
    prune.global_prune(pruned, 0.9)
    calib = digits_train.tensors[0][:256]
    return {
        "dense": lenet5,
        "pruned (masks)": pruned,
        "k-means 4-bit, pruned": codebook.apply_weight_sharing(prune.remove_all(copy.deepcopy(pruned)), 4, keep_zeros=True,
                                                               iters=5),
        "PTQ W4": ptq.quantize_static(lenet5, calib, weight_bits=4),
        "integer-only": integer.convert_to_integer(lenet5, calib),
    }


def test_round_trip_is_bit_identical_for_every_kind_of_model(lenet300, lenet5, digits_train, digits_test, tmp_path):
    x = digits_test.tensors[0][:64]
    for name, model in _models(lenet300, lenet5, digits_train).items():
        path = tmp_path / "m.lkcm"
        report = fileformat.save(model, path)
        assert report.bytes == path.stat().st_size
        assert _same_outputs(model, fileformat.load(path), x), name
        again, _ = fileformat.read_report(path)
        assert [r.bytes for r in again.tensors] == [r.bytes for r in report.tensors]


def test_sizes_are_honest_and_smaller_where_the_model_is(lenet300, tmp_path):
    dense = fileformat.save(lenet300, tmp_path / "dense.lkcm").bytes
    assert abs(dense - measure.size_on_disk(lenet300, "fp32")) < 1000        # fp32 + a small header
    prune.global_prune(lenet300, 0.9)
    sparse = fileformat.save(lenet300, tmp_path / "sparse.lkcm")
    fc1 = next(r for r in sparse.tensors if r.name == "fc1.weight")
    assert fc1.encoding == "sparse:float32" and fc1.nonzeros == int((lenet300.fc1.weight != 0).sum())
    assert sparse.bytes < 0.2 * dense                                          # 10 % of the values + indices
    shared = codebook.apply_weight_sharing(prune.remove_all(lenet300), 4, keep_zeros=True, iters=5)
    report = fileformat.save(shared, tmp_path / "shared.lkcm")
    idx = next(r for r in report.tensors if r.name == "fc1.indices")
    assert idx.encoding == "sparse-ints" and "huffman" in idx.forms
    assert report.bytes < sparse.bytes / 4                                     # 4-bit codes instead of fp32


def test_state_dict_round_trip_and_negative_zero(tmp_path):
    state = {"w": torch.tensor([[0.0, -0.0, 1.5], [2.0, 0.0, -3.0]]), "n": torch.tensor(7), "b": torch.tensor([True, False])}
    fileformat.save(state, tmp_path / "s.lkcm")
    back = fileformat.load(tmp_path / "s.lkcm")
    assert set(back) == set(state) and all(torch.equal(back[k], state[k]) for k in state)
    assert back["n"].dtype == torch.int64 and back["b"].dtype == torch.bool


def _damage(path: Path, offset: int | None = None, cut: int | None = None, version: int | None = None):
    data = bytearray(path.read_bytes())
    if offset is not None:
        data[offset] ^= 0xFF
    if cut is not None:
        data = data[:cut]
    if version is not None:
        data[4] = version
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage, message", [
    (dict(cut=-10), "truncated"),
    (dict(cut=12), "truncated"),
    (dict(offset=-30), "corrupted"),
    (dict(offset=40), "corrupted"),
    (dict(version=2), "version 2"),
    (dict(offset=0), "not a labkit compressed-model file"),
])
def test_damaged_files_raise_clear_errors_naming_the_file(lenet5, tmp_path, damage, message):
    path = tmp_path / "model.lkcm"
    fileformat.save(lenet5, path)
    size = path.stat().st_size
    if damage.get("cut") is not None and damage["cut"] < 0:
        damage = dict(cut=size + damage["cut"])
    if damage.get("offset") is not None and damage["offset"] < 0:
        damage = dict(offset=size + damage["offset"])
    _damage(path, **damage)
    with pytest.raises(CompressedFileError, match=message) as info:
        fileformat.load(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_trailing_bytes_and_empty_file(lenet5, tmp_path):
    path = tmp_path / "model.lkcm"
    fileformat.save(lenet5, path)
    path.write_bytes(path.read_bytes() + b"xx")
    with pytest.raises(CompressedFileError, match="trailing"):
        fileformat.load(path)
    path.write_bytes(b"")
    with pytest.raises(CompressedFileError, match="not a labkit"):
        fileformat.load(path)


def _rewrite_header(path: Path, edit) -> None:
    """Change the JSON header and fix the checksum, as a forger would."""
    data = path.read_bytes()
    magic, version, header_len, payload_len = struct.unpack_from("<4sBIQ", data)
    header = json.loads(zlib.decompress(data[17:17 + header_len]))
    edit(header)
    new = zlib.compress(json.dumps(header).encode())
    body = struct.pack("<4sBIQ", magic, version, len(new), payload_len) + new + data[17 + header_len:-4]
    path.write_bytes(body + struct.pack("<I", zlib.crc32(body)))


def test_a_file_never_imports_code_outside_labkit(lenet5, tmp_path):
    path = tmp_path / "model.lkcm"
    fileformat.save(lenet5, path)

    def point_at_os(header):
        header["model"]["home"] = "os"
        header["model"]["kind"] = "system"

    _rewrite_header(path, point_at_os)
    with pytest.raises(CompressedFileError, match="architecture"):
        fileformat.load(path)


def test_nothing_half_written(lenet5, tmp_path):
    path = tmp_path / "model.lkcm"
    fileformat.save(lenet5, path)
    before = path.read_bytes()
    with pytest.raises(TypeError, match="meta"):
        fileformat.save(lenet5, path, meta={"bad": object()})
    with pytest.raises(TypeError, match="no saved form"):
        fileformat.save(torch.nn.Sequential(torch.nn.LSTM(2, 2)), path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.lkcm"]       # no temporary file left


def test_bad_arguments(lenet5, tmp_path):
    with pytest.raises(ValueError, match="gap_bits"):
        fileformat.save(lenet5, tmp_path / "m.lkcm", gap_bits=0)
    with pytest.raises(TypeError, match="huffman"):
        fileformat.save(lenet5, tmp_path / "m.lkcm", huffman="yes")
    with pytest.raises(TypeError, match="path"):
        fileformat.save(lenet5, 3)
    with pytest.raises(TypeError, match="dtype"):
        fileformat.save({"x": torch.zeros(3, dtype=torch.complex64)}, tmp_path / "m.lkcm")
