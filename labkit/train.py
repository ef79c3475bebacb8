"""Training and evaluation: ``set_seed``, ``fit``, ``run_epochs``, ``evaluate``, ``predict``.

One plain mini-batch loop that every chapter reuses: the sparse-training chapters add a
``regularizer`` to the loss, the pruning chapters re-apply masks in ``after_step``, distillation
brings its own ``step`` (the loss against the teacher) to ``run_epochs``, the loop ``fit`` runs on. Training is repeatable: the seed fixes the initial shuffle order
through a seeded ``DataLoader`` generator, and the same seed gives the same weights twice *at the same
number of torch threads* (``torch.set_num_threads``): with 1 and 2 threads the float sums inside
matrix products are split differently, the last bits differ, and training amplifies them.

Bad input is refused with the argument's name rather than passed on to torch: labels that are not
class indices of the model, images of the wrong shape, ``x`` and ``y`` of different lengths, NaN or
Inf pixels, a model on the ``meta`` device (or, for ``fit``, in float16), and a loss that turns NaN.
"""
from __future__ import annotations

import math
import random
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import (BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler,
                              TensorDataset)
from tqdm.auto import tqdm

from labkit.validate import nonfinite_parameters, require_choice, require_float, require_int, require_module

OPTIMIZERS = ("adam", "sgd")
LR_SCHEDULES = ("constant", "cosine")


def set_seed(seed: int) -> None:
    """Seed Python's ``random``, NumPy and torch so that model initialisation and shuffling repeat.

    ``seed`` is an integer in [0, 2**32 - 1]. The same seed gives the same weights only at the same
    thread count: ``torch.set_num_threads(1)`` and ``(2)`` split the float sums of a matrix product
    differently, so the last bits of the results differ and a few epochs of training turn that into
    different weights (and accuracies that differ in the second decimal). Fix the thread count next
    to the seed — every notebook has a ``threads`` parameter for that.
    Explained in notebooks/00_why_compress.ipynb.
    """
    seed = require_int("seed", seed, 0, 2**32 - 1)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def as_dataset(data, name: str = "data", *, labelled: bool = False) -> Dataset:
    """Accept a non-empty Dataset, an ``(x, y)`` pair of tensors, or (unless ``labelled``) a bare ``x``.

    Checked here so that an empty split or a bare ``x`` tensor given to ``fit``/``evaluate`` fails
    with the argument's name, not with a sampler error or "not enough values to unpack" from torch.
    """
    dataset = _wrap(data, name)
    if len(dataset) == 0:
        raise ValueError(f"{name} must hold at least one sample, got an empty dataset")
    if labelled and (not isinstance(dataset[0], (tuple, list)) or len(dataset[0]) != 2):
        raise TypeError(f"{name} must yield (x, y) pairs: a Dataset of (image, label) or an (x, y) pair "
                        f"of tensors; a bare x tensor has no labels (use predict for that)")
    return dataset


def as_tensors(data, name: str = "data", *, labelled: bool = False,
               image_dims: int | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Anything ``as_dataset`` accepts, stacked: ``(x [N, ...], y [N] or None)`` (None: no labels).

    With ``image_dims`` (e.g. 4 for ``[N, C, H, W]``), ``x`` must be a float tensor with that many
    dimensions, else ``TypeError`` naming ``name`` and the shape it got."""
    dataset = as_dataset(data, name, labelled=labelled)
    if isinstance(dataset, TensorDataset):
        tensors = dataset.tensors
    else:
        items = [dataset[i] for i in range(len(dataset))]
        pairs = isinstance(items[0], (tuple, list))
        tensors = ((torch.stack([torch.as_tensor(d[0]) for d in items]), torch.tensor([int(d[1]) for d in items]))
                   if pairs else (torch.stack([torch.as_tensor(d) for d in items]),))
    x, y = tensors[0], (tensors[1] if len(tensors) > 1 else None)
    if image_dims is not None and (not x.is_floating_point() or x.dim() != image_dims):
        raise TypeError(f"{name} must be a float tensor of {image_dims} dimensions (an image batch "
                        f"{'[N, C, H, W]' if image_dims == 4 else ''}), an (x, y) pair or a TensorDataset; "
                        f"got {x.dtype} of shape {list(x.shape)}")
    return x, y


def _wrap(data, name: str) -> Dataset:
    if isinstance(data, Dataset):
        return data
    if isinstance(data, torch.Tensor):
        return TensorDataset(data)
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data):
        if data[0].dim() == 0 or data[1].dim() == 0 or len(data[0]) != len(data[1]):
            raise ValueError(f"{name} must be an (x, y) pair of equal length, got x of shape {list(data[0].shape)} "
                             f"and y of shape {list(data[1].shape)}")
        return TensorDataset(*data)
    raise TypeError(f"{name} must be a torch Dataset, an (x, y) pair of tensors or an x tensor, "
                    f"got {type(data).__name__}")


def batch_loader(dataset: Dataset, batch_size: int, generator: torch.Generator | None) -> DataLoader:
    """Batches in a seeded random order (``generator``) or in order (``None``).

    A ``TensorDataset`` is indexed with a whole list of indices at once (``x[idx]``), which is
    much faster than stacking one sample at a time; other datasets use the ordinary collate path.
    """
    sampler = RandomSampler(dataset, generator=generator) if generator else SequentialSampler(dataset)
    if isinstance(dataset, TensorDataset):
        batches = BatchSampler(sampler, batch_size, drop_last=False)
        return DataLoader(dataset, sampler=batches, batch_size=None)
    return DataLoader(dataset, sampler=sampler, batch_size=batch_size)


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (CPU for a model without parameters)."""
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def _float_dtype(model: nn.Module) -> torch.dtype:
    """The dtype of the model's first floating-point parameter (float32 for a model without one)."""
    return next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)


