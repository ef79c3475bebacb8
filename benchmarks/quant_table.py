"""Quantization on real MNIST: test accuracy and real bytes of every method of chapters 01–06.

One row per (model, method): fp32; dynamic int8; static PTQ int8 per tensor / per channel with
min-max, histogram and MSE observers; PTQ 4-bit; mixed precision at the size of uniform 4-bit
(and 3-bit, next to uniform 3-bit); QAT with the straight-through estimator (8/4/2 bits) and LSQ
(4/2 bits), the input image and the logits kept at 8 bits as low-bit QAT papers do; BinaryConnect,
XNOR and ternary (TWN) LeNet-5; k-means weight sharing (4/2 bits, fine-tuned codebooks, and
Huffman-coded).

    .venv/bin/python benchmarks/quant_table.py [--models lenet5 lenet300] [--methods ptq qat ...]
        [--epochs N] [--seeds 0 1 2] [--csv table.csv]            # full run on the shipped MNIST
    .venv/bin/python benchmarks/quant_table.py --quick       # smoke run on digits, < 1 min

Targets (drop of test accuracy against the fp32 model, in points), judged on MNIST only:
int8 per-channel PTQ <= 0.3; 4-bit QAT (STE and LSQ) <= 1.0; ternary LeNet-5 <= 0.6; 4-bit k-means
<= 0.5. A full MNIST run records these rows for ``benchmarks/scorecard.py`` (``benchmarks/results.py``).

Every accuracy change carries its 95 % interval. Methods without training (fp32, dynamic, PTQ, mixed
precision) run once and are compared with fp32 on the same 10,000 test images (paired interval,
``labkit.stats.paired_difference``). Methods that train (QAT, LSQ, binary/ternary, k-means with
fine-tuned codebooks) run once per seed (``--seeds``, three on a full run), each seed with its own
training subset and order; their accuracy is the mean over seeds and the interval a Student-t interval
over the per-seed changes (``labkit.stats.seed_interval``). The verdict compares the mean drop with the
target. A full run fine-tunes on a seeded subset of 20,000 of the 60,000 training images (one QAT
epoch, three binary epochs, one codebook epoch) so that three seeds fit in a CPU budget.

Sizes are real bytes: every model is written the way it would be shipped — packed integer codes
(``measure.pack_bits``), float32 scales, codebooks and biases, Huffman streams with their code
tables — into a ``labkit.measure`` file, and ``measure.size_on_disk`` reports its length (headers
included). Each packed representation is decoded again and checked against the weights that were
evaluated, so the size and the accuracy belong to the same model. Binary and ternary rows keep the
first and the last layer in float32, as the XNOR-Net and TWN experiments do.

fp32 models come from ``labkit.zoo.pretrained`` (cached checkpoint, else trained with the zoo's
MNIST recipe). Everything is seeded: two runs print the same table.
"""
from __future__ import annotations

import argparse
import copy
import csv
import math
import os
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.utils.data import TensorDataset

from labkit import data, measure, stats, train, zoo
from labkit.quant import affine, binary, codebook, huffman, mixed, ptq, qat
from labkit.quant.modules import DynamicQuantLinear, QuantizedLayer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))   # benchmarks/results.py, also when imported
import results  # noqa: E402  (after the path line above)

