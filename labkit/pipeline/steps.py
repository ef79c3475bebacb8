"""The steps a compression pipeline is made of, each a thin call into the chapter that teaches it.

A step is a small frozen dataclass: its settings are checked when it is made (``ValueError`` /
``TypeError`` naming the setting and its range), ``refusal(state)`` says in one sentence why it
cannot follow what came before (or None), and ``apply(state, context)`` runs it. The model moves
through **stages**:

=========== ================================================ ===========================================
stage       what the model is                                made by
=========== ================================================ ===========================================
float       an ordinary float model (``pruned``: it has       the zoo; ``prune``, ``structured``,
            zeros that must stay zero)                        ``lowrank``, ``finetune``, ``distill``
qat         fake-quantized, still trainable                  ``qat`` (converted when the pipeline ends)
quantized   integer weight codes + scales (frozen)           ``ptq``; a ``qat`` model at the end
shared      k-means codebooks + indices (centroids train)    ``kmeans`` (Deep Compression's stage 2)
integer     integer-only, on labkit's int8 kernels           ``integer``
=========== ================================================ ===========================================

Orders that cannot compose are refused before anything runs — fine-tuning a converted integer model
(seed 000 §4 does it), pruning integer codes, factorising a pruned matrix (its factors are dense),
rebuilding channels of a model already quantized.

Explained in notebooks/14_pipeline_tradeoffs_export.ipynb
"""
from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import ClassVar

import torch
from torch import nn
from torch.utils.data import TensorDataset

from labkit import distill, lowrank, prune, train
from labkit.quant import codebook, integer, observers, ptq, qat
from labkit.validate import require_choice, require_float, require_int

__all__ = ["STAGES", "State", "Context", "Step", "Prune", "Structured", "LowRank", "FineTune", "Distill", "PTQ",
           "QAT", "KMeans", "Integer", "STEPS", "make_step"]

STAGES = ("float", "qat", "quantized", "shared", "integer")
TRAINABLE = ("float", "qat")
FROZEN_REASON = ("a converted model holds integer codes, not trainable float weights (seed 000 §4 fine-tunes "
                 "after int8 conversion: it cannot work); train before converting, or quantize with 'qat' "
                 "and train inside it")


@dataclass
class State:
    """Where a pipeline is: the ``model``, its ``stage``, whether it has been ``pruned`` (zeros to keep),
    the ``masks`` that keep those zeros in a QAT model, and ``float_model``, the last float version
    (MACs are counted on it: quantization changes the bits of a MAC, not their number)."""

    model: object
    stage: str = "float"
    pruned: bool = False
    masks: dict = field(default_factory=dict)
    float_model: nn.Module | None = None


@dataclass
class Context:
    """What steps read besides the model: the ``teacher`` (the original model, for ``distill``), the
    ``train_data`` that fine-tuning draws its subsets from, ``seed`` and ``progress``."""

    teacher: nn.Module
    train_data: TensorDataset
    seed: int = 0
    progress: bool = False

    def subset(self, size: int) -> TensorDataset:
        """The first ``size`` images of a seeded permutation of the training set."""
        x, y = self.train_data.tensors
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(self.seed))[:min(size, len(x))]
        return TensorDataset(x[order], y[order])


def _keep_zeros(masks: dict):
    """An ``after_step`` that multiplies each named layer's weight by its mask (QAT models, where the
    float weight sits inside a ``QATLayer`` and a mask hook would never run)."""
    @torch.no_grad()
    def after_step(model: nn.Module) -> None:
        modules = dict(model.named_modules())
        for name, mask in masks.items():
            modules[name].weight.mul_(mask)
    return after_step


def _after_step(state: State):
    if state.stage == "qat" and state.masks:
        return _keep_zeros(state.masks)
    return prune.reapply_masks if state.pruned and state.stage == "float" else None


def _plain(model: nn.Module) -> nn.Module:
    """A copy with pruning made permanent (plain weights holding the zeros), for steps that rebuild layers."""
    clone = copy.deepcopy(model)
    return prune.remove_all(clone) if any(prune.is_pruned(m) for m in clone.modules()) else clone