def _inputs(x: torch.Tensor, model: nn.Module, name: str) -> torch.Tensor:
    """``x`` on the model's device and in its float dtype, after checking that it is floating point
    (raw uint8 pixels would be taken as values up to 255) and holds no NaN or Inf (a NaN image gives
    NaN logits: a made-up prediction, or NaN weights after one training step)."""
    if not x.is_floating_point():
        raise TypeError(f"{name} images (x) must be floating point, pixels in [0, 1], got dtype {x.dtype}; "
                        "divide uint8 pixels by 255 first")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} holds NaN or Inf values in its images (x); clean or drop those samples")
    return x.to(model_device(model), _float_dtype(model))


def _forward(model: nn.Module, x: torch.Tensor, name: str) -> torch.Tensor:
    """``model(x)``, with torch's shape errors turned into one that names the data and the expected shape."""
    try:
        return model(x)
    except RuntimeError as error:
        config = model.config() if callable(getattr(model, "config", None)) else {}
        expected = (f" (it expects [N, {config['in_channels']}, {config['image_size']}, {config['image_size']}])"
                    if {"in_channels", "image_size"} <= set(config) else "")
        raise ValueError(f"{name} gives images of shape {list(x.shape)} that {type(model).__name__} cannot take"
                         f"{expected}: {str(error).splitlines()[0]}") from error


def _check_labels(y: torch.Tensor, num_classes: int, name: str) -> None:
    """Labels must be integer class indices in [0, num_classes - 1] (the number of logits)."""
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise TypeError(f"{name} labels (y) must be integer class indices (int64), got dtype {y.dtype}")
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise ValueError(f"{name} labels (y) must lie in [0, {num_classes - 1}] (the model has {num_classes} "
                         f"outputs), got labels in [{int(y.min())}, {int(y.max())}]")


def check_fit_args(epochs, lr, batch_size, optimizer, weight_decay, seed, lr_schedule) -> None:
    """Refuse ``fit``'s (and every other training loop's) hyper-parameters outside their ranges, by name."""
    require_int("epochs", epochs, 1, 10_000)
    require_float("lr", lr, 0.0, 10.0, low_open=True)
    require_int("batch_size", batch_size, 1, None)
    require_choice("optimizer", optimizer, OPTIMIZERS)
    require_float("weight_decay", weight_decay, 0.0, 1.0)
    require_int("seed", seed, 0, 2**32 - 1)
    require_choice("lr_schedule", lr_schedule, LR_SCHEDULES)


def make_optimizer(model: nn.Module, name: str, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """``"sgd"`` (momentum 0.9) or ``"adam"`` (AdamW when ``weight_decay > 0``) over the trainable parameters."""
    params = [p for p in model.parameters() if p.requires_grad]
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay) if weight_decay else \
        torch.optim.Adam(params, lr=lr)


