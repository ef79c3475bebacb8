"""A compression pipeline: steps in a declared order, checked before they run, measured after.

    pipe = Pipeline.from_spec([("prune", {"amount": 0.9}), ("finetune", {"epochs": 1}), ("ptq", {"weight_bits": 4})])
    result = pipe.run(zoo.pretrained("lenet300"))
    result.accuracy, result.bytes, result.macs, result.latency

``Pipeline`` checks the order first — every step's ``refusal`` against the stage the steps before it
leave (``steps`` module) — so an order that cannot compose raises ``PipelineOrderError`` naming the
step, its position and the reason, before any weight changes. ``run`` then applies the steps to a
copy of the model, converts a QAT model at the end, and measures the artefact honestly:

* **accuracy** on the whole test set with its Wilson 95 % interval (and the per-image results, for
  paired comparisons between pipelines);
* **MACs** of the last float model (quantization changes the width of a MAC, not their number) and
  the MACs that multiply a non-zero weight;
* **latency** of what actually runs — torch for float and simulated-quantized models (labkit's
  ``QuantizedLinear`` computes in float on dequantized weights: no speed-up, and it says so), the int8
  kernels for an integer-only model;
* **bytes**: the compressed-model file (``fileformat``) written to disk, not a formula.

Explained in notebooks/14_pipeline_tradeoffs_export.ipynb
"""
from __future__ import annotations

import copy
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from labkit import architecture, data, measure, stats, train
from labkit.pipeline import fileformat
from labkit.pipeline.runtime import RuntimeModule, predict_logits
from labkit.pipeline.steps import Context, State, Step, make_step
from labkit.quant import qat
from labkit.quant.modules import QATLayer
from labkit.validate import require_int

__all__ = ["PipelineOrderError", "Pipeline", "PipelineResult", "RUNTIMES"]

RUNTIMES = {"float": "torch fp32", "qat": "torch (simulated integers)", "quantized": "torch (simulated integers)",
            "shared": "torch fp32 (codebook gathered)", "integer": "labkit int8 kernels"}
TRAINING_STEPS = ("finetune", "distill")


class PipelineOrderError(ValueError):
    """Steps in an order that cannot compose; the message names the step and why."""


@dataclass
class PipelineResult:
    """What ``Pipeline.run`` measured. ``accuracy`` is a ``stats.Estimate`` (Wilson), ``correct`` the
    per-image bools ``[N]``, ``bytes`` the compressed file's size on disk and ``baseline_bytes`` the
    original model's in the same format, ``macs``/``nonzero_macs`` per image, ``latency`` the
    ``measure.latency`` dict of ``runtime``, ``rows`` one dict per step (name, seconds, and with
    ``measure_steps`` the stage's bytes and accuracy), ``file`` the ``FileReport``."""

    model: object
    stage: str
    spec: list
    accuracy: stats.Estimate
    correct: torch.Tensor
    bytes: int
    baseline_bytes: int
    macs: int
    nonzero_macs: int
    latency: dict | None
    runtime: str
    rows: list = field(default_factory=list)
    file: fileformat.FileReport | None = None

    @property
    def ratio(self) -> float:
        """Compression ratio ``baseline_bytes / bytes`` (file against file)."""
        return self.baseline_bytes / self.bytes

    def summary(self) -> dict:
        """The plain-data record a sweep caches (no model, no tensors)."""
        return {"pipeline": self.spec, "stage": self.stage, "accuracy": self.accuracy.value,
                "accuracy_low": self.accuracy.low, "accuracy_high": self.accuracy.high, "n": self.accuracy.n,
                "bytes": self.bytes, "baseline_bytes": self.baseline_bytes, "macs": self.macs,
                "nonzero_macs": self.nonzero_macs, "runtime": self.runtime,
                "latency_ms": None if self.latency is None else self.latency["median_ms"],
                "seconds": sum(r["seconds"] for r in self.rows)}


def _as_step(item, index: int) -> Step:
    if isinstance(item, Step):
        return item
    if isinstance(item, str):
        return make_step(item)
    if isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[1], dict):
        return make_step(item[0], **item[1])
    raise TypeError(f"steps[{index}] must be a Step, a step name or a (name, settings dict) pair, got {item!r}")