@torch.no_grad()
def _with_zeros(float_model: nn.Module, masks: dict) -> nn.Module:
    """A copy of the float model with the zeros of masks named after a QAT model's layers
    (``fc1.layer`` → ``fc1``), so that its non-zero MACs are counted right."""
    clone = copy.deepcopy(float_model)
    for name, mask in masks.items():
        clone.get_submodule(name.removesuffix(".layer")).weight.mul_(mask)
    return clone


class Step:
    """Base class: ``name``, the settings as a dict (``settings()``), ``refusal(state)`` and ``apply``."""

    name: ClassVar[str] = ""

    def settings(self) -> dict:
        return {k: v for k, v in self.__dict__.items()}

    def refusal(self, state: State) -> str | None:
        raise NotImplementedError

    def next_stage(self, state: State) -> tuple[str, bool]:
        """(stage, pruned) after this step — used to check an order before anything runs."""
        return state.stage, state.pruned

    def apply(self, state: State, ctx: Context) -> State:
        raise NotImplementedError

    def __str__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.settings().items())
        return f"{self.name}({args})"


def _only_float(state: State, what: str) -> str | None:
    if state.stage != "float":
        return f"{what} needs a float model, but the model is already {state.stage} ({STAGE_TEXT[state.stage]})"
    return None


STAGE_TEXT = {"float": "float weights", "qat": "fake-quantized for QAT", "quantized": "integer codes",
              "shared": "k-means codebook indices", "integer": "an integer-only model on the int8 kernels"}


@dataclass(frozen=True)
class Prune(Step):
    """Unstructured pruning (chapter 07): ``amount`` ∈ [0, 1) of the weights, by ``criterion`` (magnitude
    = L1, random), ranked over the whole model (``scope="global"``) or per layer (``"layer"``)."""

    amount: float = 0.5
    criterion: str = "magnitude"
    scope: str = "global"
    name: ClassVar[str] = "prune"

    def __post_init__(self):
        require_float("amount", self.amount, 0.0, 1.0, high_open=True)
        require_choice("criterion", self.criterion, tuple(prune.CRITERIA))
        require_choice("scope", self.scope, ("global", "layer"))

    def refusal(self, state):
        if state.stage in TRAINABLE:
            return None
        return (f"prune cannot follow a {state.stage} model ({STAGE_TEXT[state.stage]}): pruning ranks float "
                "weights and is followed by retraining; prune before quantizing, or quantize with 'qat' and prune inside it")

    def next_stage(self, state):
        return state.stage, True

    def apply(self, state, ctx):
        model = state.model
        if self.scope == "global":
            masks = prune.global_prune(model, self.amount, self.criterion, seed=ctx.seed)
        else:
            masks = prune.layerwise_prune(model, {n: self.amount for n in prune.prunable_layers(model)},
                                          self.criterion, seed=ctx.seed)
        if state.stage == "qat":                 # a QATLayer reads layer.weight directly: plain zeros + masks
            prune.remove_all(model)
            masks = {n: (m * state.masks[n]) if n in state.masks else m for n, m in masks.items()}
            return State(model, "qat", True, masks, _with_zeros(state.float_model, masks))
        return State(model, "float", True, {}, model)


@dataclass(frozen=True)
class Structured(Step):
    """Structured pruning with surgery (chapter 09): remove ``amount`` of the channels (and hidden
    neurons) of every layer, ranked by ``criterion``; the model becomes a smaller dense one."""

    amount: float = 0.5
    criterion: str = "l1"
    name: ClassVar[str] = "structured"

    def __post_init__(self):
        require_float("amount", self.amount, 0.0, 1.0, high_open=True)
        require_choice("criterion", self.criterion, prune.CHANNEL_CRITERIA)

    def refusal(self, state):
        if state.pruned:
            return ("structured cannot follow unstructured pruning: surgery rebuilds every layer from its weight and "
                    "would drop the pruning masks; remove channels first, then prune what is left")
        return _only_float(state, "structured")

    def apply(self, state, ctx):
        smaller, _ = prune.structured_prune(state.model, self.amount, self.criterion, seed=ctx.seed, linear=True)
        return State(smaller.eval(), "float", False, {}, smaller)