def fit(model: nn.Module, train_data, *, epochs: int = 5, lr: float = 1e-3, batch_size: int = 64,
        optimizer: str = "adam", weight_decay: float = 0.0, seed: int = 0,
        loss_fn: Callable | None = None, regularizer: Callable | None = None, val_data=None,
        progress: bool = True, after_step: Callable | None = None,
        lr_schedule: str = "constant") -> list[dict]:
    """Train ``model`` in place with mini-batch gradient descent and return the per-epoch history.

    ``train_data`` yields ``x`` float32 ``[B, C, H, W]`` and ``y`` int64 ``[B]``. Each step minimises
    ``loss_fn(logits, y) + regularizer(model)`` (default cross-entropy, no regulariser) with Adam
    (AdamW when ``weight_decay > 0``) or SGD with momentum 0.9; ``lr_schedule="cosine"`` decays the
    learning rate per step as ``lr·(1 + cos(π·t/T))/2``. ``after_step(model)`` runs after every
    optimizer step (pruning re-applies its masks there). The shuffle order comes from a generator
    seeded with ``seed``, so equal seeds give equal weights. Returns one dict per epoch:
    ``{"epoch", "loss", "train_acc", "val_acc"}`` (``val_acc`` is None without ``val_data``); the
    model is left in the train/eval mode it came in. An empty or unlabelled ``train_data`` (or
    ``val_data``) raises ``ValueError`` / ``TypeError`` naming it, and so do NaN/Inf images, labels
    outside ``[0, classes - 1]`` and images the model cannot take; a loss that becomes NaN or Inf
    stops training with a ``ValueError`` (before that step changes the weights). ``model`` is float32
    or float64 (the batches are cast to its dtype). Explained in notebooks/00_why_compress.ipynb.
    """
    check_fit_args(epochs, lr, batch_size, optimizer, weight_decay, seed, lr_schedule)
    require_module("model", model, dtypes=(torch.float32, torch.float64))
    if not any(p.requires_grad for p in model.parameters()):
        raise ValueError(f"model has no trainable parameters ({type(model).__name__}): there is nothing to fit")
    dataset, loss_fn = as_dataset(train_data, "train_data", labelled=True), loss_fn or F.cross_entropy
    if val_data is not None:
        val_data = as_dataset(val_data, "val_data", labelled=True)  # fail now, not after an epoch
    loader = batch_loader(dataset, batch_size, torch.Generator().manual_seed(seed))
    opt = make_optimizer(model, optimizer, lr, weight_decay)
    sched = cosine_schedule(opt, epochs * len(loader)) if lr_schedule == "cosine" else None
    device = model_device(model)

    def step(batch):
        x, y = _inputs(batch[0], model, "train_data"), batch[1].to(device)
        logits = _forward(model, x, "train_data")
        _check_labels(y, logits.shape[-1], "train_data")
        loss = loss_fn(logits, y)
        return (loss + regularizer(model) if regularizer is not None else loss), logits, y

    return run_epochs(model, loader, step, opt, epochs=epochs, sched=sched, after_step=after_step,
                      val_data=val_data, progress=progress, advice=f"lower lr (got {lr}) or check loss_fn/regularizer")


def run_epochs(model: nn.Module, loader, step: Callable, opt: torch.optim.Optimizer, *, epochs: int, sched=None,
               after_step: Callable | None = None, val_data=None, progress: bool = True, desc: str = "training",
               advice: str = "lower lr") -> list[dict]:
    """``epochs`` passes of ``run_epoch`` over ``loader`` with ``model`` in train mode; the history.

    ``step(batch) -> (loss, logits, y)`` is the one thing a trainer brings (``fit``: cross-entropy plus
    regulariser; ``distill.distill``: the distillation loss against the teacher's logits;
    ``distill.feature_distill``: plus the feature terms). ``after_step(model)`` runs after every
    optimizer step. After each epoch the model is scored on ``val_data`` (``evaluate``, or None).
    Returns one dict per epoch ``{"epoch", "loss", "train_acc", "val_acc"}`` and leaves the model in
    the train/eval mode it came in; ``desc`` labels the tqdm bar (hidden unless ``progress``).
    Explained in notebooks/00_why_compress.ipynb.
    """
    hook = None if after_step is None else (lambda: after_step(model))
    was_training, history = model.training, []
    with tqdm(total=epochs * len(loader), desc=desc, disable=not progress, leave=False) as bar:
        for epoch in range(1, epochs + 1):
            bar.set_description(f"{desc}: epoch {epoch}/{epochs}")
            model.train()
            loss, acc = run_epoch(loader, step, opt, sched=sched, after_step=hook, bar=bar, advice=advice)
            val = evaluate(model, val_data) if val_data is not None else None
            history.append({"epoch": epoch, "loss": loss, "train_acc": acc, "val_acc": val})
    model.train(was_training)
    return history


