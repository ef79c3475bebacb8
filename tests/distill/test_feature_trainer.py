"""FeatureTap, layer_features and feature_distill: hooks removed, teacher frozen, seeded, alpha=0 is distill."""
import pytest
import torch

from labkit import models, train
from labkit.distill import FeatureTap, distill, feature_distill, layer_features


def images(n=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g)


def student():
    train.set_seed(0)
    return models.build("lenet5")


def teacher():
    train.set_seed(1)
    return models.build("vgg")


def hooks(model):
    return sum(len(m._forward_hooks) for m in model.modules())


def test_feature_tap_shapes_and_clean_removal():
    model, (x, _) = teacher().eval(), images(5)
    with FeatureTap(model, ["pool1", "relu4", "fc1"]) as tap:
        assert hooks(model) == 3
        model(x)
        shapes = {k: tuple(v.shape) for k, v in tap.features.items()}
    assert shapes == {"pool1": (5, 16, 14, 14), "relu4": (5, 32, 14, 14), "fc1": (5, 64)}
    assert hooks(model) == 0 and tap.features == {}
    tap = FeatureTap(model, "pool2")
    model(x)
    assert tap.features["pool2"].shape == (5, 32, 7, 7)
    tap.remove()
    tap.remove()                                                        # idempotent
    assert hooks(model) == 0
    with pytest.raises(ValueError, match="layer_names: 'conv9' is not a layer"):
        FeatureTap(model, ["conv9"])
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        FeatureTap("vgg", ["pool1"])
    with pytest.raises(TypeError, match="layer_names must be a non-empty list"):
        FeatureTap(model, [])


def test_layer_features_match_a_manual_forward_and_restore_mode():
    model, (x, y) = teacher().train(), images(10)
    cache = layer_features(model, (x, y), ["pool1"], batch_size=4)
    assert model.training and hooks(model) == 0
    model.eval()
    with torch.no_grad():
        assert torch.allclose(cache["pool1"], model[:7](x), atol=1e-6)   # conv1 … pool1
        assert torch.allclose(cache["logits"], model(x), atol=1e-5)


def test_feature_distill_trains_student_and_leaves_teacher_untouched():
    t, s, data = teacher().eval(), student(), images()
    before = {k: v.clone() for k, v in t.state_dict().items()}
    start = {k: v.clone() for k, v in s.state_dict().items()}
    history = feature_distill(s, t, data, hint=("pool1", "pool1"), attention=("pool1", "pool1"),
                              relation=("relu4", "relu7"), epochs=2, batch_size=16, progress=False)
    assert [h["epoch"] for h in history] == [1, 2] and all(h["loss"] > 0 for h in history)
    assert all(torch.equal(before[k], v) for k, v in t.state_dict().items())     # BN stats too
    assert all(p.grad is None for p in t.parameters())
    assert not all(torch.equal(start[k], v) for k, v in s.state_dict().items())
    assert hooks(s) == 0 and hooks(t) == 0


def test_feature_distill_is_seeded_and_alpha0_without_terms_is_distill():
    data = images()
    a, b, c = student(), student(), student()
    kw = dict(epochs=2, batch_size=16, progress=False)
    cache = layer_features(teacher(), data[0], ["pool1"])
    feature_distill(a, None, data, attention=("pool1", "pool1"), teacher_cache=cache, **kw)
    feature_distill(b, None, data, attention=("pool1", "pool1"), teacher_cache=cache, **kw)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    d = student()
    feature_distill(c, None, data, alpha=0.0, teacher_cache=cache, **kw)
    distill(d, None, data, alpha=0.0, cached_logits=cache["logits"], **kw)
    assert all(torch.allclose(p, q) for p, q in zip(c.parameters(), d.parameters()))
    assert not torch.allclose(a.conv1.weight, c.conv1.weight)                    # AT changed something


def test_feature_distill_bad_arguments():
    s, data = student(), images(8)
    with pytest.raises(TypeError, match="hint must be None or a pair"):
        feature_distill(s, teacher(), data, hint="pool1", progress=False)
    with pytest.raises(ValueError, match="at_weight"):
        feature_distill(s, teacher(), data, attention=("pool1", "pool1"), at_weight=-1.0, progress=False)
    with pytest.raises(ValueError, match="teacher must be a torch.nn.Module when teacher_cache is None"):
        feature_distill(s, None, data, progress=False)
    with pytest.raises(ValueError, match="teacher_cache must be a dict"):
        feature_distill(s, None, data, attention=("pool1", "pool1"), teacher_cache={"logits": torch.zeros(8, 10)},
                        progress=False)
    with pytest.raises(ValueError, match="teacher_cache must be a dict"):
        feature_distill(s, None, data, teacher_cache=torch.zeros(8, 10), progress=False)
    with pytest.raises(ValueError, match="teacher and student must be two different"):
        feature_distill(s, s, data, progress=False)
    with pytest.raises(ValueError, match="layer_names: 'nope'"):
        feature_distill(s, teacher(), data, attention=("nope", "pool1"), progress=False)