@dataclass(frozen=True)
class LowRank(Step):
    """Low-rank factorisation (chapter 13): every Linear by SVD and every conv by Tucker-2, keeping
    ``energy`` of the squared singular values (layers that would grow are kept)."""

    energy: float = 0.9
    name: ClassVar[str] = "lowrank"

    def __post_init__(self):
        require_float("energy", self.energy, 0.0, 1.0, low_open=True)

    def refusal(self, state):
        if state.pruned:
            return ("lowrank cannot follow pruning: the factors of a pruned matrix are dense, so the zeros pruning "
                    "made would be lost; factorise first, then prune the factors")
        return _only_float(state, "lowrank")

    def apply(self, state, ctx):
        lowrank.decompose_model(state.model, energy=self.energy)
        return State(state.model, "float", False, {}, state.model)


@dataclass(frozen=True)
class FineTune(Step):
    """Train on labels for ``epochs`` over ``train_size`` training images (learning rate ``lr``): a
    float model, a QAT model (through fake quantization), or the centroids of a k-means model."""

    epochs: int = 1
    lr: float = 5e-4
    train_size: int = 8192
    name: ClassVar[str] = "finetune"

    def __post_init__(self):
        require_int("epochs", self.epochs, 1, 100)
        require_float("lr", self.lr, 0.0, 1.0, low_open=True)
        require_int("train_size", self.train_size, 64, 10_000_000)

    def refusal(self, state):
        if state.stage in ("quantized", "integer"):
            return f"{self.name} cannot follow a {state.stage} model: {FROZEN_REASON}"
        return None

    def apply(self, state, ctx):
        data = ctx.subset(self.train_size)
        if state.stage == "shared":
            codebook.finetune_codebooks(state.model, data, epochs=self.epochs, lr=self.lr, seed=ctx.seed,
                                        batch_size=64)
        else:
            train.fit(state.model, data, epochs=self.epochs, lr=self.lr, seed=ctx.seed, progress=ctx.progress,
                      after_step=_after_step(state), lr_schedule="cosine")
        return state


@dataclass(frozen=True)
class Distill(Step):
    """Fine-tuning with knowledge distillation from the original model as teacher (chapter 11):
    ``α·T²·KL + (1 − α)·CE`` for ``epochs`` over ``train_size`` images."""

    epochs: int = 1
    T: float = 4.0
    alpha: float = 0.9
    lr: float = 5e-4
    train_size: int = 8192
    name: ClassVar[str] = "distill"

    def __post_init__(self):
        require_int("epochs", self.epochs, 1, 100)
        require_float("T", self.T, 0.0, 100.0, low_open=True)
        require_float("alpha", self.alpha, 0.0, 1.0)
        require_float("lr", self.lr, 0.0, 1.0, low_open=True)
        require_int("train_size", self.train_size, 64, 10_000_000)

    refusal = FineTune.refusal

    def apply(self, state, ctx):
        distill.distill(state.model, ctx.teacher, ctx.subset(self.train_size), T=self.T, alpha=self.alpha,
                        epochs=self.epochs, lr=self.lr, seed=ctx.seed, progress=ctx.progress,
                        after_step=_after_step(state), lr_schedule="cosine")
        return state


@dataclass(frozen=True)
class PTQ(Step):
    """Static post-training quantization (chapter 03): ``weight_bits`` per-channel symmetric weights,
    ``act_bits`` activations calibrated by ``observer`` on ``calib_size`` training images."""

    weight_bits: int = 8
    act_bits: int = 8
    observer: str = "minmax"
    calib_size: int = 512
    name: ClassVar[str] = "ptq"

    def __post_init__(self):
        require_int("weight_bits", self.weight_bits, 2, 8)
        require_int("act_bits", self.act_bits, 2, 16)
        require_choice("observer", self.observer, tuple(observers.OBSERVERS))   # one registered by name too
        require_int("calib_size", self.calib_size, 1, 100_000)

    def refusal(self, state):
        return _only_float(state, "ptq")

    def next_stage(self, state):
        return "quantized", state.pruned

    def apply(self, state, ctx):
        float_model = _plain(state.model)
        qmodel = ptq.quantize_static(float_model, ctx.subset(self.calib_size), weight_bits=self.weight_bits,
                                     act_bits=self.act_bits, observer=self.observer)
        return State(qmodel, "quantized", state.pruned, {}, float_model)