class Pipeline:
    """Steps applied in order; the order is checked when the pipeline is made (``PipelineOrderError``).

    ``steps``: ``Step`` objects, names (``"finetune"``) or ``(name, settings)`` pairs; names are the
    keys of ``steps.STEPS``. Explained in notebooks/14_pipeline_tradeoffs_export.ipynb
    """

    def __init__(self, steps):
        if isinstance(steps, (str, bytes)) or not hasattr(steps, "__iter__"):
            raise TypeError(f"steps must be a list of steps, got {type(steps).__name__}")
        self.steps = [_as_step(item, i) for i, item in enumerate(steps)]
        self.final_stage = self.check()

    @classmethod
    def from_spec(cls, spec) -> "Pipeline":
        """A pipeline from plain data ``[[name, {settings}], ...]`` (what ``spec()`` returns)."""
        return cls(spec)

    def spec(self) -> list:
        """The steps as plain data ``[[name, {settings}], ...]`` (JSON, a sweep's cache key)."""
        return [[s.name, s.settings()] for s in self.steps]

    def check(self, stage: str = "float", pruned: bool = False) -> str:
        """Walk the stages the steps go through; ``PipelineOrderError`` at the first step that cannot
        follow, and for a ``qat`` step that no ``finetune``/``distill`` trains. Returns the final stage."""
        state = State(None, stage, pruned)
        for i, step in enumerate(self.steps):
            reason = step.refusal(state)
            if reason:
                before = " → ".join(s.name for s in self.steps[:i]) or "the start"
                raise PipelineOrderError(f"step {i + 1} ({step}) cannot come after {before}: {reason}")
            if step.name == "qat" and not any(s.name in TRAINING_STEPS for s in self.steps[i + 1:]):
                raise PipelineOrderError(f"step {i + 1} ({step}) is not followed by a finetune or distill step: "
                                         "QAT observes its activation ranges while it trains, so an untrained QAT "
                                         "model has none; add a training step after it, or use 'ptq'")
            state.stage, state.pruned = step.next_stage(state)
        return "quantized" if state.stage == "qat" else state.stage

    def __repr__(self) -> str:
        return "Pipeline(" + " → ".join(str(s) for s in self.steps) + ")"

    def run(self, model: nn.Module, *, dataset: str = "mnist", seed: int = 0, train_data=None, test_data=None,
            measure_steps: bool = False, latency_batch: int | None = 256, save_to=None,
            progress: bool = False) -> PipelineResult:
        """Apply the steps to a copy of ``model`` (a float ``nn.Module``, the teacher of ``distill``) and
        measure the result on ``test_data`` (default: ``dataset``'s test split). ``train_data``
        (default: ``dataset``'s training split) feeds fine-tuning subsets and calibration. With
        ``measure_steps`` each row also gets the bytes and accuracy after its step; ``latency_batch``
        images are timed (None: no latency); ``save_to`` keeps the compressed file at that path.
        Explained in notebooks/14_pipeline_tradeoffs_export.ipynb
        """
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a float torch.nn.Module (a zoo model), got {type(model).__name__}")
        seed = require_int("seed", seed, 0, 2**32 - 1)
        train_data = data.load(dataset, "train") if train_data is None else train_data
        test_data = data.load(dataset, "test") if test_data is None else test_data
        teacher = copy.deepcopy(model).eval()
        ctx = Context(teacher, train_data, seed, progress)
        state = State(copy.deepcopy(model).eval(), float_model=None)
        rows = [self._row("original", 0.0, state, test_data, measure_steps)]
        for step in self.steps:
            start = time.perf_counter()
            train.set_seed(seed)
            state = step.apply(state, ctx)
            rows.append(self._row(str(step), time.perf_counter() - start, state, test_data, measure_steps))
        if state.stage == "qat":
            state = State(qat.convert(state.model), "quantized", state.pruned, {}, state.float_model)
            rows.append(self._row("convert (end of QAT)", 0.0, state, test_data, measure_steps))
        return self._measure(state, teacher, test_data, rows, latency_batch, save_to)

    def _row(self, label: str, seconds: float, state: State, test_data, measure_steps: bool) -> dict:
        row = {"step": label, "stage": state.stage, "seconds": seconds}
        if measure_steps:
            row["bytes"] = _file_bytes(state.model)
            row["accuracy"] = float(_correct(state.model, test_data).float().mean())
            row["getsizeof"] = sys.getsizeof(state.model)
            if row["bytes"] is None:
                row["accuracy"] = None        # a QAT model before training has no activation ranges yet
        return row

    def _measure(self, state, teacher, test_data, rows, latency_batch, save_to) -> PipelineResult:
        float_model = state.float_model if state.float_model is not None else state.model
        shape = architecture.input_shape(teacher) or tuple(test_data.tensors[0].shape[1:])
        correct = _correct(state.model, test_data)
        with tempfile.TemporaryDirectory(prefix="labkit-pipeline-") as folder:
            path = Path(save_to) if save_to is not None else Path(folder) / "model.lkcm"
            report = fileformat.save(state.model, path)
            baseline = fileformat.save(teacher, Path(folder) / "original.lkcm").bytes
        timing = None
        if latency_batch is not None:
            x = test_data.tensors[0][:require_int("latency_batch", latency_batch, 1)]
            timed = state.model if isinstance(state.model, nn.Module) else RuntimeModule(state.model, "int8")
            timing = measure.latency(timed, x, warmup=2, repeats=10)
        return PipelineResult(state.model, state.stage, self.spec(), stats.accuracy_interval(correct), correct,
                              report.bytes, baseline, measure.total_macs(float_model, shape),
                              measure.nonzero_macs(float_model, shape), timing, RUNTIMES[state.stage], rows, report)


def _correct(model, test_data) -> torch.Tensor:
    """Per-image bools on ``test_data`` for a torch model or an integer-only model."""
    if isinstance(model, nn.Module):
        return train.correct(model, test_data)
    x, y = test_data.tensors
    return predict_logits(model, x).argmax(1) == y


def _file_bytes(model) -> int | None:
    """Size of the compressed file of ``model`` (a QAT model is converted first; None before it has
    observed any activation)."""
    if any(isinstance(m, QATLayer) for m in getattr(model, "modules", lambda: [])()):
        try:
            model = qat.convert(model)
        except ValueError:
            return None
    with tempfile.TemporaryDirectory(prefix="labkit-pipeline-") as folder:
        return fileformat.save(model, Path(folder) / "model.lkcm").bytes

