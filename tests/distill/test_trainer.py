"""labkit.distill.distill: the teacher stays frozen, alpha=0 is train.fit, soft labels carry more than hard ones."""
import copy

import pytest
import torch
from torch import nn

from labkit import measure, train
from labkit.distill import MLPStudent, distill, teacher_logits


def images(n=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g)


def bn_teacher():
    """A teacher with BatchNorm and Dropout: running it in train mode would change it and add noise."""
    torch.manual_seed(1)
    return nn.Sequential(nn.Conv2d(1, 4, 3, stride=2), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                         nn.Dropout(0.5), nn.Linear(4 * 13 * 13, 10))


@pytest.mark.parametrize("cache", [True, False])
def test_teacher_is_untouched_and_its_mode_restored(cache):
    teacher = bn_teacher().train()                                       # handed over in train mode
    before = copy.deepcopy(teacher.state_dict())
    student = MLPStudent(hidden=8)
    distill(student, teacher, images(), T=4.0, alpha=0.9, epochs=2, batch_size=32, cache=cache, progress=False)
    assert teacher.training and all(m.training for m in teacher.modules())
    after = teacher.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)          # weights and BN running stats
    assert all(p.grad is None for p in teacher.parameters())
    assert student.training                                              # the student's mode is restored too


def test_cached_and_per_batch_teacher_logits_give_the_same_student():
    data, teacher = images(), bn_teacher()
    students = []
    for cache in (True, False):
        torch.manual_seed(0)
        student = MLPStudent(hidden=8)
        distill(student, teacher, data, T=3.0, alpha=0.5, epochs=2, batch_size=32, cache=cache, progress=False)
        students.append(student)
    for a, b in zip(students[0].parameters(), students[1].parameters()):
        assert torch.allclose(a, b, atol=1e-6)
    logits = teacher_logits(teacher, data)
    assert logits.shape == (96, 10) and torch.equal(logits, train.predict(teacher, data))


def test_alpha_zero_reproduces_train_fit_exactly():
    data = images()
    torch.manual_seed(0)
    fitted = MLPStudent(hidden=16)
    distilled = copy.deepcopy(fitted)
    history_fit = train.fit(fitted, data, epochs=2, lr=3e-3, batch_size=32, seed=5, progress=False)
    history = distill(distilled, bn_teacher(), data, T=4.0, alpha=0.0, epochs=2, lr=3e-3, batch_size=32, seed=5,
                      progress=False)
    for a, b in zip(fitted.parameters(), distilled.parameters()):
        assert torch.equal(a, b)
    assert [h["loss"] for h in history] == pytest.approx([h["loss"] for h in history_fit], rel=1e-6)
    assert set(history[0]) == {"epoch", "loss", "train_acc", "val_acc"}


def test_soft_labels_teach_more_than_hard_labels_from_few_examples():
    """A linear teacher on 20-d inputs; 40 training samples. The student trained on the teacher's soft
    labels (alpha=1) agrees with the teacher on held-out data far more often than one trained on the
    same samples' hard labels (alpha=0): each soft label carries C numbers, a hard one log2(C) bits."""
    g = torch.Generator().manual_seed(0)
    teacher = nn.Linear(20, 5)
    with torch.no_grad():
        teacher.weight.copy_(torch.randn(5, 20, generator=g))
        teacher.bias.zero_()
    x, held_out = torch.randn(40, 20, generator=g), torch.randn(2000, 20, generator=g)
    y, y_held = teacher(x).argmax(1).detach(), teacher(held_out).argmax(1).detach()
    agreement = {}
    for alpha in (0.0, 1.0):
        torch.manual_seed(0)
        student = nn.Linear(20, 5)
        distill(student, teacher, (x, y), T=4.0, alpha=alpha, epochs=300, lr=3e-2, batch_size=40, progress=False)
        agreement[alpha] = train.evaluate(student, (held_out, y_held))
    assert agreement[1.0] > 0.95                                       # measured 0.982
    assert agreement[1.0] > agreement[0.0] + 0.3, agreement             # hard labels: 0.522


def test_any_labelled_dataset_is_accepted():
    """A Subset (not a TensorDataset) gives the same student as the equivalent (x, y) tensors."""
    x, y = images(40)
    students = []
    for train_data in (torch.utils.data.Subset(torch.utils.data.TensorDataset(x, y), range(40)), (x, y)):
        torch.manual_seed(0)
        student = MLPStudent(hidden=8)
        distill(student, bn_teacher(), train_data, epochs=1, batch_size=16, progress=False)
        students.append(student)
    assert all(torch.equal(a, b) for a, b in zip(students[0].parameters(), students[1].parameters()))


def test_history_val_acc_and_student_builder():
    data = images(64)
    torch.manual_seed(0)
    student = MLPStudent(hidden=(16, 8))
    assert [n for n, _ in student.named_children()] == ["flatten", "fc1", "relu1", "fc2", "relu2", "fc3"]
    assert measure.count_parameters(student) == 784 * 16 + 16 + 16 * 8 + 8 + 8 * 10 + 10
    assert measure.report(student, with_sizes=False).totals["macs"] == 784 * 16 + 16 * 8 + 8 * 10
    history = distill(student, bn_teacher(), data, epochs=3, val_data=data, progress=False)
    assert [h["epoch"] for h in history] == [1, 2, 3] and all(0 <= h["val_acc"] <= 1 for h in history)
    assert MLPStudent(hidden=(), in_channels=3, image_size=32)(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_bad_arguments():
    data, teacher = images(32), bn_teacher()
    student = MLPStudent(hidden=4)
    with pytest.raises(ValueError, match=r"T must be a finite number in \(0"):
        distill(student, teacher, data, T=0.0, progress=False)
    with pytest.raises(ValueError, match=r"alpha must be a finite number in \[0.0, 1.0\]"):
        distill(student, teacher, data, alpha=2.0, progress=False)
    with pytest.raises(ValueError, match="epochs"):
        distill(student, teacher, data, epochs=0, progress=False)
    with pytest.raises(TypeError, match="student must be a torch.nn.Module"):
        distill("mlp", teacher, data, progress=False)
    with pytest.raises(TypeError, match="teacher must be a torch.nn.Module"):
        distill(student, "resnet", data, progress=False)
    with pytest.raises(ValueError, match="teacher must be a torch.nn.Module when cached_logits is None"):
        distill(student, None, data, progress=False)
    with pytest.raises(ValueError, match="two different models"):
        distill(student, student, data, progress=False)
    with pytest.raises(ValueError, match=r"cached_logits must be a tensor \[N, classes\] with N = 32"):
        distill(student, None, data, cached_logits=torch.zeros(31, 10), progress=False)
    nan_logits = torch.zeros(32, 10)
    nan_logits[3, 3] = float("nan")
    with pytest.raises(ValueError, match="cached_logits must contain only finite values"):
        distill(student, None, data, cached_logits=nan_logits, progress=False)
    with pytest.raises(ValueError, match="unlabelled train_data .* needs alpha = 1"):
        distill(student, teacher, data[0], alpha=0.9, progress=False)
    with pytest.raises(ValueError, match=r"unlabelled train_data must be a float tensor of images \[N, C, H, W\]"):
        distill(student, teacher, data[0][0], alpha=1.0, progress=False)
    with pytest.raises(TypeError, match="train_data must yield"):
        distill(student, teacher, torch.utils.data.TensorDataset(data[0]), progress=False)
    with pytest.raises(ValueError, match="hidden must be an integer in"):
        MLPStudent(hidden=0)
    with pytest.raises(TypeError, match="hidden must be an int or a tuple"):
        MLPStudent(hidden="32")
