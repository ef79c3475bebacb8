"""Issue 9: every kind of model the lab makes goes through zoo.save_checkpoint / load_checkpoint and
comes back computing bit-identical outputs — or is refused at save time with the reason, and no file
is written. The file always loads with ``torch.load(weights_only=True)`` (no pickled code)."""
import copy
import dataclasses

import pytest
import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from labkit import architecture, data, models, prune, train, zoo
from labkit.distill import FeatureTap, MLPStudent
from labkit.lowrank import decompose_model
from labkit.quant import binary, ptq, qat
from labkit.quant.integer import IntegerModel, convert_to_integer

DIGITS = data.load("digits", "test")
X = DIGITS.tensors[0][:64]


def trained(name):
    return zoo.pretrained(name, "digits", train_if_missing=False)


def masked():
    model = trained("lenet5")
    prune.global_prune(model, 0.6)
    return model


def pruned_and_removed():
    return prune.remove_all(masked())


def shrunk():
    return prune.structured_prune(trained("vgg"), 0.5)[0]


def shrunk_resnet():
    return prune.structured_prune(trained("resnet"), 0.5)[0]


def fake_quantized(quantizer):
    def make():
        model = qat.prepare_qat(trained("lenet5"), weight_bits=4, act_bits=4, quantizer=quantizer)
        train.fit(model, (X, DIGITS.tensors[1][:64]), epochs=1, batch_size=32, progress=False)
        if quantizer == "ste":
            qat.freeze_observers(model, learned=True)  # frozen observers and steps are saved as such
        return model
    return make


def ptq_static(observer):
    return lambda: ptq.quantize_static(trained("vgg"), X, observer=observer, num_batches=1)


def qat_converted():
    return qat.convert(fake_quantized("lsq")())


def factorised(conv_method):
    def make():
        model = copy.deepcopy(trained("lenet5"))
        ranks = {"conv2": 4, "fc1": 16} if conv_method == "cp" else None
        decompose_model(model, ranks, energy=None if ranks else 0.8, conv_method=conv_method)
        return model
    return make


def student():
    train.set_seed(0)
    model = MLPStudent(hidden=(24, 12))
    train.fit(model, (X, DIGITS.tensors[1][:64]), epochs=1, progress=False)
    return model


def tied():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 784, bias=False), nn.ReLU(), nn.Linear(784, 784, bias=False),
                          nn.ReLU(), nn.Linear(784, 10))
    model[3].weight = model[1].weight
    return model


KINDS = {
    "masked": masked,
    "pruned-and-removed": pruned_and_removed,
    "structurally shrunk (vgg)": shrunk,
    "structurally shrunk (resnet)": shrunk_resnet,
    "fake-quantized (ste)": fake_quantized("ste"),
    "fake-quantized (lsq)": fake_quantized("lsq"),
    "fake-quantized (pact)": fake_quantized("pact"),
    "ptq (minmax)": ptq_static("minmax"),
    "ptq (histogram)": ptq_static("histogram"),
    "ptq (entropy)": ptq_static("entropy"),
    "ptq dynamic": lambda: ptq.quantize_dynamic(trained("lenet300")),
    "qat-converted": qat_converted,
    "factorised (svd + tucker2)": factorised("tucker2"),
    "factorised (svd + cp)": factorised("cp"),
    "integer-only": lambda: convert_to_integer(trained("lenet5"), X),
    "distilled student": student,
    "mobilenet": lambda: trained("mobilenet"),
    "float64": lambda: trained("lenet5").double(),
    "tied weights": tied,
}


def outputs(model, x):
    if isinstance(model, IntegerModel):
        return torch.from_numpy(model(x))
    model.eval()
    with torch.no_grad():
        return model(x.to(next((p.dtype for p in model.parameters()), torch.float32)))


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_model_round_trips_bit_identically(tmp_path, kind):
    model = KINDS[kind]()
    before = outputs(model, X)
    path = zoo.save_checkpoint(model, tmp_path / "m.pt", note=kind)
    raw = torch.load(path, weights_only=True)  # plain data and tensors only
    assert raw["note"] == kind and raw["architecture_sha256"] == architecture.digest(raw["architecture"])
    loaded = zoo.load_checkpoint(path)
    assert type(loaded) is type(model)
    assert torch.equal(outputs(loaded, X), before)  # bit-identical, on 64 real digits
    if isinstance(model, nn.Module):
        assert loaded.state_dict().keys() == model.state_dict().keys()


def test_a_loaded_masked_model_keeps_pruning_while_it_trains(tmp_path):
    model = masked()
    loaded = zoo.load_checkpoint(zoo.save_checkpoint(model, tmp_path / "m.pt"))
    assert prune.is_pruned(loaded.conv1) and torch.equal(loaded.conv1.weight_mask, model.conv1.weight_mask)
    pruned = loaded.fc1.weight_mask == 0
    train.fit(loaded, (X, DIGITS.tensors[1][:64]), epochs=1, progress=False, lr=1e-2)
    assert bool((loaded.fc1.weight[pruned] == 0).all())  # the hook is back: pruned weights stay 0


