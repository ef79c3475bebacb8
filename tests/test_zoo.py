"""labkit.zoo: checkpoint round-trip (weights_only), atomic writes, shipped models, look-up order."""
import pytest
import torch

from labkit import data, models, train, zoo


@pytest.fixture
def empty_zoo(tmp_path, monkeypatch):
    """No shipped checkpoints, an empty cache, nothing loaded in this process."""
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    monkeypatch.setattr(zoo, "SHIPPED_DIR", shipped)
    monkeypatch.setattr(zoo, "_LOADED", {})
    monkeypatch.setenv("LABKIT_CACHE", str(tmp_path / "cache"))
    return tmp_path


@pytest.mark.parametrize("name, channels, size", [("lenet5", 1, 28), ("vgg", 3, 32), ("resnet", 1, 28)])
def test_checkpoint_round_trip_with_weights_only(tmp_path, name, channels, size):
    torch.manual_seed(0)
    model = models.build(name, in_channels=channels, num_classes=5, image_size=size)
    path = zoo.save_checkpoint(model, tmp_path / "m.pt", dataset="digits", test_accuracy=0.5)
    raw = torch.load(path, weights_only=True)
    assert raw["model"] == name and raw["in_channels"] == channels and raw["num_classes"] == 5
    assert raw["image_size"] == size and raw["dataset"] == "digits" and raw["test_accuracy"] == 0.5
    loaded = zoo.load_checkpoint(path)
    assert not loaded.training
    x = torch.rand(2, channels, size, size)
    assert torch.equal(loaded(x), model.eval()(x))


def test_atomic_write_leaves_no_temporary_file(tmp_path):
    zoo.save_checkpoint(models.build("lenet5"), tmp_path / "a.pt")
    zoo.save_checkpoint(models.build("lenet5"), tmp_path / "a.pt")  # overwrite
    assert [p.name for p in tmp_path.iterdir()] == ["a.pt"]


def test_failed_write_keeps_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = zoo.save_checkpoint(models.build("lenet5"), tmp_path / "a.pt", note="old")

    def broken_save(obj, f):
        f.write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        zoo.save_checkpoint(models.build("lenet5"), path, note="new")
    assert [p.name for p in tmp_path.iterdir()] == ["a.pt"]
    assert torch.load(path, weights_only=True)["note"] == "old"


def test_save_rejects_foreign_models(tmp_path):
    lstm = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.LSTM(2, 2))
    with pytest.raises(TypeError, match=r"^model cannot be saved: model.1 is a torch.nn.modules.rnn.LSTM, "
                                        r"which has no saved form"):
        zoo.save_checkpoint(lstm, tmp_path / "x.pt")
    with pytest.raises(TypeError, match=r"^meta\['note'\] must be plain data.*got Linear"):
        zoo.save_checkpoint(models.build("lenet5"), tmp_path / "x.pt", note=torch.nn.Linear(2, 2))
    with pytest.raises(TypeError, match="^meta key 'state_dict' is reserved"):
        zoo.save_checkpoint(models.build("lenet5"), tmp_path / "x.pt", state_dict={})
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_load_rejects_non_checkpoints(tmp_path):
    torch.save({"weights": torch.zeros(2)}, tmp_path / "x.pt")
    with pytest.raises(zoo.CheckpointError, match="not a labkit checkpoint"):
        zoo.load_checkpoint(tmp_path / "x.pt")


@pytest.mark.parametrize("dataset", ["mnist", "digits"])
@pytest.mark.parametrize("name", models.MODEL_NAMES)
def test_shipped_checkpoints_exist_are_small_and_verified(name, dataset):
    path = zoo.SHIPPED_DIR / f"{name}-{dataset}.pt"
    assert path.is_file() and path.stat().st_size < 2_000_000
    meta = torch.load(path, weights_only=True)
    assert meta["model"] == name and meta["dataset"] == dataset
    assert meta["test_accuracy"] >= (0.98 if dataset == "mnist" else 0.95)
    assert meta["weights_sha256"] == zoo.weights_digest(meta["state_dict"])