MODELS = ("lenet5", "lenet300")
METHOD_GROUPS = ("fp32", "dynamic", "ptq", "ptq4", "mixed", "qat", "lsq", "binary", "ternary", "kmeans")
BINARY_MODELS = ("lenet5",)     # the binary/ternary experiments: LeNet-5 (first/last layer fp32)
TARGETS = {  # method label -> largest allowed drop in points (MNIST only)
    "PTQ int8 per-channel minmax": 0.3, "PTQ int8 per-channel histogram": 0.3,
    "PTQ int8 per-channel MSE": 0.3,
    "QAT STE W4A4": 1.0, "QAT LSQ W4A4": 1.0,
    "TWN ternary": 0.6,
    "k-means 4-bit": 0.5, "k-means 4-bit + Huffman": 0.5,
}
TARGET_MODELS = {"TWN ternary": ("lenet5",)}
TARGET_SOURCES = {  # what each target stands for (the published claim it checks, qualitatively)
    "PTQ int8 per-channel minmax": "Krishnamoorthi 2018: int8 per-channel PTQ stays within a few tenths of float",
    "PTQ int8 per-channel histogram": "Krishnamoorthi 2018: int8 per-channel PTQ stays within a few tenths of float",
    "PTQ int8 per-channel MSE": "Krishnamoorthi 2018: int8 per-channel PTQ stays within a few tenths of float",
    "QAT STE W4A4": "Jacob et al. 2018 / Krishnamoorthi 2018: 4-bit QAT close to float",
    "QAT LSQ W4A4": "Esser et al. 2020 (LSQ): 4-bit weights and activations reach full precision",
    "TWN ternary": "Li et al. 2016 (TWN): ternary LeNet-5 very close to full precision on MNIST",
    "k-means 4-bit": "Han et al. 2016 (Deep Compression): 4-bit shared weights lose almost nothing",
    "k-means 4-bit + Huffman": "Han et al. 2016 (Deep Compression): Huffman coding is lossless",
}
TRAINED_GROUPS = ("qat", "lsq", "binary", "ternary", "kmeans")


@dataclass(frozen=True)
class Budget:
    """How much data and training each method gets (full MNIST run or the quick smoke run)."""

    dataset: str = "mnist"
    train_samples: int | None = None    # None: the whole train split
    calib_samples: int = 2048           # PTQ calibration (train split)
    sens_samples: int = 10000           # mixed-precision sensitivity (train split, never test)
    test_samples: int | None = None     # None: the whole test split
    qat_epochs: int = 1
    binary_epochs: int = 3
    kmeans_epochs: int = 1
    batch_size: int = 128
    seeds: tuple = (0, 1, 2)            # the trained methods run once per seed


FULL = Budget(train_samples=20000)
QUICK = Budget(dataset="digits", train_samples=512, calib_samples=256, sens_samples=256,
               qat_epochs=1, binary_epochs=1, kmeans_epochs=1, batch_size=64, seeds=(0,))


@dataclass
class Row:
    model: str
    method: str
    bits: str
    accuracy: float
    nbytes: int
    fp32_accuracy: float = float("nan")
    fp32_bytes: int = 0
    target: float | None = None
    seconds: float = 0.0
    note: str = ""
    correct: object = None              # per-image results (bool [N]) of each seed's model
    accuracies: list = field(default_factory=list)
    change: stats.Estimate | None = None   # accuracy minus fp32, with its 95 % interval

    @property
    def delta(self) -> float:
        """Accuracy change against fp32 in points (negative = worse), rounded to the test-set grain."""
        return round((self.accuracy - self.fp32_accuracy) * 100, 2)

    @property
    def seeds(self) -> int:
        return max(1, len(self.accuracies))

    @property
    def ratio(self) -> float:
        return self.fp32_bytes / self.nbytes

    def status(self, judged: bool) -> str:
        if self.target is None:
            return ""
        if not judged:
            return "n/a"
        return "PASS" if -self.delta <= self.target + 1e-9 else "MISS"


@dataclass
class Context:
    name: str
    budget: Budget
    fp32: nn.Module
    train_set: TensorDataset
    calib_set: TensorDataset
    sens_set: TensorDataset
    test_set: TensorDataset
    seed: int
    epochs: int | None
    cache: dict = field(default_factory=dict)

    def model(self) -> nn.Module:
        return copy.deepcopy(self.fp32).eval()

    def epochs_for(self, default: int) -> int:
        return self.epochs if self.epochs is not None else default


# --------------------------------------------------------------------------- real bytes
def _as_uint8_tensor(raw: bytes) -> torch.Tensor:
    return torch.frombuffer(bytearray(raw), dtype=torch.uint8) if raw else torch.zeros(0, dtype=torch.uint8)


