"""Tests for labkit.data: the embedded digits, the IDX and CIFAR readers, lookup, verification and
downloads. Real MNIST / Fashion-MNIST come from LABKIT_DATA (or ../shared/data next to the repo)
and those tests are skipped when neither holds them; everything else builds tiny files in tmp_path.
"""
import dataclasses
import gzip
import hashlib
import io
import os
import pickle
import subprocess
import sys
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

from labkit import data

REPO = Path(__file__).resolve().parent.parent
IDX_TRAIN_IMAGES, IDX_TRAIN_LABELS = "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"


@pytest.fixture(autouse=True)
def isolated_folders(tmp_path, monkeypatch):
    """No test reads the developer's LABKIT_DATA or writes into the real cache; the MNIST shipped
    in the package is hidden too (tests of the shipped copy use ``shipped_mnist``)."""
    monkeypatch.delenv("LABKIT_DATA", raising=False)
    monkeypatch.setenv("LABKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(data.local_files, "SHIPPED_DATA", tmp_path / "no-shipped-data")
    return tmp_path / "cache"


@pytest.fixture
def shipped_mnist(monkeypatch):
    """The package's own MNIST folder, visible again."""
    folder = REPO / "labkit" / "datasets"
    monkeypatch.setattr(data.local_files, "SHIPPED_DATA", folder)
    return folder / "mnist"


@pytest.fixture(scope="module")
def shared_data():
    """The folder holding verified original MNIST / Fashion-MNIST files, or skip."""
    for folder in (os.environ.get("LABKIT_DATA"), REPO.parent / "shared" / "data"):
        if folder and (Path(folder) / "mnist" / IDX_TRAIN_IMAGES).is_file():
            return Path(folder)
    pytest.skip("no MNIST files: set LABKIT_DATA to a folder holding mnist/ and fashion-mnist/")


@pytest.fixture
def no_network(monkeypatch):
    """Make any attempt to open a URL fail loudly."""
    def refuse(*args, **kwargs):
        raise AssertionError("labkit.data.load tried to use the network")
    monkeypatch.setattr(urllib.request, "urlopen", refuse)


# ---------------------------------------------------------------------------------------------
# helpers that write tiny original-format files
# ---------------------------------------------------------------------------------------------

def idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    array = np.asarray(array, dtype=np.uint8)
    magic = magic if magic is not None else 0x0800 + array.ndim
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.tobytes()


def write_gz(path: Path, payload: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(payload, mtime=0))
    return path


def catalogue_entry(path: Path, urls=()) -> data.DataFile:
    """A catalogue row that matches the file at ``path`` exactly."""
    blob = path.read_bytes()
    return data.DataFile(path.name, len(blob), hashlib.md5(blob).hexdigest(),
                         hashlib.sha256(blob).hexdigest(), tuple(urls))


def use_files(monkeypatch, name: str, files) -> None:
    """Point the catalogue of ``name`` at our tiny files."""
    card = dataclasses.replace(data.CATALOGUE[name], files=tuple(files))
    monkeypatch.setitem(data.CATALOGUE, name, card)


def tiny_mnist(folder: Path, n: int = 6):
    """A 28x28 IDX image/label pair for the train split; returns (images, labels, files)."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = np.arange(n, dtype=np.uint8) % 10
    paths = [write_gz(folder / IDX_TRAIN_IMAGES, idx_bytes(images)),
             write_gz(folder / IDX_TRAIN_LABELS, idx_bytes(labels))]
    return images, labels, [catalogue_entry(p) for p in paths]


def cifar_batch(images: np.ndarray, labels: list[int], protocol: int = 2) -> bytes:
    """A batch the way CIFAR-10 stores one: a pickled dict with byte-string keys."""
    return pickle.dumps({b"batch_label": b"fake", b"labels": labels,
                         b"data": images.reshape(len(images), -1)}, protocol=protocol)


def tiny_cifar_tar(path: Path, per_batch: int = 2) -> dict[str, np.ndarray]:
    """A cifar-10-python.tar.gz holding 5 train batches and a test batch of ``per_batch`` images."""
    rng = np.random.default_rng(1)
    batches = {}
    with tarfile.open(path, "w:gz") as tar:
        for member in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            images = rng.integers(0, 256, size=(per_batch, 3, 32, 32), dtype=np.uint8)
            blob = cifar_batch(images, [int(v) for v in rng.integers(0, 10, per_batch)])
            info = tarfile.TarInfo(f"cifar-10-batches-py/{member}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
            batches[member] = images
    return batches


# ---------------------------------------------------------------------------------------------
# digits, the embedded default
# ---------------------------------------------------------------------------------------------

def test_digits_shapes_dtypes_and_range():
    for split, size in (("train", 1438), ("test", 359)):
        x, y = data.load("digits", split).tensors
        assert x.shape == (size, 1, 28, 28) and x.dtype == torch.float32
        assert y.shape == (size,) and y.dtype == torch.int64
        assert 0.0 <= x.min() and x.max() <= 1.0 and x.max() > 0.9
        assert torch.equal(x * 255, (x * 255).round())  # every pixel is exactly k / 255
        assert x[:, :, :4].abs().sum() == 0 and x[:, :, :, -4:].abs().sum() == 0  # MNIST's 4-pixel border
        assert set(y.tolist()) == set(range(10))


def test_digits_split_is_stratified_disjoint_and_fixed():
    labels = np.repeat(np.arange(10), 50)
    train, test = data.sklearn_digits._stratified_split(labels, 0.2, seed=0)
    assert len(np.intersect1d(train, test)) == 0
    assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(500))
    assert np.bincount(labels[test]).tolist() == [10] * 10
    again_train, again_test = data.sklearn_digits._stratified_split(labels, 0.2, seed=0)
    assert np.array_equal(train, again_train) and np.array_equal(test, again_test)

    first = data.load("digits", "test").tensors
    data.parsing.parsed.cache_clear()
    second = data.load("digits", "test").tensors
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    assert torch.bincount(second[1]).tolist() == [36, 36, 35, 37, 36, 36, 36, 36, 35, 36]


def test_load_hands_out_copies_that_cannot_corrupt_the_cache():
    x, y = data.load("digits", "train").tensors
    x.fill_(7.0)
    y.fill_(-1)
    x2, y2 = data.load("digits", "train").tensors
    assert x2.max() <= 1.0 and y2.min() >= 0


def test_load_accepts_any_case_but_rejects_unknown_names_and_splits():
    assert len(data.load("DIGITS", "test")) == 359
    with pytest.raises(ValueError, match="name must be one of 'digits', 'mnist', 'fashion-mnist', 'cifar10'"):
        data.load("imagenet")
    with pytest.raises(ValueError, match="split must be one of 'train', 'test'; got 'val'"):
        data.load("digits", "val")
    with pytest.raises(ValueError, match="name must be one of"):
        data.info(3)


# ---------------------------------------------------------------------------------------------
# eval_subset and info
# ---------------------------------------------------------------------------------------------

def test_eval_subset_is_balanced_seeded_and_capped():
    x_test, y_test = data.load("digits", "test").tensors
    x, y = data.eval_subset("digits", n=100, seed=0).tensors
    assert x.shape == (100, 1, 28, 28) and torch.bincount(y).tolist() == [10] * 10
    assert torch.equal(data.eval_subset("digits", n=100, seed=0).tensors[0], x)
    assert not torch.equal(data.eval_subset("digits", n=100, seed=1).tensors[0], x)
    rows = {tuple(row.flatten().tolist()) for row in x_test}
    assert all(tuple(row.flatten().tolist()) in rows for row in x)  # drawn from the test split
    full_x, full_y = data.eval_subset("digits", n=10_000).tensors  # capped at the split size
    assert torch.equal(full_x, x_test) and torch.equal(full_y, y_test)


@pytest.mark.parametrize("kwargs, error, pattern", [
    ({"n": 0}, ValueError, "n must be an integer >= 1"),
    ({"n": 2.5}, TypeError, "n must be an integer"),
    ({"n": "5"}, TypeError, "n must be an integer"),
    ({"seed": -1}, ValueError, "seed must be an integer in"),
    ({"name": "svhn"}, ValueError, "name must be one of"),
])
def test_eval_subset_rejects_bad_arguments(kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        data.eval_subset(**kwargs)


def test_info_describes_every_dataset():
    for name in data.DATASETS:
        card = data.info(name)
        assert card["num_classes"] == len(card["class_names"]) == 10
        assert card["licence"] and card["source"]
    assert data.info("cifar10")["shape"] == (3, 32, 32)
    assert data.info("fashion-mnist")["class_names"][9] == "Ankle boot"
    assert data.info("digits")["sizes"] == {"train": len(data.load("digits")), "test": len(data.load("digits", "test"))}


def test_cache_dir_prefers_the_environment(monkeypatch, tmp_path):
    assert data.cache_dir() == tmp_path / "cache"
    monkeypatch.delenv("LABKIT_CACHE")
    assert data.cache_dir() == REPO / "datasets" / "cache"  # running from a checkout


def fake_install(root: Path, *markers: str) -> Path:
    """A folder holding a labkit/ package, a datasets/ package and the given marker files."""
    for folder in ("labkit", "datasets"):
        (root / folder).mkdir(parents=True)
        (root / folder / "__init__.py").write_text("")
    for marker in markers:
        (root / marker).write_text("marker")
    return root


def test_cache_dir_ignores_a_datasets_package_next_to_an_installed_labkit(monkeypatch, tmp_path):
    # a non-editable install: site-packages holds labkit/ and Hugging Face's datasets/ side by side
    site = fake_install(tmp_path / "site-packages")
    monkeypatch.delenv("LABKIT_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(data.local_files, "PACKAGE_PARENT", site)
    assert data.cache_dir() == tmp_path / "home" / ".cache" / "labkit"
    monkeypatch.setattr(data.local_files, "PACKAGE_PARENT", fake_install(tmp_path / "half", "pyproject.toml"))
    assert data.cache_dir() == tmp_path / "home" / ".cache" / "labkit"
    checkout = fake_install(tmp_path / "checkout", "pyproject.toml", "datasets/README.md")
    monkeypatch.setattr(data.local_files, "PACKAGE_PARENT", checkout)
    assert data.cache_dir() == checkout / "datasets" / "cache"


# ---------------------------------------------------------------------------------------------
# IDX reader
# ---------------------------------------------------------------------------------------------

def test_read_idx_round_trips_images_and_labels(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = write_gz(tmp_path / "images.gz", idx_bytes(images))
    assert np.array_equal(data.read_idx(path, magic=2051), images)
    labels = np.array([3, 1, 4], dtype=np.uint8)
    plain = tmp_path / "labels-idx1-ubyte"
    plain.write_bytes(idx_bytes(labels))
    assert np.array_equal(data.read_idx(plain, magic=2049), labels)


@pytest.mark.parametrize("payload, magic, pattern", [
    (idx_bytes(np.zeros((2, 2, 2)), magic=2049), 2051, "magic number is 2049, expected 2051"),
    (b"\x01\x02\x08\x03" + bytes(20), 2051, "not an IDX file"),
    (idx_bytes(np.zeros((2, 2, 2)), magic=0x0D03), None, "type code 0x0d"),
    (idx_bytes(np.zeros((2, 2, 2)))[:-1], 2051, "promises shape \\(2, 2, 2\\)"),
    (b"\x00\x00", None, "not an IDX file"),
], ids=["bad-magic", "nonzero-prefix", "int32-type", "truncated", "too-short"])
def test_read_idx_rejects_malformed_files(tmp_path, payload, magic, pattern):
    path = write_gz(tmp_path / "bad.gz", payload)
    with pytest.raises(ValueError, match=pattern):
        data.read_idx(path, magic=magic)


def test_mnist_format_through_labkit_data_in_both_layouts(tmp_path, monkeypatch, no_network):
    images, labels, files = tiny_mnist(tmp_path / "nested" / "mnist")
    use_files(monkeypatch, "mnist", files)
    for root in (tmp_path / "nested", tmp_path / "nested" / "mnist"):  # $LABKIT_DATA/<name>/ and flat
        monkeypatch.setenv("LABKIT_DATA", str(root))
        x, y = data.load("mnist", "train").tensors
        assert x.shape == (6, 1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
        assert torch.equal(x[:, 0], torch.from_numpy(images).float() / 255)
        assert y.tolist() == labels.tolist()


def test_a_corrupt_file_in_labkit_data_fails_its_checksum(tmp_path, monkeypatch):
    _, _, files = tiny_mnist(tmp_path / "mnist")
    use_files(monkeypatch, "mnist", files)
    path = tmp_path / "mnist" / IDX_TRAIN_LABELS
    blob = bytearray(path.read_bytes())
    blob[-9] ^= 0xFF  # same size, different bytes
    path.write_bytes(bytes(blob))
    monkeypatch.setenv("LABKIT_DATA", str(tmp_path))
    with pytest.raises(data.ChecksumError, match=f"expected {files[1].sha256}") as caught:
        data.load("mnist", "train")
    actual = hashlib.sha256(path.read_bytes()).hexdigest()
    assert str(path) in str(caught.value) and f"its sha256 is {actual}" in str(caught.value)


def test_a_file_of_the_wrong_size_is_skipped_and_reported(tmp_path, monkeypatch):
    _, _, files = tiny_mnist(tmp_path / "mnist")
    use_files(monkeypatch, "fashion-mnist", [dataclasses.replace(f, size=f.size + 1) for f in files])
    monkeypatch.setenv("LABKIT_DATA", str(tmp_path / "mnist"))  # flat folder holding MNIST's files
    with pytest.raises(data.DatasetNotFoundError, match="not the original"):
        data.load("fashion-mnist", "train")


# ---------------------------------------------------------------------------------------------
# missing files and the network
# ---------------------------------------------------------------------------------------------

def test_missing_files_say_where_to_get_them(tmp_path, monkeypatch, no_network):
    monkeypatch.setenv("LABKIT_DATA", str(tmp_path / "empty"))
    for name in ("mnist", "fashion-mnist", "cifar10"):
        with pytest.raises(data.DatasetNotFoundError) as caught:
            data.load(name, "test")
        message = str(caught.value)
        assert isinstance(caught.value, FileNotFoundError)
        for hint in ("LABKIT_DATA", f"labkit.data.download('{name}')", "make data", "'mnist' (the default)"):
            assert hint in message


def test_importing_labkit_opens_no_socket():
    # A fresh interpreter, so modules this test session imported earlier do not hide anything.
    code = """
import socket
attempts = []

def refuse(*args, **kwargs):
    attempts.append(args)
    raise OSError("network access during import")

class NoSocket(socket.socket):
    def __init__(self, *args, **kwargs):
        refuse(*args)

socket.socket, socket.create_connection, socket.getaddrinfo = NoSocket, refuse, refuse
import labkit, labkit.data, labkit.models, labkit.zoo, labkit.measure
print("network attempts:", len(attempts))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "network attempts: 0"


def test_load_never_touches_the_network(no_network):
    assert len(data.load("digits", "train")) == 1438
    with pytest.raises(data.DatasetNotFoundError):
        data.load("mnist")


# ---------------------------------------------------------------------------------------------
# downloads (file:// URLs and a fake opener: no real network)
# ---------------------------------------------------------------------------------------------

def test_download_writes_verified_files_atomically(tmp_path, monkeypatch):
    _, _, files = tiny_mnist(tmp_path / "remote")
    urls = [(tmp_path / "remote" / f.filename).as_uri() for f in files]
    use_files(monkeypatch, "mnist", [dataclasses.replace(f, urls=(u,)) for f, u in zip(files, urls)])
    folder = data.download("mnist", root=tmp_path / "store", progress=False)
    assert folder == tmp_path / "store" / "mnist"
    assert sorted(p.name for p in folder.iterdir()) == sorted(f.filename for f in files)  # no .part left
    assert (folder / IDX_TRAIN_LABELS).read_bytes() == (tmp_path / "remote" / IDX_TRAIN_LABELS).read_bytes()

    def refuse(*args, **kwargs):
        raise AssertionError("intact files must not be fetched again")
    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    data.download("mnist", root=tmp_path / "store", progress=False)


def test_download_into_the_cache_then_load_from_it(tmp_path, monkeypatch, isolated_folders):
    images, _, files = tiny_mnist(tmp_path / "remote")
    use_files(monkeypatch, "mnist", [dataclasses.replace(f, urls=((tmp_path / "remote" / f.filename).as_uri(),))
                                     for f in files])
    assert data.download("mnist", progress=False) == isolated_folders / "mnist"
    assert torch.equal(data.load("mnist").tensors[0][:, 0], torch.from_numpy(images).float() / 255)


def test_checksum_mismatch_names_both_hashes_and_leaves_nothing(tmp_path, monkeypatch, isolated_folders):
    served = tmp_path / "remote" / IDX_TRAIN_LABELS
    write_gz(served, b"these are not the labels you are looking for")
    expected = "0" * 64
    row = dataclasses.replace(catalogue_entry(served), sha256=expected, urls=(served.as_uri(),))
    use_files(monkeypatch, "mnist", [row])
    with pytest.raises(data.ChecksumError) as caught:
        data.download("mnist", progress=False)
    actual = hashlib.sha256(served.read_bytes()).hexdigest()
    assert IDX_TRAIN_LABELS in str(caught.value)
    assert expected in str(caught.value) and actual in str(caught.value)
    assert not isolated_folders.exists()  # not even an empty folder


def test_download_tries_the_next_mirror(tmp_path, monkeypatch):
    served = write_gz(tmp_path / "remote" / IDX_TRAIN_LABELS, idx_bytes(np.arange(5)))
    row = dataclasses.replace(catalogue_entry(served),
                              urls=("https://mirror.invalid/" + IDX_TRAIN_LABELS, served.as_uri()))
    use_files(monkeypatch, "mnist", [row])
    real_urlopen = urllib.request.urlopen

    def first_mirror_down(url, *args, **kwargs):
        if url.startswith("https://"):
            raise urllib.error.URLError("mirror down")
        return real_urlopen(url, *args, **kwargs)
    monkeypatch.setattr(urllib.request, "urlopen", first_mirror_down)
    folder = data.download("mnist", root=tmp_path / "store", progress=False)
    assert (folder / IDX_TRAIN_LABELS).read_bytes() == served.read_bytes()


def test_offline_download_points_to_labkit_data_and_the_shipped_mnist(tmp_path, monkeypatch, isolated_folders):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")
    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(data.DownloadError) as caught:
        data.download("fashion-mnist", progress=False)
    message = str(caught.value)
    assert "LABKIT_DATA" in message and "'mnist' (the default)" in message and "amazonaws" in message
    assert not isolated_folders.exists()


def test_download_validates_its_name():
    with pytest.raises(ValueError, match="name must be one of"):
        data.download("mnist2", progress=False)


def test_command_line_download(tmp_path, monkeypatch, capsys):
    _, _, files = tiny_mnist(tmp_path / "remote")
    use_files(monkeypatch, "mnist", [dataclasses.replace(f, urls=((tmp_path / "remote" / f.filename).as_uri(),))
                                     for f in files])
    assert data.main(["download", "mnist", "--root", str(tmp_path / "store"), "--quiet"]) == 0
    assert str(tmp_path / "store" / "mnist") in capsys.readouterr().out
    use_files(monkeypatch, "mnist", [dataclasses.replace(files[0], urls=("file:///nonexistent/x.gz",))])
    assert data.main(["download", "mnist", "--root", str(tmp_path / "other"), "--quiet"]) == 1
    assert "LABKIT_DATA" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# CIFAR-10 reader
# ---------------------------------------------------------------------------------------------

def test_cifar_reader_on_a_tiny_tarball(tmp_path, monkeypatch, no_network):
    tarball = tmp_path / "cifar-10-python.tar.gz"
    batches = tiny_cifar_tar(tarball)
    use_files(monkeypatch, "cifar10", [catalogue_entry(tarball)])
    monkeypatch.setenv("LABKIT_DATA", str(tmp_path))
    x, y = data.load("cifar10", "train").tensors
    assert x.shape == (10, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    expected = np.concatenate([batches[f"data_batch_{i}"] for i in range(1, 6)])
    assert torch.equal(x, torch.from_numpy(expected).float() / 255)  # channel-first R, G, B
    x_test, _ = data.load("cifar10", "test").tensors
    assert torch.equal(x_test, torch.from_numpy(batches["test_batch"]).float() / 255)


def test_cifar_batches_from_numpy_1_pickles_still_load(tmp_path):
    images = np.arange(2 * 3072, dtype=np.uint32).astype(np.uint8).reshape(2, 3, 32, 32)
    old_style = cifar_batch(images, [0, 9]).replace(b"numpy._core", b"numpy.core")
    x, y = data.parsing._read_cifar_batch(io.BytesIO(old_style), "old")
    assert np.array_equal(x, images) and y.tolist() == [0, 9]


def test_cifar_reader_refuses_pickles_that_run_code():
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))
    with pytest.raises(pickle.UnpicklingError, match="refusing to load"):
        data.parsing._read_cifar_batch(io.BytesIO(pickle.dumps({b"data": Evil()})), "evil")