MNIST_TARGETS = {"lenet300": 0.982, "lenet5": 0.991, "lenet5-caffe": 0.991}  # Han et al. 2015 baselines


@pytest.mark.parametrize("name", sorted(MNIST_TARGETS))
def test_shipped_mnist_models_reach_the_papers_baselines_on_the_10000_test_images(name):
    model = zoo.pretrained(name, train_if_missing=False)       # MNIST is the default dataset
    assert zoo.checkpoint_info(name)["dataset"] == "mnist"
    assert train.evaluate(model, data.load("mnist", "test")) >= MNIST_TARGETS[name]


def test_a_flipped_byte_in_the_weights_is_caught(tmp_path):
    torch.manual_seed(0)
    path = zoo.save_checkpoint(models.build("lenet5"), tmp_path / "m.pt")
    blob = bytearray(path.read_bytes())
    raw = torch.load(path, weights_only=True)
    # find conv1.weight's first float in the file and flip one of its bytes
    needle = raw["state_dict"]["conv1.weight"].reshape(-1)[:4].numpy().tobytes()
    at = bytes(blob).index(needle)
    blob[at] ^= 0x01
    path.write_bytes(bytes(blob))
    with pytest.raises(zoo.CheckpointError, match="fails its checksum"):
        zoo.load_checkpoint(path)