def _packed(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """Unsigned codes ``[0, 2^bits)`` packed ``bits`` per value; checked by unpacking them again."""
    flat = codes.detach().reshape(-1).cpu().numpy().astype(np.int64)
    raw = measure.pack_bits(flat, bits)
    if not np.array_equal(measure.unpack_bits(raw, bits, flat.size).astype(np.int64), flat):
        raise AssertionError("pack_bits/unpack_bits round trip failed")
    return _as_uint8_tensor(raw)


def _affine_state(prefix: str, module, state: dict) -> None:
    """Packed weight codes, scales (+ zero points when asymmetric), bias, activation parameters."""
    qp = module.weight_qparams
    qmin, _ = affine.qrange(qp.bits, qp.signed)
    codes = module.weight_codes.to(torch.int64) - qmin
    state[f"{prefix}weight_codes"] = _packed(codes, qp.bits)
    state[f"{prefix}weight_scale"] = qp.scale.detach().float().reshape(-1)
    if not qp.symmetric:
        state[f"{prefix}weight_zero_point"] = qp.zero_point.detach().to(torch.int32).reshape(-1)
    for act in ("input", "output"):
        aqp = getattr(module, f"{act}_qparams", None)
        if aqp is not None:
            state[f"{prefix}{act}_scale"] = aqp.scale.detach().float().reshape(-1)
            state[f"{prefix}{act}_zero_point"] = aqp.zero_point.detach().to(torch.int32).reshape(-1)
    if module.bias is not None:
        state[f"{prefix}bias"] = module.bias.detach().float()


def _binary_state(prefix: str, module, state: dict) -> None:
    """1 bit per weight (BinaryConnect, XNOR) or 2 bits (ternary) + one fp32 α per channel."""
    with torch.no_grad():
        w_hat = binary.quantize_weight(module.weight, module.method, module.per_channel).detach()
    rows = w_hat.reshape(w_hat.shape[0], -1)
    if module.method == "binaryconnect":
        codes, alpha = (rows > 0).long(), None
        decoded = codes * 2.0 - 1.0
    else:
        alpha = rows.abs().amax(dim=1, keepdim=True) if module.per_channel else rows.abs().amax().reshape(1, 1)
        if module.method == "xnor":
            codes = (rows > 0).long()
            decoded = alpha * (codes * 2.0 - 1.0)
        else:
            codes = (torch.sign(rows) + 1).long()
            decoded = alpha * (codes - 1.0)
    bits = 1 if module.method != "ternary" else 2
    state[f"{prefix}weight_codes"] = _packed(codes, bits)
    if alpha is not None:
        state[f"{prefix}weight_alpha"] = alpha.reshape(-1).float()
    if not torch.equal(decoded, rows):
        raise AssertionError(f"{prefix}: decoded {module.method} weights differ from the evaluated weights")
    if module.bias is not None:
        state[f"{prefix}bias"] = module.bias.detach().float()


def _sharing_state(prefix: str, module, state: dict, use_huffman: bool) -> None:
    """fp32 codebook ``[2^b]`` + packed (or Huffman-coded) indices + bias."""
    with torch.no_grad():
        book = torch.where(module.fixed_zero, torch.zeros_like(module.codebook), module.codebook).detach().float()
    indices = module.indices.reshape(-1)
    state[f"{prefix}codebook"] = book
    if use_huffman:
        encoded = huffman.huffman_encode(indices)
        table = bytes(encoded.code.lengths.get(s, 0) for s in range(encoded.table_bytes))
        state[f"{prefix}indices_huffman"] = _as_uint8_tensor(encoded.data)
        state[f"{prefix}indices_huffman_table"] = _as_uint8_tensor(table)
        if not torch.equal(huffman.huffman_decode(encoded), indices.cpu()):
            raise AssertionError(f"{prefix}: Huffman round trip failed")
    else:
        state[f"{prefix}indices"] = _packed(indices, module.bits)
    if not torch.equal(book[module.indices], module.weight.detach()):
        raise AssertionError(f"{prefix}: codebook[indices] differs from the evaluated weights")
    if module.bias is not None:
        state[f"{prefix}bias"] = module.bias.detach().float()


def shipped_state(model: nn.Module, use_huffman: bool = False) -> dict[str, torch.Tensor]:
    """What a deployment would store for ``model``: ``{name: tensor}`` with packed uint8 code blobs."""
    state, done = {}, []
    for name, module in model.named_modules():
        if any(name.startswith(d + ".") for d in done):
            continue
        prefix = f"{name}." if name else ""
        if isinstance(module, (QuantizedLayer, DynamicQuantLinear)):
            _affine_state(prefix, module, state)
        elif isinstance(module, (binary.BinaryLinear, binary.BinaryConv2d)):
            _binary_state(prefix, module, state)
        elif isinstance(module, codebook.WeightSharing):
            _sharing_state(prefix, module, state, use_huffman)
        else:
            for key, tensor in list(module.named_parameters(recurse=False)) + list(module.named_buffers(recurse=False)):
                if tensor is not None:
                    state[prefix + key] = tensor.detach()
            continue
        done.append(name)
    return state


def model_bytes(model: nn.Module, use_huffman: bool = False) -> int:
    """Length of the ``labkit.measure`` file holding ``shipped_state(model)`` (float tensors fp32)."""
    return measure.size_on_disk(shipped_state(model, use_huffman), "fp32")


# --------------------------------------------------------------------------- training helpers
class _Shuffled:
    """Re-iterable seeded mini-batches ``(x, y)``: a new permutation on every pass."""

    def __init__(self, dataset: TensorDataset, batch_size: int, seed: int):
        self.x, self.y = dataset.tensors
        self.batch_size, self.generator = batch_size, torch.Generator().manual_seed(seed)

    def __iter__(self):
        order = torch.randperm(len(self.y), generator=self.generator)
        for idx in order.split(self.batch_size):
            yield self.x[idx], self.y[idx]


def _fit(ctx: Context, model: nn.Module, epochs: int, lr: float, after_step=None) -> None:
    train.set_seed(ctx.seed)
    train.fit(model, ctx.train_set, epochs=epochs, lr=lr, batch_size=ctx.budget.batch_size,
              seed=ctx.seed, lr_schedule="cosine", after_step=after_step, progress=False)


def _freeze_at(step: int):
    """``after_step`` hook: freeze the QAT observers once ``step`` optimizer steps are done."""
    count = {"n": 0}

    def hook(model):
        count["n"] += 1
        if count["n"] == step:
            qat.freeze_observers(model)
    return hook


def _row(ctx: Context, method: str, bits: str, model: nn.Module, start: float, note: str = "",
         use_huffman: bool = False, correct=None) -> Row:
    correct = train.correct(model, ctx.test_set).numpy() if correct is None else correct
    return Row(ctx.name, method, bits, float(correct.mean()), model_bytes(model, use_huffman),
               seconds=time.perf_counter() - start, note=note, correct=correct)


# --------------------------------------------------------------------------- the methods
def run_fp32(ctx: Context):
    start = time.perf_counter()
    yield _row(ctx, "fp32", "32", ctx.model(), start, note="zoo checkpoint")


def run_dynamic(ctx: Context):
    start = time.perf_counter()
    qmodel = ptq.quantize_dynamic(ctx.model(), bits=8)
    note = "Linear only (convs stay fp32)" if any(isinstance(m, nn.Conv2d) for m in ctx.fp32.modules()) else ""
    yield _row(ctx, "dynamic int8", "W8 A8dyn", qmodel, start, note=note + ("; " if note else "") + "per-tensor")


def run_ptq(ctx: Context):
    for per_channel, observer, label in ((False, "minmax", "minmax"), (False, "histogram", "histogram"),
                                         (True, "minmax", "minmax"), (True, "histogram", "histogram"),
                                         (True, "mse", "MSE")):
        start = time.perf_counter()
        qmodel = ptq.quantize_static(ctx.model(), ctx.calib_set, weight_bits=8, act_bits=8,
                                     per_channel=per_channel, observer=observer)
        gran = "per-channel" if per_channel else "per-tensor"
        yield _row(ctx, f"PTQ int8 {gran} {label}", "W8A8", qmodel, start,
                   note=f"{len(ctx.calib_set)} calibration images")


def _uniform_weight_only(ctx: Context, bits: int) -> nn.Module:
    sizes = mixed.layer_sizes(ctx.fp32)
    return mixed.apply_bit_allocation(ctx.model(), mixed.uniform_allocation(sizes, bits))


def run_ptq4(ctx: Context):
    start = time.perf_counter()
    qmodel = ptq.quantize_static(ctx.model(), ctx.calib_set, weight_bits=4, act_bits=8, per_channel=True,
                                 observer="histogram")
    yield _row(ctx, "PTQ 4-bit per-channel", "W4A8", qmodel, start, note="static, histogram observer")
    start = time.perf_counter()
    yield _row(ctx, "PTQ 4-bit weight-only", "W4", _uniform_weight_only(ctx, 4), start,
               note="per-channel, activations fp32")


def run_mixed(ctx: Context):
    """Per-layer bits from the sensitivity on train images (DP knapsack) at the size of uniform 4 and
    3 bits; uniform 3-bit weight-only is printed next to it as the reference at that size."""
    choices = (2, 3, 4, 5, 6, 8)
    sizes = mixed.layer_sizes(ctx.fp32)
    start = time.perf_counter()
    sens = mixed.layer_sensitivity(ctx.model(), ctx.sens_set, bits=choices)
    sens_seconds = time.perf_counter() - start
    # Drops below zero are noise; among equal drops prefer more bits (else the DP may leave budget unused).
    total = sum(sizes.values())
    sens = {n: {b: max(d, 0.0) + 1e-6 * (max(choices) - b) * sizes[n] / total for b, d in per.items()}
            for n, per in sens.items()}
    for bits in (4, 3):
        if bits == 3:
            start = time.perf_counter()
            yield _row(ctx, "PTQ 3-bit weight-only", "W3", _uniform_weight_only(ctx, 3), start,
                       note="per-channel, activations fp32")
        start = time.perf_counter() - sens_seconds      # each mixed row is charged the shared sensitivity pass
        budget = mixed.allocation_bytes(sizes, mixed.uniform_allocation(sizes, bits))
        alloc = mixed.allocate_bits(sizes, sens, budget, choices=choices)
        qmodel = mixed.apply_bit_allocation(ctx.model(), alloc)
        avg = sum(alloc[n] * s for n, s in sizes.items()) / sum(sizes.values())
        plan = "/".join(str(alloc[n]) for n in sizes)
        yield _row(ctx, f"mixed precision (= {bits}-bit size)", f"W{plan}", qmodel, start,
                   note=f"avg {avg:.2f} bits; DP on sensitivity of {len(ctx.sens_set)} train images; weight-only")


def _edges_at_8_bits(model: nn.Module) -> None:
    """Quantize the input image and the logits to 8 bits whatever ``act_bits`` is (weights keep their
    bits): the usual low-bit QAT convention (LSQ, PACT). 4-bit logits alone cost LeNet-300-100
    about 0.7 points: 16 levels make argmax ties."""
    layers = qat.qat_layers(model)
    if layers[0].input_quant is not None:
        layers[0].input_quant.set_bits(max(8, layers[0].input_quant.bits))
    if layers[-1].output_quant is not None:
        layers[-1].output_quant.set_bits(max(8, layers[-1].output_quant.bits))


def _run_qat(ctx: Context, quantizer: str, label: str, configs):
    epochs = ctx.epochs_for(ctx.budget.qat_epochs)
    steps = epochs * math.ceil(len(ctx.train_set) / ctx.budget.batch_size)
    for wbits, abits, lr in configs:
        start = time.perf_counter()
        train.set_seed(ctx.seed)
        model = qat.prepare_qat(ctx.model(), weight_bits=wbits, act_bits=abits, per_channel=True,
                                quantizer=quantizer)
        _edges_at_8_bits(model)
        hook = _freeze_at(max(1, int(0.75 * steps))) if quantizer == "ste" else None
        _fit(ctx, model, epochs, lr, after_step=hook)
        qmodel = qat.convert(model)
        yield _row(ctx, f"QAT {label} W{wbits}A{abits}", f"W{wbits}A{abits}", qmodel, start,
                   note=f"image & logits 8-bit; {epochs} ep, Adam {lr:g} cosine")


def run_qat(ctx: Context):
    yield from _run_qat(ctx, "ste", "STE", ((8, 8, 1e-4), (4, 4, 5e-4), (2, 4, 5e-4)))


def run_lsq(ctx: Context):
    yield from _run_qat(ctx, "lsq", "LSQ", ((4, 4, 5e-4), (2, 2, 5e-4)))


def _run_binary(ctx: Context, method: str, label: str, lr: float):
    if ctx.name not in BINARY_MODELS:
        return
    epochs = ctx.epochs_for(ctx.budget.binary_epochs)
    start = time.perf_counter()
    model = binary.binarize_model(ctx.model(), method, per_channel=(method != "binaryconnect"),
                                  skip_first_last=True).train()
    _fit(ctx, model, epochs, lr)
    model.eval()
    bits = "2 (ternary)" if method == "ternary" else "1"
    yield _row(ctx, label, bits, model, start, note=f"first/last layer fp32; {epochs} ep, Adam {lr:g} cosine")


def run_binary(ctx: Context):
    yield from _run_binary(ctx, "binaryconnect", "BinaryConnect", 5e-4)
    yield from _run_binary(ctx, "xnor", "XNOR (α per channel)", 5e-4)


def run_ternary(ctx: Context):
    yield from _run_binary(ctx, "ternary", "TWN ternary", 5e-4)


def run_kmeans(ctx: Context):
    epochs = ctx.epochs_for(ctx.budget.kmeans_epochs)
    for bits, lr in ((4, 1e-4), (2, 3e-4)):
        start = time.perf_counter()
        model = codebook.apply_weight_sharing(ctx.model(), bits, init="linear")
        train.set_seed(ctx.seed)
        codebook.finetune_codebooks(model, _Shuffled(ctx.train_set, ctx.budget.batch_size, ctx.seed),
                                    epochs=epochs, lr=lr, seed=ctx.seed)
        note = f"codebooks fine-tuned {epochs} ep, Adam {lr:g}"
        row = _row(ctx, f"k-means {bits}-bit", f"{bits} (index)", model, start, note=note)
        yield row
        start = time.perf_counter()
        yield _row(ctx, f"k-means {bits}-bit + Huffman", f"{bits} (Huffman)", model, start, use_huffman=True,
                   correct=row.correct, note="same weights, Huffman-coded indices + code table")


RUNNERS = {"fp32": run_fp32, "dynamic": run_dynamic, "ptq": run_ptq, "ptq4": run_ptq4, "mixed": run_mixed,
           "qat": run_qat, "lsq": run_lsq, "binary": run_binary, "ternary": run_ternary, "kmeans": run_kmeans}


# --------------------------------------------------------------------------- data and driver
def _subset(dataset: TensorDataset, n: int | None, seed: int) -> TensorDataset:
    if n is None or n >= len(dataset):
        return dataset
    index = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:n].sort().values
    return TensorDataset(*(t[index] for t in dataset.tensors))