def test_cifar_reader_reports_missing_batches(tmp_path):
    tarball = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        blob = cifar_batch(np.zeros((1, 3, 32, 32), np.uint8), [0])
        info = tarfile.TarInfo("cifar-10-batches-py/test_batch")
        info.size = len(blob)
        tar.addfile(info, io.BytesIO(blob))
    with pytest.raises(ValueError, match="data_batch_1"):
        data.read_cifar_tar(tarball, "train")


# ---------------------------------------------------------------------------------------------
# the real MNIST and Fashion-MNIST (when the original files are available)
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_real_idx_datasets_from_labkit_data(name, shared_data, monkeypatch, no_network):
    monkeypatch.setenv("LABKIT_DATA", str(shared_data))
    for split, size in (("train", 60000), ("test", 10000)):
        x, y = data.load(name, split).tensors
        assert x.shape == (size, 1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
        assert x.min() == 0.0 and x.max() == 1.0
        assert torch.equal(x[:64] * 255, (x[:64] * 255).round())
        assert torch.bincount(y, minlength=10).min() > size // 20
    monkeypatch.setenv("LABKIT_DATA", str(shared_data / name))  # the flat layout works too
    assert len(data.load(name, "test")) == 10000


def test_real_mnist_first_labels(shared_data, monkeypatch):
    monkeypatch.setenv("LABKIT_DATA", str(shared_data))
    assert data.load("mnist", "train").tensors[1][:8].tolist() == [5, 0, 4, 1, 9, 2, 1, 3]
    assert data.load("mnist", "test").tensors[1][:8].tolist() == [7, 2, 1, 0, 4, 1, 4, 9]
    subset = data.eval_subset("mnist", n=512, seed=0)
    assert len(subset) == 512 and torch.bincount(subset.tensors[1]).min() >= 51


# ---------------------------------------------------------------------------------------------
# the MNIST shipped inside the package: the default, offline, verified
# ---------------------------------------------------------------------------------------------

def test_shipped_mnist_is_the_original_and_the_default(shipped_mnist, no_network):
    for row in data.CATALOGUE["mnist"].files:
        path = shipped_mnist / row.filename
        assert path.stat().st_size == row.size
        assert data.local_files._file_digest(path, "sha256") == row.sha256
    x, y = data.load().tensors                      # no name: MNIST's train split
    assert x.shape == (60000, 1, 28, 28) and y[:8].tolist() == [5, 0, 4, 1, 9, 2, 1, 3]
    assert len(data.load(split="test")) == 10000 and len(data.eval_subset()) == 512
    assert data.download("mnist", progress=False) == shipped_mnist   # nothing to fetch
    assert (shipped_mnist / "README.md").read_text().count("CC BY-SA 3.0") >= 1


def test_a_damaged_shipped_file_is_refused(shipped_mnist, tmp_path, monkeypatch):
    damaged = tmp_path / "datasets" / "mnist"
    damaged.mkdir(parents=True)
    for row in data.CATALOGUE["mnist"].files:
        blob = bytearray((shipped_mnist / row.filename).read_bytes())
        if row.filename.startswith("t10k-labels"):
            blob[-1] ^= 0xFF                          # same size, one byte flipped
        (damaged / row.filename).write_bytes(bytes(blob))
    monkeypatch.setattr(data.local_files, "SHIPPED_DATA", tmp_path / "datasets")
    with pytest.raises(data.ChecksumError, match="t10k-labels"):
        data.load("mnist", "test")


def test_labkit_data_takes_precedence_over_the_shipped_copy(shipped_mnist, tmp_path, monkeypatch):
    _, _, files = tiny_mnist(tmp_path / "mine" / "mnist")
    use_files(monkeypatch, "mnist", files)
    monkeypatch.setenv("LABKIT_DATA", str(tmp_path / "mine"))
    assert len(data.load("mnist", "train")) < 60000   # the tiny files, not the shipped ones


def test_display_name_spells_every_dataset_for_titles_and_refuses_unknown_names():
    assert [data.display_name(n) for n in data.DATASETS] == ["digits", "MNIST", "Fashion-MNIST", "CIFAR-10"]
    assert data.display_name(" Fashion-MNIST ") == "Fashion-MNIST"
    with pytest.raises(ValueError, match="one of"):
        data.display_name("imagenet")