@pytest.mark.parametrize("damage, word", [(lambda b: b"", "empty"), (lambda b: b[: len(b) // 2], "damaged or truncated")])
def test_empty_or_truncated_checkpoints_name_the_file(tmp_path, damage, word):
    path = zoo.save_checkpoint(models.build("lenet5"), tmp_path / "m.pt")
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(zoo.CheckpointError, match=word) as caught:
        zoo.load_checkpoint(path)
    assert str(path) in str(caught.value)


def test_a_checkpoint_without_its_checksum_is_refused(tmp_path):
    model = models.build("lenet5")
    torch.save({**model.config(), "state_dict": model.state_dict()}, tmp_path / "old.pt")
    with pytest.raises(zoo.CheckpointError, match="weights_sha256"):
        zoo.load_checkpoint(tmp_path / "old.pt")


def test_a_damaged_cached_checkpoint_is_retrained_with_a_warning(empty_zoo, monkeypatch):
    monkeypatch.setitem(zoo.RECIPES, ("lenet300", "digits"), zoo.Recipe(epochs=1, batch_size=256))
    zoo.pretrained("lenet300", "digits", progress=False)
    cached = zoo.cache_path("lenet300", "digits")
    cached.write_bytes(cached.read_bytes()[:1000])
    monkeypatch.setattr(zoo, "_LOADED", {})
    with pytest.raises(zoo.CheckpointError, match="truncated"):
        zoo.pretrained("lenet300", "digits", train_if_missing=False)
    with pytest.warns(RuntimeWarning, match="retraining"):
        model = zoo.pretrained("lenet300", "digits", progress=False)
    assert zoo.load_checkpoint(cached).state_dict().keys() == model.state_dict().keys()


@pytest.mark.parametrize("name", ["lenet300", "lenet5"])
def test_shipped_lenets_reach_95_percent_on_digits(name):
    model = zoo.pretrained(name, "digits", train_if_missing=False)
    assert not model.training
    assert train.evaluate(model, data.load("digits", "test")) >= 0.95


def test_pretrained_returns_independent_copies():
    a = zoo.pretrained("lenet5", train_if_missing=False)
    with torch.no_grad():
        a.conv1.weight.zero_()
    b = zoo.pretrained("lenet5", train_if_missing=False)
    assert b.conv1.weight.abs().sum() > 0


def test_missing_checkpoint_without_training_raises(empty_zoo):
    with pytest.raises(FileNotFoundError, match="lenet300"):
        zoo.pretrained("lenet300", "digits", train_if_missing=False)


def test_pretrained_trains_caches_and_reloads(empty_zoo, monkeypatch):
    monkeypatch.setitem(zoo.RECIPES, ("lenet300", "digits"), zoo.Recipe(epochs=1, batch_size=128))
    model = zoo.pretrained("lenet300", "digits", progress=False)
    cached = zoo.cache_path("lenet300", "digits")
    assert cached.is_file() and cached.parent == empty_zoo / "cache" / "zoo"
    assert zoo.checkpoint_info("lenet300", "digits")["recipe"]["epochs"] == 1  # not MNIST, the default
    monkeypatch.setattr(zoo, "_LOADED", {})  # a new process: found in the cache, not retrained
    monkeypatch.setattr(zoo, "train_model", lambda *a, **k: pytest.fail("retrained"))
    again = zoo.pretrained("lenet300", "digits", train_if_missing=False)
    x = data.load("digits", "test").tensors[0][:4]
    assert torch.equal(model(x), again(x))


def test_every_model_has_a_recipe_for_the_lab_datasets():
    for name in models.MODEL_NAMES:
        for dataset in ("digits", "mnist", "fashion-mnist"):
            assert (name, dataset) in zoo.RECIPES
    assert zoo.recipe_for("lenet5", "cifar10") == zoo.DEFAULT_RECIPE


@pytest.mark.parametrize("kwargs, word", [({"name": "alexnet"}, "name"),
                                          ({"name": "lenet5", "dataset": "imagenet"}, "dataset")])
def test_pretrained_rejects_unknown_names(kwargs, word):
    with pytest.raises(ValueError, match=word):
        zoo.pretrained(**kwargs)


def test_dataset_names_are_case_insensitive_as_in_data_load():
    x = data.load("DIGITS", "test").tensors[0][:4]
    upper = zoo.pretrained("lenet5", " DIGITS ", train_if_missing=False)
    assert torch.equal(upper(x), zoo.pretrained("lenet5", "digits", train_if_missing=False)(x))
    assert zoo.checkpoint_info("lenet5", "Digits")["dataset"] == "digits"
    with pytest.raises(ValueError, match="dataset must be one of 'digits'"):
        zoo.train_model("lenet5", "Imagenet")


def test_cached_checkpoint_from_an_older_recipe_is_retrained(empty_zoo, monkeypatch):
    monkeypatch.setitem(zoo.RECIPES, ("lenet300", "digits"), zoo.Recipe(epochs=1, batch_size=256))
    zoo.pretrained("lenet300", "digits", progress=False)
    monkeypatch.setattr(zoo, "_LOADED", {})
    monkeypatch.setitem(zoo.RECIPES, ("lenet300", "digits"), zoo.Recipe(epochs=2, batch_size=256))
    stale = zoo.pretrained("lenet300", "digits", train_if_missing=False)  # stale but allowed: the cached weights
    cached = torch.load(zoo.cache_path("lenet300", "digits"), weights_only=True)
    assert all(torch.equal(stale.state_dict()[k], v) for k, v in cached["state_dict"].items())
    assert zoo.checkpoint_info("lenet300", "digits")["recipe"]["epochs"] == 1  # not MNIST, the default
    monkeypatch.setattr(zoo, "_LOADED", {})
    zoo.pretrained("lenet300", "digits", progress=False)
    assert zoo.checkpoint_info("lenet300", "digits")["recipe"]["epochs"] == 2
    assert torch.load(zoo.cache_path("lenet300", "digits"), weights_only=True)["recipe"]["epochs"] == 2


@pytest.mark.parametrize("path, error", [(None, TypeError), (3, TypeError), ("", ValueError), (".", ValueError)])
def test_a_path_that_names_no_file_is_named(tmp_path, monkeypatch, path, error):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(error, match="^path must"):
        zoo.save_checkpoint(models.build("lenet5"), path)  # before: "" wrote a temporary file, then OSError
    with pytest.raises(error, match="^path must"):
        zoo.load_checkpoint(path)
    assert list(tmp_path.iterdir()) == []