def make_context(name: str, budget: Budget, seed: int, epochs: int | None, progress: bool) -> Context:
    train_full = data.load(budget.dataset, "train")
    return Context(
        name=name, budget=budget, fp32=zoo.pretrained(name, budget.dataset, progress=progress),
        train_set=_subset(train_full, budget.train_samples, seed),
        calib_set=_subset(train_full, budget.calib_samples, seed + 1),
        sens_set=_subset(train_full, budget.sens_samples, seed + 2),
        test_set=_subset(data.load(budget.dataset, "test"), budget.test_samples, 0),   # the same images for every seed
        seed=seed, epochs=epochs)


def merge_seeds(runs: list[Row], fp32_correct) -> Row:
    """One row from the same method run with several seeds (or once): mean accuracy, the change against
    fp32 with its interval (paired on the test images for one run, Student-t over seeds otherwise)."""
    row = runs[0]
    row.accuracies = [r.accuracy for r in runs]
    row.accuracy = float(sum(row.accuracies) / len(runs))
    row.seconds = sum(r.seconds for r in runs)
    if len(runs) == 1:
        row.change = stats.paired_difference(fp32_correct, row.correct)
    else:
        row.change = stats.seed_interval([a - float(fp32_correct.mean()) for a in row.accuracies])
        row.note = (row.note + "; " if row.note else "") + f"mean of {len(runs)} seeds"
    return row