def test_shrunk_models_keep_their_smaller_shapes_and_labkit_class(tmp_path):
    model = shrunk()
    loaded = zoo.load_checkpoint(zoo.save_checkpoint(model, tmp_path / "m.pt"))
    assert isinstance(loaded, models.SmallVGG) and loaded.conv1.out_channels == model.conv1.out_channels == 8
    assert loaded.config() == model.config()


def test_tied_weights_stay_tied(tmp_path):
    loaded = zoo.load_checkpoint(zoo.save_checkpoint(tied(), tmp_path / "m.pt"))
    assert loaded[3].weight is loaded[1].weight


def test_loading_leaves_the_global_random_state_alone(tmp_path):
    path = zoo.save_checkpoint(factorised("tucker2")(), tmp_path / "m.pt")
    state = torch.random.get_rng_state()
    zoo.load_checkpoint(path)
    assert torch.equal(torch.random.get_rng_state(), state)


def refused_kinds():
    hooked = trained("lenet5")
    FeatureTap(hooked, ["pool1"])
    torch_pruned = trained("lenet5")
    torch_prune.l1_unstructured(torch_pruned.fc1, "weight", 0.5)
    return {
        "binarized": (binary.binarize_model(trained("lenet5")), r"model.conv2 is a labkit.quant.binary.BinaryConv2d"),
        "feature tap": (hooked, r"model.pool1 has a forward hook \(FeatureTap.*\), which changes what it computes"),
        "torch.nn.utils.prune": (torch_pruned, r"the forward pre-hook of model.fc1 is a .*L1Unstructured"),
        "calibrating": (ptq.swap_layers(trained("lenet300"), lambda layer, i, r: ptq.ObservedLayer(layer, None, None)),
                        r"model.fc1 is a labkit.quant.modules.ObservedLayer"),
    }


def test_models_that_cannot_be_saved_are_refused_with_the_reason_and_nothing_is_written(tmp_path):
    for kind, (model, reason) in refused_kinds().items():
        with pytest.raises(TypeError, match=rf"^model cannot be saved: {reason}"):
            zoo.save_checkpoint(model, tmp_path / f"{kind}.pt")
    assert list(tmp_path.iterdir()) == []


def test_state_the_saved_form_does_not_describe_is_refused(tmp_path):
    model = fake_quantized("ste")()
    model.fc1.weight_quant.ste = "identity"  # described: fine
    zoo.save_checkpoint(model, tmp_path / "ok.pt")
    model.fc1.extra_scale = 2.0  # not described, and it changes nothing: fine too

    class Doubled(nn.ReLU):  # a subclass is not its parent's kind
        def forward(self, x):
            return 2 * super().forward(x)

    model.relu1 = Doubled()
    with pytest.raises(TypeError, match=r"model.relu1 is a .*Doubled, which has no saved form"):
        zoo.save_checkpoint(model, tmp_path / "bad.pt")
    model = fake_quantized("ste")()
    quantizer = model.fc1.output_quant  # frozen: it quantizes with its cached parameters from now on
    quantizer._qparams = dataclasses.replace(quantizer.qparams(), scale=quantizer.qparams().scale * 2)
    with pytest.raises(TypeError, match=r"^model cannot be saved faithfully: .* computes different outputs"):
        zoo.save_checkpoint(model, tmp_path / "bad.pt")  # caught by the rebuild-and-compare check
    assert [p.name for p in tmp_path.iterdir()] == ["ok.pt"]


def test_a_changed_architecture_fails_its_checksum(tmp_path):
    path = zoo.save_checkpoint(shrunk(), tmp_path / "m.pt")
    raw = torch.load(path, weights_only=True)
    raw["architecture"]["children"]["pool1"]["args"]["stride"] = 1  # a one-character change
    torch.save(raw, path)
    with pytest.raises(zoo.CheckpointError, match="fails its architecture checksum"):
        zoo.load_checkpoint(path)


def test_a_file_naming_code_outside_labkit_is_refused_before_importing_it(tmp_path):
    path = zoo.save_checkpoint(models.build("lenet300"), tmp_path / "m.pt")
    raw = torch.load(path, weights_only=True)
    raw["architecture"]["children"]["relu1"]["home"] = "os"
    raw["architecture_sha256"] = architecture.digest(raw["architecture"])  # a forged, consistent file
    torch.save(raw, path)
    with pytest.raises(zoo.CheckpointError, match=r"cannot be rebuilt .*comes from 'os', not a labkit module"):
        zoo.load_checkpoint(path)
