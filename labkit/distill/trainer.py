"""Training a student from a frozen teacher: ``teacher_logits`` and ``distill``.

The loop is ``train.fit``'s (``train.run_epochs``: same seeded batch order, same optimizers and
schedule), with one change: every batch also carries the teacher's logits for those images, and the
step's loss is ``distillation_loss(student(x), teacher_logits, y, T, alpha)``. (``fit``'s
``loss_fn(logits, y)`` never sees the batch's images, so it cannot look up the teacher; the step can.)
The teacher runs in ``eval()`` mode (BatchNorm uses its running statistics, dropout is off) under
``torch.no_grad()`` (no graph, no ``.grad`` on its weights), and its mode is restored afterwards.
On small datasets its logits are computed once for the whole training set and cached.

``feature_distill`` (chapter 12) adds the feature-based terms: FitNets hints, attention transfer and
relational KD, on activations read with ``features.FeatureTap``; the teacher's activations are
computed once for the training set (``features.layer_features``) like its logits.

Explained in notebooks/11_distillation_soft_labels.ipynb and notebooks/12_distillation_features.ipynb.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torch.utils.data import TensorDataset

from labkit import train
from labkit.distill.features import FeatureTap, layer_features, regressor_for
from labkit.distill.losses import (attention_transfer_loss, check_alpha, check_logits, check_p, check_temperature,
                                   distillation_loss, hint_loss, rkd_angle_loss, rkd_distance_loss)
from labkit.validate import require_float, require_module


def _tensors(train_data, allow_unlabelled: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(x, y)`` of a labelled dataset as two tensors (TensorDatasets are not copied); ``(x, None)`` for
    a bare image tensor ``[N, C, H, W]`` when ``allow_unlabelled``."""
    if allow_unlabelled and isinstance(train_data, torch.Tensor):
        if train_data.dim() != 4 or not len(train_data) or not train_data.is_floating_point():
            raise ValueError(f"unlabelled train_data must be a float tensor of images [N, C, H, W] with N >= 1, "
                             f"got {train_data.dtype} {tuple(train_data.shape)}")
        return train_data, None
    dataset = train.as_dataset(train_data, "train_data", labelled=True)
    if isinstance(dataset, TensorDataset) and len(dataset.tensors) == 2:
        return dataset.tensors
    xs, ys = zip(*(dataset[i] for i in range(len(dataset))))
    return torch.stack(xs), torch.stack([torch.as_tensor(label) for label in ys])


def teacher_logits(teacher: nn.Module, data, batch_size: int = 512) -> torch.Tensor:
    """The frozen teacher's logits float32 ``[N, C]`` for every image of ``data``, computed once.

    Runs under ``torch.no_grad()`` in ``eval()`` mode and restores the teacher's mode
    (``train.predict``). Explained in notebooks/11_distillation_soft_labels.ipynb.
    """
    return train.predict(require_module("teacher", teacher), data, batch_size=batch_size)


