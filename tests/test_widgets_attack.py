"""The attack explorer (labkit.widgets.attack) without a browser: numbers from labkit.robust, controls,
redraws, cache, plain lists and names on the traces, titled axes, refusals."""
import pytest
import torch

from labkit import data, quant, robust, stats, train, zoo
from labkit.widgets import AttackExplorer
from labkit.widgets.attack import CLASS_NAMES


@pytest.fixture(scope="module")
def setup():
    base = zoo.pretrained("lenet300", "digits", train_if_missing=False, progress=False)
    ptq = quant.quantize_static(base, data.load("digits", "train"), num_batches=2)
    return {"base": base, "int8 PTQ": ptq}, data.eval_subset("digits", 60)


def test_numbers_come_from_labkit_robust(setup):
    models, subset = setup
    explorer = AttackExplorer(models, subset, eps=0.1, attack="pgd", image=3)
    s = explorer.stats
    x_adv = robust.adversarial_examples(models["base"], subset, 0.1, attack="pgd").tensors[0]
    correct = train.correct(models["base"], (x_adv, subset.tensors[1]))
    interval = stats.accuracy_interval(correct)
    assert s["robust_accuracy"] == pytest.approx(interval.value)
    assert (s["robust_low"], s["robust_high"]) == pytest.approx((interval.low, interval.high))
    assert s["clean_accuracy"] == pytest.approx(train.evaluate(models["base"], subset))
    assert s["robust_accuracy"] < s["clean_accuracy"] - 0.2      # PGD at 0.1 hurts a plain MLP a lot
    assert s["linf"] == pytest.approx(0.1, abs=1e-6) and s["images"] == 60 and s["label"] == int(subset.tensors[1][3])
    clean, delta, adv, p_clean, p_adv = explorer.figure.data
    assert torch.tensor(adv.z).sub(x_adv[3, 0]).abs().max() < 1e-6
    assert torch.tensor(delta.z).abs().max() <= 0.1 + 1e-6
    probs = models["base"](x_adv[3:4]).softmax(1)[0]
    assert list(p_adv.y) == pytest.approx(probs.tolist(), abs=1e-6)
    assert s["adversarial_prediction"] == int(probs.argmax())
    title = explorer.figure.layout.title.text
    assert title.startswith("base, PGD-10 at ε = 0.10") and f"→ digit {s['adversarial_prediction']} (label" in title
    assert "robust accuracy" in explorer.readout.value and "on 60 test images" in explorer.readout.value


def test_plain_lists_names_and_titled_axes(setup):
    explorer = AttackExplorer(*setup)
    fig = explorer.figure
    assert [t.name for t in fig.data] == ["clean image", "perturbation", "adversarial image", "clean image",
                                           "adversarial image"]
    for trace in fig.data[:3]:                          # plain Python numbers, never numpy arrays
        assert list(trace.x) == list(range(28)) and len(trace.z) == 28 and all(isinstance(row, (list, tuple)) and type(row[0]) is float for row in trace.z)
    assert list(fig.data[3].x) == CLASS_NAMES and all(isinstance(v, float) for v in fig.data[4].y)
    for axis in (fig.layout.xaxis, fig.layout.xaxis2, fig.layout.xaxis3, fig.layout.xaxis4,
                 fig.layout.yaxis, fig.layout.yaxis2, fig.layout.yaxis3, fig.layout.yaxis4):
        assert axis.title.text, axis
    assert fig.layout.xaxis4.type == "category" and fig.layout.yaxis4.title.text == "probability"
    for control in ("model", "attack", "eps", "image"):
        assert f"labkit-attack-{control}" in explorer.controls[control]._dom_classes
    assert explorer.controls["eps"].continuous_update is False


def test_every_control_redraws_and_cache(setup):
    models, subset = setup
    explorer = AttackExplorer(models, subset, eps=0.05)
    count = explorer.update_count
    explorer.set(eps=0.0)
    assert explorer.update_count == count + 1 and explorer.stats["linf"] == 0.0
    assert explorer.stats["robust_accuracy"] == pytest.approx(explorer.stats["clean_accuracy"])
    explorer.set(attack="fgsm", eps=0.2)
    x_adv = robust.fgsm(models["base"], *subset.tensors, 0.2)
    assert explorer.stats["robust_accuracy"] == pytest.approx(train.evaluate(models["base"], (x_adv, subset.tensors[1])))
    assert "FGSM at ε = 0.20" in explorer.figure.layout.title.text
    explorer.set(model="int8 PTQ", attack="pgd", eps=0.1)      # through its straight-through twin
    twin = robust.straight_through_twin(models["int8 PTQ"])
    x_twin = robust.adversarial_examples(twin, subset, 0.1).tensors[0]
    assert explorer.stats["robust_accuracy"] == pytest.approx(
        train.evaluate(models["int8 PTQ"], (x_twin, subset.tensors[1])))
    assert explorer.stats["robust_accuracy"] < explorer.stats["clean_accuracy"] - 0.2   # no masked gradient
    explorer.set(image=7)
    assert explorer.stats["image"] == 7
    cached = len(explorer.remembered("attacked"))
    again = explorer.setting("int8 PTQ", "pgd", 0.1, 7)
    assert len(explorer.remembered("attacked")) == cached and again["robust_accuracy"] == explorer.stats["robust_accuracy"]
    assert explorer.update_count == count + 4                   # setting() never redraws


def test_refusals(setup):
    models, subset = setup
    with pytest.raises(TypeError, match="models must be"):
        AttackExplorer({}, subset)
    with pytest.raises(TypeError, match="eval_data must be"):
        AttackExplorer(models, subset.tensors)
    with pytest.raises(ValueError, match="eps"):
        AttackExplorer(models, subset, eps=0.5)
    with pytest.raises(ValueError, match="attack"):
        AttackExplorer(models, subset, attack="cw")
    explorer = AttackExplorer(models, subset)
    with pytest.raises(ValueError, match="eps"):
        explorer.set(eps=float("nan"))
    with pytest.raises(ValueError, match="model"):
        explorer.setting("pruned", "pgd", 0.1, 0)
    with pytest.raises(ValueError, match="image"):
        explorer.setting("base", "pgd", 0.1, 60)
