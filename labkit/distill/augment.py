"""Data augmentation for distillation: more images to ask the teacher about.

Seed 004 §2.2 lists "data augmentation" as the fifth family of distillation methods: give the
student more useful training inputs. A teacher can label *any* image, so every augmented image is a
new training example with a soft label — without a single new human label. The transforms are
torchvision's (``torchvision.transforms.v2``), the tool practitioners use:

- ``jitter(max_shift)``        shift by up to ``max_shift`` pixels in each direction (pad, then crop):
                               Hinton et al. 2015 jitter MNIST "by up to two pixels in any direction";
- ``random_affine(...)``       small rotations, shifts and zooms of a digit;
- ``augmented_copies(x, transform, copies, seed)``  a fixed, seeded set of augmented images (offline):
                               the teacher labels them once and its logits are cached, like the originals';
- ``AugmentedDataset(dataset, transform)``  a fresh augmentation every time an image is read (online),
                               for ``train.fit`` (a teacher trained with jitter).

torchvision's random transforms draw one set of parameters per call, so they are applied image by
image (a call on a whole batch would move every image the same way). Explained in
notebooks/11_distillation_soft_labels.ipynb.
"""
from __future__ import annotations

import torch
from torch.utils.data import Dataset
from torchvision.transforms import v2

from labkit.validate import require_float, require_float_tensor, require_int


def jitter(max_shift: int = 2, size: int = 28) -> v2.Transform:
    """Shift an image ``[C, size, size]`` by a random whole number of pixels in ``[-max_shift, max_shift]``
    along each axis, filling with 0: ``RandomCrop(size, padding=max_shift)``. ``max_shift`` in [1, size).
    Explained in notebooks/11_distillation_soft_labels.ipynb.
    """
    size = require_int("size", size, 2, 4096)
    max_shift = require_int("max_shift", max_shift, 1, size - 1)
    return v2.RandomCrop(size, padding=max_shift)


def random_affine(degrees: float = 15.0, translate: float = 0.1, scale: float = 0.1) -> v2.Transform:
    """Rotate by up to ``±degrees``, shift by up to ``translate`` of the width and height, and zoom by a
    factor in ``[1 − scale, 1 + scale]``: torchvision's ``RandomAffine``, bilinear, filled with 0.
    ``degrees`` in [0, 180], ``translate`` in [0, 0.5], ``scale`` in [0, 0.5].
    Explained in notebooks/11_distillation_soft_labels.ipynb.
    """
    degrees = require_float("degrees", degrees, 0.0, 180.0)
    translate = require_float("translate", translate, 0.0, 0.5)
    scale = require_float("scale", scale, 0.0, 0.5)
    return v2.RandomAffine(degrees=degrees, translate=(translate, translate), scale=(1 - scale, 1 + scale),
                           interpolation=v2.InterpolationMode.BILINEAR)


def _check_transform(transform):
    if not callable(transform):
        raise TypeError(f"transform must be callable (a torchvision transform), got {type(transform).__name__}")
    return transform


def augmented_copies(x: torch.Tensor, transform, copies: int = 1, seed: int = 0) -> torch.Tensor:
    """``copies`` augmented versions of every image of ``x``: float32 ``[copies·N, C, H, W]``.

    ``x`` float ``[N, C, H, W]``; ``transform`` maps one image ``[C, H, W]`` to one image of the same
    shape (``jitter()``, ``random_affine()`` or any torchvision transform). Copy ``k`` of image ``i`` is
    row ``k·N + i``. Seeded: the same ``seed`` gives the same images, and the global random state is
    left as it was. Explained in notebooks/11_distillation_soft_labels.ipynb.
    """
    require_float_tensor("x", x, allow_empty=False)
    if x.dim() != 4:
        raise ValueError(f"x must be a batch of images [N, C, H, W], got shape {tuple(x.shape)}")
    _check_transform(transform)
    copies = require_int("copies", copies, 1, 1000)
    seed = require_int("seed", seed, 0, 2**32 - 1)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        out = torch.stack([transform(image) for _ in range(copies) for image in x])
    if out.shape[1:] != x.shape[1:]:
        raise ValueError(f"transform must keep the image shape {tuple(x.shape[1:])}, got {tuple(out.shape[1:])}")
    return out


class AugmentedDataset(Dataset):
    """``dataset`` with ``transform`` applied to the image each time a sample is read (online augmentation).

    ``dataset`` yields ``(x [C, H, W], y)``; ``AugmentedDataset(dataset, transform)[i]`` is
    ``(transform(x_i), y_i)``, different on every read. The randomness is torch's global generator, so
    ``train.set_seed(seed)`` before ``train.fit`` makes a run repeatable. Explained in
    notebooks/11_distillation_soft_labels.ipynb.
    """

    def __init__(self, dataset, transform):
        if not isinstance(dataset, Dataset):
            raise TypeError(f"dataset must be a torch Dataset of (image, label), got {type(dataset).__name__}")
        if len(dataset) == 0:
            raise ValueError("dataset must hold at least one sample, got an empty dataset")
        self.dataset, self.transform = dataset, _check_transform(transform)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index):
        image, label = self.dataset[index]
        return self.transform(image), label
