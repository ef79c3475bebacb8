"""The shipped TinyGPT: verified on load, refused when damaged, and as good as recorded."""

import pytest
import torch

from labkit.llm import checkpoint, experiment
from labkit.zoo import CheckpointError


def test_shipped_checkpoint_loads_verified_and_reaches_its_recorded_perplexity():
    model, blob = checkpoint.load()
    assert blob["recipe"] == checkpoint.RECIPE
    windows = experiment.held_out_windows(max_windows=40)
    ppl = experiment.measure(model, windows)["ppl"]
    assert ppl.value < 5.0                              # a trained char model; uniform would be 103
    assert blob["held_out_ppl_40_windows"] == pytest.approx(ppl.value, rel=1e-4)


def test_a_changed_byte_is_refused(tmp_path):
    model, blob = checkpoint.load()
    blob["state_dict"]["head.weight"][0, 0] += 1.0
    torch.save(blob, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="fails its checksum"):
        checkpoint.load(tmp_path / "bad.pt")
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="cannot be read"):
        checkpoint.load(tmp_path / "empty.pt")


def test_save_then_load_is_bit_identical(tmp_path):
    model, _ = checkpoint.load()
    path = checkpoint.save(model, tmp_path / "copy.pt")
    again, _ = checkpoint.load(path)
    ids = experiment.held_out_windows(max_windows=2)[:, :-1]
    assert torch.equal(model(ids), again(ids))