@dataclass(frozen=True)
class QAT(Step):
    """Quantization-aware training (chapter 05): fake-quantize ``weight_bits`` weights and ``act_bits``
    activations (``quantizer``: ste, lsq, pact); the ``finetune``/``distill`` steps after it train through
    the quantizers, and the pipeline converts the model when it ends."""

    weight_bits: int = 8
    act_bits: int = 8
    quantizer: str = "ste"
    name: ClassVar[str] = "qat"

    def __post_init__(self):
        require_int("weight_bits", self.weight_bits, 2, 8)
        require_int("act_bits", self.act_bits, 2, 16)
        require_choice("quantizer", self.quantizer, qat.QUANTIZERS)

    def refusal(self, state):
        return _only_float(state, "qat")

    def next_stage(self, state):
        return "qat", state.pruned

    def apply(self, state, ctx):
        masks = {n: m.weight_mask.detach().clone() for n, m in prune.prunable_layers(state.model).items()
                 if prune.is_pruned(m)}
        float_model = _plain(state.model)
        qmodel = qat.prepare_qat(float_model, self.weight_bits, self.act_bits, quantizer=self.quantizer)
        inner = {n.removesuffix(".layer"): n for n, m in qmodel.named_modules() if n.endswith(".layer")}
        return State(qmodel, "qat", state.pruned, {inner[n]: m for n, m in masks.items() if n in inner}, float_model)


@dataclass(frozen=True)
class KMeans(Step):
    """k-means weight sharing (chapter 06, Deep Compression's stage 2): ``bits`` per layer — an int for
    every layer, or ``{"conv": b, "linear": b}``; pruned zeros keep an exact 0 entry."""

    bits: object = 5
    name: ClassVar[str] = "kmeans"

    def __post_init__(self):
        if isinstance(self.bits, Mapping):
            unknown = set(self.bits) - {"conv", "linear"}
            if unknown:
                raise ValueError(f"bits must be an int or a dict with keys 'conv' and 'linear', got keys {sorted(unknown)}")
            for key, b in self.bits.items():
                require_int(f"bits[{key!r}]", b, 1, 8)
        else:
            require_int("bits", self.bits, 1, 8)

    def settings(self):
        return {"bits": dict(self.bits) if isinstance(self.bits, Mapping) else self.bits}

    def refusal(self, state):
        return _only_float(state, "kmeans")

    def next_stage(self, state):
        return "shared", state.pruned

    def apply(self, state, ctx):
        float_model = _plain(state.model)
        layers = prune.prunable_layers(float_model)
        if isinstance(self.bits, Mapping):
            plan = {n: self.bits["conv" if isinstance(m, nn.Conv2d) else "linear"] for n, m in layers.items()}
        else:
            plan = {n: self.bits for n in layers}
        shared = codebook.apply_weight_sharing(float_model, plan, keep_zeros=state.pruned, seed=ctx.seed)
        return State(shared.eval(), "shared", state.pruned, {}, float_model)


@dataclass(frozen=True)
class Integer(Step):
    """Integer-only conversion (chapter 04): int8 weights and activations on labkit's int8 kernels,
    calibrated on ``calib_size`` training images (Sequential CNNs and MLPs)."""

    calib_size: int = 512
    name: ClassVar[str] = "integer"

    def __post_init__(self):
        require_int("calib_size", self.calib_size, 1, 100_000)

    def refusal(self, state):
        return _only_float(state, "integer")

    def next_stage(self, state):
        return "integer", state.pruned

    def apply(self, state, ctx):
        float_model = _plain(state.model)
        model = integer.convert_to_integer(float_model, ctx.subset(self.calib_size), num_batches=None)
        return State(model, "integer", state.pruned, {}, float_model)


STEPS = {cls.name: cls for cls in (Prune, Structured, LowRank, FineTune, Distill, PTQ, QAT, KMeans, Integer)}


def make_step(name: str, **settings) -> Step:
    """The step called ``name`` (one of ``STEPS``) with ``settings``; ``ValueError`` for an unknown name
    or setting (listing the valid ones), or a setting out of range.
    Explained in notebooks/14_pipeline_tradeoffs_export.ipynb
    """
    if not isinstance(name, str) or name not in STEPS:
        raise ValueError(f"unknown step {name!r}; the steps are {', '.join(STEPS)}")
    cls = STEPS[name]
    valid = [f.name for f in fields(cls)]
    unknown = sorted(set(settings) - set(valid))
    if unknown:
        raise ValueError(f"step {name!r} has no setting {', '.join(map(repr, unknown))}; its settings are "
                         f"{', '.join(valid)}")
    return cls(**settings)