def distill(student: nn.Module, teacher: nn.Module | None, train_data, *, T: float = 4.0, alpha: float = 0.9,
            epochs: int = 5, lr: float = 1e-3, batch_size: int = 64, optimizer: str = "adam",
            weight_decay: float = 0.0, seed: int = 0, cached_logits: torch.Tensor | None = None,
            cache: bool = True, val_data=None, progress: bool = True,
            lr_schedule: str = "constant", after_step: Callable | None = None) -> list[dict]:
    """Train ``student`` in place on ``α·T²·KL(p_t ‖ p_s) + (1 − α)·CE(s, y)``; return the history.

    ``train_data`` yields ``x`` float32 ``[N, C, H, W]`` and ``y`` int64 ``[N]`` — or, with ``alpha = 1``
    (soft labels only), it may be a bare image tensor ``x`` without labels: an *unlabelled* transfer
    set; ``train_acc`` then counts agreement with the teacher's argmax. The teacher's logits
    come from ``cached_logits`` (float ``[N, classes]``, e.g. from ``teacher_logits``; ``teacher`` may
    then be None), else from ``teacher`` — computed once for all of ``train_data`` when ``cache``
    (default, and always for unlabelled data), or per batch in the loop. ``T`` in (0, inf), ``alpha``
    in [0, 1]; the other arguments and the seeded batch order are ``train.fit``'s, so ``alpha = 0``
    reproduces ``fit`` exactly. ``after_step(student)``, as in ``fit``, runs after every optimizer step
    (e.g. to keep pruned weights at zero). The teacher is never trained and its mode is restored.
    Returns one dict per epoch: ``{"epoch", "loss", "train_acc", "val_acc"}``.
    Explained in notebooks/11_distillation_soft_labels.ipynb.
    """
    require_module("student", student)
    T, alpha = check_temperature(T), check_alpha(alpha)
    train.check_fit_args(epochs, lr, batch_size, optimizer, weight_decay, seed, lr_schedule)
    if after_step is not None and not callable(after_step):
        raise TypeError(f"after_step must be a callable after_step(student) or None, got {type(after_step).__name__}")
    if teacher is student:
        raise ValueError("teacher and student must be two different models")
    x, y = _tensors(train_data, allow_unlabelled=True)
    if y is None and alpha != 1.0:
        raise ValueError(f"unlabelled train_data (images without labels) needs alpha = 1 (soft labels only), "
                         f"got alpha = {alpha:g}")
    if cached_logits is None:
        if teacher is None:
            raise ValueError("teacher must be a torch.nn.Module when cached_logits is None")
        require_module("teacher", teacher)
        if cache or y is None:
            cached_logits = teacher_logits(teacher, x)
    elif not isinstance(cached_logits, torch.Tensor) or cached_logits.dim() != 2 or len(cached_logits) != len(x):
        raise ValueError(f"cached_logits must be a tensor [N, classes] with N = {len(x)} (one row per training "
                         f"image), got {getattr(cached_logits, 'shape', type(cached_logits).__name__)}")
    else:
        check_logits("cached_logits", cached_logits)                 # finite floats, fail before training
    if y is None:
        y = cached_logits.argmax(1)          # bookkeeping only: with alpha = 1 the loss never reads it
    if val_data is not None:
        val_data = train.as_dataset(val_data, "val_data", labelled=True)
    columns = (x, y) if cached_logits is None else (x, y, cached_logits.float())
    loader = train.batch_loader(TensorDataset(*columns), batch_size, torch.Generator().manual_seed(seed))
    opt = train.make_optimizer(student, optimizer, lr, weight_decay)
    sched = train.cosine_schedule(opt, epochs * len(loader)) if lr_schedule == "cosine" else None

    def step(batch):
        x, y = batch[0], batch[1]
        t = batch[2] if len(batch) == 3 else _frozen_logits(teacher, x)
        logits = student(x)
        return distillation_loss(logits, t, y, T, alpha), logits, y

    return train.run_epochs(student, loader, step, opt, epochs=epochs, sched=sched, after_step=after_step,
                            val_data=val_data, progress=progress, desc=f"distilling (T={T:g}, α={alpha:g})",
                            advice=f"lower lr (got {lr})")


def _frozen_logits(teacher: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The teacher's logits for one batch: eval mode, no graph, mode restored."""
    was_training = teacher.training
    teacher.eval()
    try:
        with torch.no_grad():
            return teacher(x)
    finally:
        teacher.train(was_training)


# ----------------------------------------------------------------------------- chapter 12
def _check_pair(name: str, pair):
    if pair is None:
        return None
    if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and all(isinstance(n, str) for n in pair)):
        raise TypeError(f"{name} must be None or a pair (student_layer, teacher_layer) of layer names, got {pair!r}")
    return tuple(pair)