def run(models, methods, budget: Budget, seed: int = 0, epochs: int | None = None, progress: bool = True,
        log=print, seeds: tuple | None = None) -> list[Row]:
    """Every row of the table for ``models`` × ``methods`` (in ``METHOD_GROUPS`` order). Methods that
    train run once per seed of ``seeds`` (default ``budget.seeds``); the others once, with ``seed``."""
    seeds = tuple(budget.seeds if seeds is None else seeds)
    rows = []
    for name in models:
        contexts = {s: make_context(name, budget, s, epochs, progress) for s in dict.fromkeys((seed,) + seeds)}
        ctx = contexts[seed]
        start = time.perf_counter()
        fp32_correct, fp32_bytes = train.correct(ctx.fp32, ctx.test_set).numpy(), model_bytes(ctx.fp32)
        for group in METHOD_GROUPS:
            if group not in methods:
                continue
            per_seed = [list(RUNNERS[group](contexts[s])) for s in (seeds if group in TRAINED_GROUPS else (seed,))]
            for same_method in zip(*per_seed):
                row = merge_seeds(list(same_method), fp32_correct)
                row.fp32_accuracy, row.fp32_bytes = float(fp32_correct.mean()), fp32_bytes
                if row.method in TARGETS and name in TARGET_MODELS.get(row.method, MODELS):
                    row.target = TARGETS[row.method]
                rows.append(row)
                log(f"[{time.perf_counter() - start:7.1f} s] {name:8s} {row.method:32s} "
                    f"{row.accuracy:.2%} ({row.change.signed_points()})  {row.nbytes:,} B  ({row.seconds:.1f} s)")
    return rows