def cosine_schedule(opt: torch.optim.Optimizer, total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-step learning-rate factor ``½·(1 + cos(π·t / total_steps))``: from 1 down to 0 at the last step."""
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 0.5 * (1 + math.cos(math.pi * t / total_steps)))


def run_epoch(loader, step: Callable, opt: torch.optim.Optimizer, *, sched=None, after_step: Callable | None = None,
              bar=None, advice: str = "lower lr") -> tuple[float, float | None]:
    """labkit's one optimisation loop: one pass over ``loader`` with a hook for the step.

    For each batch, ``step(batch) -> (loss, logits, y)`` computes the 0-d loss (``logits`` may be
    None: no accuracy is counted); then ``zero_grad``, ``backward``, ``opt.step()``, ``sched.step()``
    (if given) and ``after_step()`` (if given). A NaN/Inf loss raises ``ValueError`` (with
    ``advice``) before it changes the weights. ``bar`` (tqdm) shows the running loss/accuracy.
    Returns ``(Σ loss·|y| / Σ |y|, accuracy or None)``. ``run_epochs`` (``fit``, ``distill.distill``,
    ``distill.feature_distill``) and ``quant.codebook.finetune_codebooks`` run on it.
    Explained in notebooks/00_why_compress.ipynb.
    """
    loss_sum, correct, seen, counted = 0.0, 0, 0, False
    for batch in loader:
        loss, logits, y = step(batch)
        if not math.isfinite(loss.item()):
            raise ValueError(f"training diverged: the loss is {loss.item()} after {seen} samples of this epoch "
                             f"(weights kept from the step before); {advice}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
        if after_step is not None:
            after_step()
        loss_sum += loss.item() * len(y)
        if logits is not None:
            correct, counted = correct + (logits.argmax(1) == y).sum().item(), True
        seen += len(y)
        if bar is not None:
            bar.update(1)
            shown = {"acc": f"{correct / seen:.1%}"} if counted else {}
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}", **shown, refresh=False)
    seen = max(seen, 1)                                  # an empty loader: 0.0, not a ZeroDivisionError
    return loss_sum / seen, (correct / seen if counted else None)


@torch.no_grad()
def predict(model: nn.Module, data, batch_size: int = 512, progress: bool = False) -> torch.Tensor:
    """Logits float32 ``[N, num_classes]`` for every sample of ``data`` (Dataset, ``(x, y)`` or ``x``).

    Runs under ``torch.no_grad()`` in ``model.eval()`` mode (BatchNorm uses its running statistics)
    and restores the model's previous mode; ``progress`` shows a tqdm bar over the batches. The
    images are cast to the model's float dtype (a float64 or float16 model works); NaN/Inf images,
    images the model cannot take and a model on the meta device raise ``ValueError`` naming them, and
    so does a model whose logits come out NaN or Inf (a NaN weight, a float16 overflow): no accuracy
    is computed from them. Explained in notebooks/00_why_compress.ipynb.
    """
    require_int("batch_size", batch_size, 1, None)
    require_module("model", model)
    loader = batch_loader(as_dataset(data), batch_size, None)
    was_training = model.training
    model.eval()
    try:
        batches = tqdm(loader, desc="predicting", disable=not progress, leave=False)
        logits = torch.cat([_forward(model, _inputs(batch[0], model, "data"), "data").float().cpu()
                            for batch in batches])
    finally:
        model.train(was_training)
    bad = ~torch.isfinite(logits)
    if bad.any():
        samples = int(bad.reshape(len(logits), -1).any(1).sum()) if len(logits) else 0
        params = sum(nonfinite_parameters(model).values())
        raise ValueError(f"model gives NaN or Inf logits for {samples} of {len(logits)} samples"
                         + (f": {params} of its parameters are NaN or Inf" if params else
                            " (its parameters are finite: an overflow, e.g. in float16 — try float32)"))
    return logits


def correct(model: nn.Module, data, batch_size: int = 512, progress: bool = False) -> torch.Tensor:
    """Per-sample results, bool ``[N]``: ``argmax(model(x_i)) == y_i`` for every sample of ``data``.

    The raw material of honest comparisons: ``labkit.stats.accuracy_interval(correct(...))`` gives
    an accuracy with its interval, ``labkit.stats.paired_difference(correct(a), correct(b))`` the
    difference of two models on the same images. Same arguments and modes as ``evaluate``.
    Explained in notebooks/00_why_compress.ipynb.
    """
    dataset = as_dataset(data, labelled=True)
    logits = predict(model, dataset, batch_size, progress)
    if logits.dim() != 2:
        raise ValueError(f"model must output logits [N, classes] to be scored, got shape {list(logits.shape)}")
    labels = torch.cat([batch[1] for batch in batch_loader(dataset, 4096, None)])
    _check_labels(labels, logits.shape[-1], "data")  # a label 10 of a 10-class model is never "correct"
    return logits.argmax(1) == labels


def evaluate(model: nn.Module, data, batch_size: int = 512, progress: bool = False) -> float:
    """Top-1 accuracy, a float fraction in [0, 1]: ``mean(argmax(model(x)) == y)`` over ``data``.

    ``data`` is a Dataset (or ``(x, y)`` pair) of ``x`` float32 ``[N, C, H, W]`` and ``y`` int64
    ``[N]``; runs under ``torch.no_grad()`` in eval mode and restores the previous mode;
    ``progress`` shows a tqdm bar over the batches. For its confidence interval use ``correct``
    with ``labkit.stats.accuracy_interval``. Explained in notebooks/00_why_compress.ipynb.
    """
    return correct(model, data, batch_size, progress).float().mean().item()

