"""labkit.distill.transfer (transfer sets with and without labels), labkit.distill.augment (torchvision
augmentation) and distillation on an unlabelled transfer set."""
import pytest
import torch
from torch.utils.data import TensorDataset
from torchvision.transforms import v2

from labkit import train
from labkit.distill import (AugmentedDataset, MLPStudent, augmented_copies, distill, jitter, random_affine,
                            random_subset, split_labelled, teacher_logits)


def dataset(n=200, classes=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    return TensorDataset(torch.rand(n, 1, 28, 28, generator=g), y[torch.randperm(n, generator=g)])


# ----------------------------------------------------------------------------- transfer sets
def test_random_subset_is_seeded_without_replacement_and_keeps_labels():
    full = dataset()
    a, b, c = random_subset(full, 50, seed=3), random_subset(full, 50, seed=3), random_subset(full, 50, seed=4)
    assert len(a) == 50 and torch.equal(a.tensors[0], b.tensors[0]) and not torch.equal(a.tensors[0], c.tensors[0])
    rows = {tuple(full.tensors[0][i].flatten()[:6].tolist()): int(full.tensors[1][i]) for i in range(len(full))}
    keys = [tuple(x.flatten()[:6].tolist()) for x in a.tensors[0]]
    assert len(set(keys)) == 50                                               # no image twice
    assert all(rows[k] == int(y) for k, y in zip(keys, a.tensors[1]))         # each keeps its own label


def test_split_labelled_gives_k_per_class_and_the_rest_without_labels():
    full = dataset()
    labelled, unlabelled = split_labelled(full, per_class=3, seed=1)
    assert torch.bincount(labelled.tensors[1], minlength=10).tolist() == [3] * 10
    assert isinstance(unlabelled, torch.Tensor) and unlabelled.shape == (170, 1, 28, 28)
    together = torch.cat([labelled.tensors[0], unlabelled]).flatten(1)
    assert torch.unique(together, dim=0).shape[0] == 200                      # a partition: nothing lost or repeated
    again, _ = split_labelled(full, per_class=3, seed=1)
    other, _ = split_labelled(full, per_class=3, seed=2)
    assert torch.equal(again.tensors[0], labelled.tensors[0]) and not torch.equal(other.tensors[0], labelled.tensors[0])
    _, first = split_labelled(full, per_class=3, seed=1, unlabelled=40)
    assert torch.equal(first, unlabelled[:40])                               # a prefix of the same random order


def test_transfer_set_bad_arguments():
    full = dataset()
    with pytest.raises(ValueError, match=r"n must be an integer in \[1, 200\]"):
        random_subset(full, 201)
    with pytest.raises(ValueError, match=r"per_class must be an integer in \[1, 20\]"):
        split_labelled(full, 21)
    with pytest.raises(ValueError, match=r"unlabelled must be an integer in \[0, 190\]"):
        split_labelled(full, 1, unlabelled=191)
    with pytest.raises(TypeError, match="labelled TensorDataset"):
        split_labelled(full.tensors[0], 2)


# ----------------------------------------------------------------------------- augmentation
def test_jitter_is_a_whole_pixel_shift_of_at_most_max_shift():
    image = torch.zeros(1, 28, 28)
    image[0, 10:18, 12:16] = torch.rand(8, 4) + 0.5
    shifts = set()
    for out in augmented_copies(image[None], jitter(2), copies=60, seed=0):
        found = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                 if torch.equal(torch.roll(image, (dy, dx), dims=(1, 2)), out)]
        assert len(found) == 1, "not a shift of the image by whole pixels within ±2"
        shifts.add(found[0])
    assert len(shifts) > 10                                                   # many different shifts drawn


def test_augmented_copies_are_seeded_shaped_and_leave_the_global_rng_alone():
    x = dataset(8).tensors[0]
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    a = augmented_copies(x, random_affine(), copies=3, seed=7)
    assert torch.equal(torch.rand(3), expected_next)                          # global generator untouched
    b, c = augmented_copies(x, random_affine(), copies=3, seed=7), augmented_copies(x, random_affine(), copies=3, seed=8)
    assert a.shape == (24, 1, 28, 28) and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.equal(a[:8], a[8:16])                                    # copies differ from each other
    same = augmented_copies(x, v2.Identity(), copies=2)
    assert torch.equal(same[:8], x) and torch.equal(same[8:], x)              # row k·N + i is copy k of image i


def test_augmented_dataset_draws_a_new_augmentation_on_every_read():
    full = dataset(4)
    aug = AugmentedDataset(full, random_affine(degrees=30))
    torch.manual_seed(0)
    first, label = aug[1]
    second, _ = aug[1]
    assert label == full.tensors[1][1] and first.shape == (1, 28, 28) and not torch.equal(first, second)
    model = MLPStudent(hidden=4)
    train.set_seed(0)
    train.fit(model, aug, epochs=1, batch_size=2, progress=False)             # train.fit accepts it as it is


def test_augmentation_bad_arguments():
    x = dataset(4).tensors[0]
    with pytest.raises(ValueError, match=r"max_shift must be an integer in \[1, 27\]"):
        jitter(28)
    with pytest.raises(ValueError, match=r"degrees must be a finite number in \[0.0, 180.0\]"):
        random_affine(degrees=-1)
    with pytest.raises(ValueError, match=r"copies must be an integer in \[1, 1000\]"):
        augmented_copies(x, jitter(), copies=0)
    with pytest.raises(TypeError, match="transform must be callable"):
        augmented_copies(x, "flip")
    with pytest.raises(ValueError, match=r"x must be a batch of images \[N, C, H, W\]"):
        augmented_copies(x[0], jitter())
    with pytest.raises(ValueError, match="transform must keep the image shape"):
        augmented_copies(x, v2.CenterCrop(20))
    with pytest.raises(ValueError, match="at least one sample"):
        AugmentedDataset(TensorDataset(x[:0], torch.zeros(0)), jitter())


# ----------------------------------------------------------------------------- unlabelled transfer sets
def test_unlabelled_distillation_never_reads_labels_and_matches_the_labelled_run():
    """With alpha = 1 the loss has no hard-label term: a run on bare images equals a run whose labels are
    garbage, and the student ends up agreeing with the teacher on most of the transfer set."""
    x = dataset(128).tensors[0]
    teacher = MLPStudent(hidden=16)
    logits = teacher_logits(teacher, x)
    students = []
    for labels in (None, torch.randint(0, 10, (128,), generator=torch.Generator().manual_seed(5))):
        train.set_seed(0)
        student = MLPStudent(hidden=8)
        history = distill(student, None, x if labels is None else (x, labels), T=2.0, alpha=1.0, epochs=15,
                          batch_size=32, lr=1e-2, cached_logits=logits, progress=False)
        students.append((student, history))
    (a, history_a), (b, _) = students
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    agreement = (teacher_logits(a, x).argmax(1) == logits.argmax(1)).float().mean().item()
    assert history_a[-1]["train_acc"] > 0.8 and agreement > 0.8            # train_acc = agreement with the teacher