def scorecard_rows(rows: list[Row], budget: Budget) -> list[results.Row]:
    """The rows with a target, for benchmarks/scorecard.py."""
    out = []
    for r in rows:
        if r.target is None:
            continue
        out.append(results.Row(
            experiment="quantization on MNIST (chapters 03-06)", model=r.model,
            metric="test accuracy change vs fp32 (points)",
            ours=f"{r.change.signed_points()} ({100 * r.accuracy:.2f} % vs {100 * r.fp32_accuracy:.2f} %)",
            paper=TARGET_SOURCES.get(r.method), tolerance=f"drop ≤ {r.target:.1f} pt (mean)",
            passed=r.status(True) == "PASS", seeds=r.seeds, seconds=round(r.seconds, 1),
            source=TARGET_SOURCES.get(r.method, "").split(":")[0],
            note=f"{r.method} ({r.bits}), {r.nbytes:,} B = {r.ratio:.1f}× smaller; {r.note}",
            dataset=budget.dataset,
            extra={"accuracies": [round(a, 4) for a in r.accuracies], "delta_low": round(100 * r.change.low, 3),
                   "delta_high": round(100 * r.change.high, 3)}))
    return out


COLUMNS = ("model", "method", "bits", "accuracy", "Δ vs fp32 [95 %]", "seeds", "bytes", "ratio", "target",
           "status", "note")