def feature_distill(student: nn.Module, teacher: nn.Module | None, train_data, *, T: float = 4.0,
                    alpha: float = 0.5, hint=None, hint_weight: float = 1.0, attention=None,
                    at_weight: float = 100.0, p: float = 2.0, relation=None, rkd_distance_weight: float = 25.0,
                    rkd_angle_weight: float = 50.0, epochs: int = 5, lr: float = 1e-3, batch_size: int = 64,
                    optimizer: str = "adam", weight_decay: float = 0.0, seed: int = 0, teacher_cache=None,
                    val_data=None, progress: bool = True, lr_schedule: str = "constant") -> list[dict]:
    """Train ``student`` in place on CE + soft-label KD + feature losses; return the history.

    loss = (1 − α)·CE(s, y) + α·kd_loss(s, t, T) + hint_weight·hint_loss(r(S_h), T_h)
    + at_weight·attention_transfer_loss(S_a, T_a, p) + rkd_distance_weight·rkd_distance_loss(S_r, T_r)
    + rkd_angle_weight·rkd_angle_loss(S_r, T_r). ``hint``, ``attention`` and ``relation`` are None (term
    off) or ``(student_layer, teacher_layer)`` names from ``named_modules()``; ``relation`` layers are
    flattened to embeddings ``[N, D]``. When the hint layers' widths differ a ``Regressor`` (1×1 conv
    or linear, seeded) is trained with the student and discarded. The teacher's logits and layers
    come from ``teacher_cache`` (``features.layer_features(teacher, train_data, layers)``, computed
    once; ``teacher`` may then be None) or are computed here, in eval mode under no_grad. The other
    arguments (``lr_schedule`` included) and the seeded batch order are ``train.fit``'s; with α = 0 and
    no feature term this is ``distill(alpha=0)``. Returns one dict per epoch ``{"epoch", "loss", "train_acc", "val_acc"}``.
    Explained in notebooks/12_distillation_features.ipynb.
    """
    require_module("student", student)
    T, alpha, p = check_temperature(T), check_alpha(alpha), check_p(p)
    pairs = {"hint": _check_pair("hint", hint), "attention": _check_pair("attention", attention),
             "relation": _check_pair("relation", relation)}
    weights = {name: require_float(name, value, 0.0, None) for name, value in
               (("hint_weight", hint_weight), ("at_weight", at_weight),
                ("rkd_distance_weight", rkd_distance_weight), ("rkd_angle_weight", rkd_angle_weight))}
    train.check_fit_args(epochs, lr, batch_size, optimizer, weight_decay, seed, lr_schedule)
    if teacher is student:
        raise ValueError("teacher and student must be two different models")
    x, y = _tensors(train_data)
    s_layers = [pair[0] for pair in pairs.values() if pair]
    t_layers = [pair[1] for pair in pairs.values() if pair]
    if teacher_cache is None:
        if teacher is None:
            raise ValueError("teacher must be a torch.nn.Module when teacher_cache is None")
        require_module("teacher", teacher)
        teacher_cache = layer_features(teacher, x, t_layers) if t_layers else {"logits": teacher_logits(teacher, x)}
    missing = [name for name in ["logits", *t_layers] if not isinstance(teacher_cache, dict) or name not in teacher_cache]
    if missing or any(len(teacher_cache[n]) != len(x) for n in ["logits", *t_layers]):
        raise ValueError(f"teacher_cache must be a dict with 'logits' and the teacher layers {t_layers}, one row "
                         f"per training image (N = {len(x)}); missing {missing}")
    check_logits("teacher_cache['logits']", teacher_cache["logits"])
    if val_data is not None:
        val_data = train.as_dataset(val_data, "val_data", labelled=True)
    regressor = _hint_regressor(student, x, teacher_cache, pairs["hint"], seed) if pairs["hint"] else None
    trainable = nn.ModuleList([student] + ([regressor] if regressor is not None else []))
    loader = train.batch_loader(TensorDataset(x, y, torch.arange(len(x))), batch_size,
                                torch.Generator().manual_seed(seed))
    opt = train.make_optimizer(trainable, optimizer, lr, weight_decay)
    sched = train.cosine_schedule(opt, epochs * len(loader)) if lr_schedule == "cosine" else None
    config = dict(T=T, alpha=alpha, p=p, pairs=pairs, weights=weights, regressor=regressor)
    with FeatureTap(student, s_layers or [_any_layer(student)]) as tap:
        def step(batch):                      # the regressor (a 1×1 conv or linear map) has no train/eval modes
            x, y, idx = batch
            logits = student(x)
            loss = distillation_loss(logits, teacher_cache["logits"][idx], y, T, alpha)
            return loss + _feature_terms(tap, teacher_cache, idx, config), logits, y

        return train.run_epochs(student, loader, step, opt, epochs=epochs, sched=sched, val_data=val_data,
                                progress=progress, desc="distilling features",
                                advice=f"lower lr (got {lr}) or the loss weights")


def _any_layer(model: nn.Module) -> str:
    return next(name for name, _ in model.named_modules() if name)


def _hint_regressor(student, x, cache, pair, seed):
    """A regressor from the student's hint layer to the teacher's (None if the widths match), seeded
    without touching the global random state."""
    was_training = student.training
    student.eval()
    try:
        with FeatureTap(student, [pair[0]]) as tap, torch.no_grad():
            student(x[:2])
            s_feat = tap.features[pair[0]]
    finally:
        student.train(was_training)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return regressor_for(s_feat, cache[pair[1]][:2])


def _feature_terms(tap, cache, idx, config) -> torch.Tensor:
    """The weighted sum of the feature losses for one batch (0 when no term is on)."""
    pairs, w, total = config["pairs"], config["weights"], torch.zeros(())
    if pairs["hint"] and w["hint_weight"]:
        s_layer, t_layer = pairs["hint"]
        total = total + w["hint_weight"] * hint_loss(tap.features[s_layer], cache[t_layer][idx], config["regressor"])
    if pairs["attention"] and w["at_weight"]:
        s_layer, t_layer = pairs["attention"]
        total = total + w["at_weight"] * attention_transfer_loss(tap.features[s_layer], cache[t_layer][idx],
                                                                 config["p"])
    if pairs["relation"] and len(idx) > 1 and (w["rkd_distance_weight"] or w["rkd_angle_weight"]):
        s_layer, t_layer = pairs["relation"]
        s, t = tap.features[s_layer].flatten(1), cache[t_layer][idx].flatten(1)
        if w["rkd_distance_weight"]:
            total = total + w["rkd_distance_weight"] * rkd_distance_loss(s, t)
        if w["rkd_angle_weight"]:
            total = total + w["rkd_angle_weight"] * rkd_angle_loss(s, t)
    return total

