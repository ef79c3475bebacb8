"""The catalogue: one row (``DataFile``) per original file, one card (``DatasetCard``) per dataset,
and the checks of dataset and split names against it.

Explained in notebooks/00_why_compress.ipynb.
"""

from __future__ import annotations

from dataclasses import dataclass

from labkit.validate import require_choice


DATASETS = ("digits", "mnist", "fashion-mnist", "cifar10")
SPLITS = ("train", "test")


@dataclass(frozen=True)
class DataFile:
    """One original file: its name, size in bytes, MD5, SHA-256 (None if unpublished) and mirrors."""

    filename: str
    size: int
    md5: str
    sha256: str | None
    urls: tuple[str, ...]

    def checksum(self) -> tuple[str, str]:
        """The strongest published checksum as ``(algorithm, hex digest)``."""
        return ("sha256", self.sha256) if self.sha256 else ("md5", self.md5)


@dataclass(frozen=True)
class DatasetCard:
    """What ``info`` reports about a dataset, plus the files it is read from."""

    shape: tuple[int, int, int]
    class_names: tuple[str, ...]
    sizes: tuple[int, int]  # (train, test)
    licence: str
    source: str
    files: tuple[DataFile, ...]


def _mirrored(filename: str, size: int, md5: str, sha256: str | None, bases: tuple[str, ...]) -> DataFile:
    return DataFile(filename, size, md5, sha256, tuple(base + filename for base in bases))


_MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
_FASHION_MIRRORS = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
)
_CIFAR_MIRRORS = ("https://www.cs.toronto.edu/~kriz/",)

_DIGIT_NAMES = tuple(str(d) for d in range(10))

IDX_FILES = {  # split -> (images, labels), the same names for MNIST and Fashion-MNIST
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def _idx_card(class_names: tuple[str, ...], licence: str, source: str, mirrors: tuple[str, ...],
              checksums: tuple[tuple[int, str, str], ...]) -> DatasetCard:
    """The card of an MNIST-format dataset: 60,000 / 10,000 images ``1x28x28`` in the four IDX files
    named by ``IDX_FILES`` (train images, train labels, test images, test labels), ``checksums``
    giving ``(size, md5, sha256)`` of each in that order."""
    names = (*IDX_FILES["train"], *IDX_FILES["test"])
    return DatasetCard(shape=(1, 28, 28), class_names=class_names, sizes=(60000, 10000), licence=licence,
                       source=source, files=tuple(_mirrored(name, *sums, mirrors) for name, sums in zip(names, checksums)))


CATALOGUE: dict[str, DatasetCard] = {
    "digits": DatasetCard(
        shape=(1, 28, 28), class_names=_DIGIT_NAMES, sizes=(1438, 359),
        licence="CC BY 4.0 (UCI Optical Recognition of Handwritten Digits); shipped in scikit-learn (BSD-3-Clause)",
        source="sklearn.datasets.load_digits (Alpaydin & Kaynak, UCI, 1998): 8x8 images, values 0..16",
        files=()),
    "mnist": _idx_card(
        _DIGIT_NAMES, "CC BY-SA 3.0 (Yann LeCun & Corinna Cortes)",
        "http://yann.lecun.com/exdb/mnist/ (original IDX files)", _MNIST_MIRRORS, (
            (9912422, "f68b3c2dcbeaaa9fbdd348bbdeb94873",
             "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
            (28881, "d53e105ee54ea40749a09fcbcd1e9432",
             "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
            (1648877, "9fb629c4189551a2d022fa330f9573f3",
             "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
            (4542, "ec29112dd5afa0611ce80d1b7f02629c",
             "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
        )),
    "fashion-mnist": _idx_card(
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
        "MIT, Copyright (c) 2017 Zalando SE",
        "https://github.com/zalandoresearch/fashion-mnist (original IDX files)", _FASHION_MIRRORS, (
            (26421880, "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
             "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"),
            (29515, "25c81989df183df01b3e8a0aad5dffbe",
             "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"),
            (4422102, "bef4ecab320f06d8554ea6380940ec79",
             "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"),
            (5148, "bb300cfdad3c16e7a12a480ee83cd310",
             "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"),
        )),
    "cifar10": DatasetCard(
        shape=(3, 32, 32),
        class_names=("airplane", "automobile", "bird", "cat", "deer",
                     "dog", "frog", "horse", "ship", "truck"),
        sizes=(50000, 10000),
        licence="no formal licence; free to use, cite Krizhevsky (2009), Learning Multiple Layers of "
                "Features from Tiny Images",
        source="https://www.cs.toronto.edu/~kriz/cifar.html (python version)",
        files=(
            _mirrored("cifar-10-python.tar.gz", 170498071, "c58f30108f718f92721af3b95e74349a",
                      "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce", _CIFAR_MIRRORS),
        )),
}


def dataset_name(name, argument: str = "name") -> str:
    """The canonical spelling of a dataset name (``" MNIST "`` → ``"mnist"``), one of ``DATASETS``.

    Raises ``ValueError`` naming ``argument`` and listing the valid names. Every module that takes
    a dataset name (``zoo`` too) goes through here, so they all accept the same spellings.
    """
    if isinstance(name, str):
        name = name.strip().lower()
    return require_choice(argument, name, DATASETS)


DISPLAY_NAMES = {"digits": "digits", "mnist": "MNIST", "fashion-mnist": "Fashion-MNIST", "cifar10": "CIFAR-10"}


def display_name(name) -> str:
    """How a dataset's name is written in titles and prose (``"fashion-mnist"`` → ``"Fashion-MNIST"``).

    Accepts every spelling ``dataset_name`` accepts; raises the same ``ValueError`` otherwise.
    """
    return DISPLAY_NAMES[dataset_name(name)]


def check_split(split) -> str:
    return require_choice("split", split, SPLITS)