def table_cells(rows: list[Row], judged: bool) -> list[list[str]]:
    cells = []
    for r in rows:
        change = r.change.signed_points() if r.change is not None else f"{r.delta:+.2f}"
        cells.append([r.model, r.method, r.bits, f"{r.accuracy:.2%}", change, str(r.seeds), f"{r.nbytes:,}",
                      f"{r.ratio:.1f}×", f"≥ -{r.target:.1f}" if r.target is not None else "", r.status(judged),
                      r.note])
    return cells


def format_table(rows: list[Row], judged: bool = True) -> str:
    """An aligned plain-text table: numbers right-aligned, text left-aligned."""
    cells = table_cells(rows, judged)
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(COLUMNS)]
    right = {3, 4, 5, 6, 7, 8}

    def line(values):
        padded = (v.rjust(w) if i in right else v.ljust(w) for i, (v, w) in enumerate(zip(values, widths)))
        return "  ".join(padded).rstrip()

    out = [line(COLUMNS), line(["-" * w for w in widths])]
    previous = None
    for c in cells:
        if previous is not None and c[0] != previous:
            out.append("")
        out.append(line(c))
        previous = c[0]
    return "\n".join(out)


def write_csv(rows: list[Row], path: str, judged: bool) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["model", "method", "bits", "accuracy", "fp32_accuracy", "delta_points", "delta_low",
                         "delta_high", "seeds", "bytes", "fp32_bytes", "ratio", "target_max_drop", "status",
                         "seconds", "note"])
        for r in rows:
            low, high = ("", "") if r.change is None else (f"{100 * r.change.low:.2f}", f"{100 * r.change.high:.2f}")
            writer.writerow([r.model, r.method, r.bits, f"{r.accuracy:.4f}", f"{r.fp32_accuracy:.4f}",
                             f"{r.delta:.2f}", low, high, r.seeds, r.nbytes, r.fp32_bytes, f"{r.ratio:.3f}",
                             "" if r.target is None else r.target, r.status(judged), f"{r.seconds:.1f}", r.note])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--methods", nargs="+", default=list(METHOD_GROUPS), choices=METHOD_GROUPS,
                        help="method groups (fp32 is always measured as the reference)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="fine-tuning epochs for every trained method (default: QAT/LSQ "
                             f"{FULL.qat_epochs}, binary/ternary {FULL.binary_epochs}, k-means {FULL.kmeans_epochs})")
    parser.add_argument("--dataset", default=None, choices=("mnist", "fashion-mnist", "digits"),
                        help="default: mnist (digits with --quick); targets are judged on mnist only")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: digits, 512 training images, 1 fine-tuning epoch (< 1 min)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the methods that do not train")
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="seeds of the methods that train (default: 0 1 2; 0 with --quick)")
    parser.add_argument("--csv", default=None, help="also write the table to this CSV file")
    parser.add_argument("--quiet", action="store_true", help="no per-row progress lines")
    args = parser.parse_args(argv)
    if args.epochs is not None and not 1 <= args.epochs <= 1000:
        parser.error(f"--epochs must be an integer in [1, 1000], got {args.epochs}")
    if args.seed < 0 or any(v < 0 for v in args.seeds or ()):
        parser.error(f"--seed and --seeds must be >= 0, got {args.seed} and {args.seeds}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    budget = QUICK if args.quick else FULL
    if args.dataset is not None:
        budget = Budget(**{**budget.__dict__, "dataset": args.dataset})
    start = time.perf_counter()
    log = (lambda *a, **k: None) if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    try:
        rows = run(args.models, set(args.methods) | {"fp32"}, budget, args.seed, args.epochs,
                   progress=not args.quiet, log=log, seeds=args.seeds)
    except data.DatasetNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    judged = budget.dataset == "mnist" and not args.quick
    print(f"\nQuantization on {budget.dataset} ({'quick smoke run' if args.quick else 'full test split'}), "
          f"seed {args.seed}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{time.perf_counter() - start:.0f} s")
    print("bytes: real file size (labkit.measure format: packed codes, fp32 scales/codebooks/biases, headers); "
          "ratio: fp32 bytes / bytes")
    print("target: largest allowed accuracy drop in points" + ("" if judged else " (judged on MNIST only)"))
    print("Δ vs fp32: paired 95 % interval on the same test images (one run), or Student-t over the seeds "
          f"(trained methods: seeds {tuple(args.seeds or budget.seeds)}, each fine-tuned on "
          f"{budget.train_samples or 'all'} training images)")
    print("binary and ternary rows (LeNet-5 only) keep the first and last layer in fp32, "
          "as XNOR-Net / TWN reproductions do\n")
    print(format_table(rows, judged))
    if args.csv:
        write_csv(rows, args.csv, judged)
        print(f"\nwrote {args.csv}")
    if judged and args.epochs is None and args.models == list(MODELS) and set(args.methods) == set(METHOD_GROUPS):
        print(f"\nrecorded for the scorecard: {results.record('quant_table', scorecard_rows(rows, budget))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
