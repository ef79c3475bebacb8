"""Datasets for the lab: real MNIST (shipped, the default), ``digits``, Fashion-MNIST and CIFAR-10.

Every dataset comes back the same way, so every model runs on every dataset:
``load(name, split)`` returns a ``TensorDataset`` of images ``x`` float32 ``[N, C, H, W]`` whose
pixels are exactly ``uint8 / 255`` (no mean/std normalisation) and labels ``y`` int64 ``[N]``.

Data policy (see ``datasets/README.md``):

* ``mnist``, the default, ships inside the package: its four original IDX files (CC BY-SA 3.0,
  Yann LeCun & Corinna Cortes) lie in ``labkit/datasets/mnist/``, so it works offline, always.
  Its 10,000 test images resolve a difference of 0.01 points between two methods' error counts.
* ``digits`` ships inside scikit-learn (1,438 / 359 small 8x8 images): fast unit tests.
* The other datasets are read from their *original* files (IDX ``.gz`` files, the CIFAR-10 python
  tarball), looked up first in the folder named by the environment variable ``LABKIT_DATA``, then
  in the package (MNIST), then in the cache folder ``cache_dir()``. Every file is checked against the catalogue below (size,
  then its SHA-256, or MD5 where no SHA-256 is published) before it is parsed.
* ``load`` never touches the network. Only an explicit ``download(name)`` (or ``make data``, or
  ``python -m labkit.data download mnist``) does, and it writes each file to a temporary file in
  the cache folder and renames it into place only after the checksum matched.

One concept per module, every public name re-exported here (``data.load``): ``catalogue`` (the
original files, ``dataset_name``), ``errors``, ``local_files`` (finding and verifying, ``cache_dir``),
``fetch`` (``download``), ``parsing`` (``read_idx``, ``read_cifar_tar``), ``sklearn_digits``,
``loading`` (``load``, ``eval_subset``, ``info``) and ``cli`` (``python -m labkit.data``).
"""

from labkit.data.catalogue import CATALOGUE, DATASETS, SPLITS, DatasetCard, DataFile, dataset_name, display_name
from labkit.data.cli import main
from labkit.data.errors import ChecksumError, DatasetNotFoundError, DownloadError
from labkit.data.fetch import download
from labkit.data.loading import eval_subset, info, load
from labkit.data.local_files import PACKAGE_PARENT, SHIPPED_DATA, cache_dir
from labkit.data.parsing import read_cifar_tar, read_idx

__all__ = ["CATALOGUE", "ChecksumError", "DATASETS", "DataFile", "DatasetCard", "DatasetNotFoundError",
           "DownloadError", "PACKAGE_PARENT", "SHIPPED_DATA", "SPLITS", "cache_dir", "dataset_name", "display_name", "download",
           "eval_subset", "info", "load", "main", "read_cifar_tar", "read_idx"]
