"""The attention explorer (labkit.widgets.attention) without a browser: maps, AT loss, controls, redraws."""
import numpy as np
import pytest
import torch

from labkit import distill, models, train
from labkit.widgets.attention import AttentionExplorer


def nets():
    train.set_seed(0)
    return models.build("vgg").eval(), models.build("lenet5"), models.build("lenet5")


def images(n=6):
    g = torch.Generator().manual_seed(1)
    return torch.rand(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g)


def test_maps_and_loss_come_from_labkit_distill():
    teacher, student, _ = nets()
    (x, y) = images()
    explorer = AttentionExplorer(teacher, student, (x, y), index=2)
    s = explorer.stats
    assert s["index"] == 2 and s["label"] == int(y[2]) and s["layer"] == ("pool1", "pool1") and s["p"] == 2.0
    t_feat = distill.layer_features(teacher, x, ["pool1"])["pool1"]
    s_feat = distill.layer_features(student, x, ["pool1"])["pool1"]
    q_t = distill.normalized_attention(t_feat[2:3], 2.0)[0].reshape(14, 14)
    assert torch.allclose(torch.tensor(s["teacher_map"]), q_t, atol=1e-6)
    assert torch.tensor(s["student_map"]).pow(2).sum().item() == pytest.approx(1.0, rel=1e-5)
    assert s["at_loss"] == pytest.approx(distill.attention_transfer_loss(s_feat[2:3], t_feat[2:3]).item(), rel=1e-5)
    assert s["at_loss_mean"] == pytest.approx(distill.attention_transfer_loss(s_feat, t_feat).item(), rel=1e-5)
    diff = torch.tensor(explorer.figure.data[2].z)
    assert torch.allclose(diff, torch.tensor(s["student_map"]) - q_t, atol=1e-6)
    assert "AT loss" in explorer.readout.value
    assert student.training and all(q.grad is None for q in teacher.parameters())
    assert sum(len(m._forward_hooks) for m in list(teacher.modules()) + list(student.modules())) == 0


def test_controls_redraw_and_student_picker():
    teacher, before, after = nets()
    explorer = AttentionExplorer(teacher, {"before": before, "after": after}, images()[0],
                                 layers=[("pool1", "pool1"), ("relu1", "relu2")])
    count, loss = explorer.update_count, explorer.stats["at_loss"]
    assert explorer.stats["label"] is None and explorer.stats["student"] == "before"
    explorer.set(p=6.0)
    assert explorer.update_count == count + 1 and explorer.stats["p"] == 6.0 and explorer.stats["at_loss"] != loss
    explorer.set(layer=("relu1", "relu2"), image=4)
    assert explorer.stats["layer"] == ("relu1", "relu2") and explorer.stats["index"] == 4
    assert np.asarray(explorer.figure.data[0].z).shape == (28, 28)
    assert "relu1 ↔ relu2" in explorer.figure.layout.title.text and "image 4" in explorer.figure.layout.title.text
    explorer.set(student="after")
    assert explorer.stats["student"] == "after"
    with pytest.raises(ValueError, match="p="):
        explorer.set(p="large")


def test_css_classes_and_argument_checks():
    teacher, student, _ = nets()
    explorer = AttentionExplorer(teacher, student, images())
    assert "student" not in explorer.controls
    for control in ("image", "layer", "p"):
        assert f"labkit-attention-{control}" in explorer.controls[control]._dom_classes
    assert explorer.controls["p"].continuous_update is False and explorer.controls["image"].continuous_update is False
    assert "labkit-attention" in explorer.widget._dom_classes
    assert "labkit-attention-figure" in explorer.figure._dom_classes
    assert "labkit-attention-readout" in explorer.readout._dom_classes
    with pytest.raises(ValueError, match=r"p must be a finite number in \[0.5, 8.0\]"):
        AttentionExplorer(teacher, student, images(), p=0.0)
    with pytest.raises(ValueError, match=r"index must be an integer in \[0, 5\]"):
        AttentionExplorer(teacher, student, images(), index=6)
    with pytest.raises(TypeError, match="teacher must be a torch.nn.Module"):
        AttentionExplorer("vgg", student, images())
    with pytest.raises(TypeError, match="student must be a torch.nn.Module or a non-empty dict"):
        AttentionExplorer(teacher, {}, images())
    with pytest.raises(TypeError, match="layers must be a non-empty list"):
        AttentionExplorer(teacher, student, images(), layers=["pool1"])
    with pytest.raises(ValueError, match="same spatial size"):
        AttentionExplorer(teacher, student, images(), layers=[("relu2", "pool1")])
    with pytest.raises(ValueError, match="layer_names: 'nope'"):
        AttentionExplorer(teacher, student, images(), layers=[("nope", "pool1")])


def test_heat_maps_are_plain_lists_with_fixed_names():
    """Issue 11: numpy arrays assigned to trace properties reach plotly.js badly; names set once."""
    teacher, a, b = nets()
    explorer = AttentionExplorer(teacher, {"a": a, "b": b}, images(), p=2.0)
    names = [trace.name for trace in explorer.figure.data]
    assert names == ["teacher", "student", "student − teacher"]
    for values in (dict(p=4.0), dict(image=3), dict(student="b")):
        explorer.set(**values)
        assert [trace.name for trace in explorer.figure.data] == names
        assert not [(i, k) for i, t in enumerate(explorer.figure.data) for k, v in t.to_plotly_json().items()
                    if isinstance(v, np.ndarray)]


def test_setting_gives_the_stats_without_a_redraw():
    teacher, before, after = nets()
    explorer = AttentionExplorer(teacher, {"before": before, "after": after}, images()[0],
                                 layers=[("pool1", "pool1")])
    count = explorer.update_count
    wanted = explorer.setting(4, ("pool1", "pool1"), 3.0, "after")
    assert explorer.update_count == count
    explorer.set(image=4, p=3.0, student="after")
    assert explorer.stats == wanted
    with pytest.raises(ValueError, match="student must be one of"):
        explorer.setting(0, ("pool1", "pool1"), 2.0, "nobody")
    with pytest.raises(ValueError, match="layer must be one of"):
        explorer.setting(0, ("x", "y"), 2.0)
    with pytest.raises(ValueError, match="p must be"):
        explorer.setting(0, ("pool1", "pool1"), 9.0)
