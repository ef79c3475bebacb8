"""Fuzz test of labkit's public API (issue 9): one hostile argument at a time, against a valid call.

Each example picks an entry point, replaces ONE argument of a call that works by a hostile value — a
wrong type, NaN or Inf, a negative, zero or huge number, an empty, mis-shaped or wrongly typed tensor,
a float64/float16/meta model, labels out of range, x and y of different lengths — and sorts the
outcome into three bins:

* **clear**: a ``ValueError``/``TypeError`` whose message names the argument (or what it holds:
  ``train_data`` for its images);
* **accepted**: the call returned, and the result passes the entry point's oracle — a property any
  right answer has (an accuracy in [0, 1], a round trip that gives the input back, a sparsity that
  is the amount asked for...);
* **silent-wrong**: it returned, and the oracle fails.

Anything else — another exception, a refusal that names some other argument — fails the test, and
so does any silent-wrong result. ``max_examples`` and ``deadline`` keep it under a minute; run with
``-s`` to see "N tried, N clear, N silent-wrong".
"""
from __future__ import annotations

import itertools
import math
import tempfile
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from labkit import measure, models, prune, train, zoo
from labkit.distill import kd_loss
from labkit.lowrank import svd_linear
from labkit.quant import affine, huffman, nonuniform, ptq, qat
from labkit.quant.integer import convert_to_integer, evaluate_integer

NAN, INF = float("nan"), float("inf")

# --------------------------------------------------------------------------- hostile values
JUNK = st.sampled_from([None, "3", "", "abc", [1, 2], (1,), {"a": 1}, True, False, object()])
INTS = st.one_of(st.sampled_from([0, -1, 1, 2, 3, 7, 8, 9, 16, 17, 255, 256, 2**31, -2**31, 2**63]),
                 st.integers(-10**12, 10**12))
FLOATS = st.one_of(st.sampled_from([0.0, -0.0, 0.5, 1.0, -1.0, 1.5, 1e-50, 1e50, NAN, INF, -INF]), st.floats())
NUMBER = st.one_of(INTS, FLOATS, JUNK)
# counts whose large values cost time (epochs, repeats): small valid ones and every kind of invalid one
COUNT = st.one_of(st.sampled_from([-10**9, -1, 0, 1, 2, 2.5, NAN, INF, 1e300]), JUNK)


def choice(*valid):
    return st.one_of(st.sampled_from(valid), st.sampled_from([v.upper() for v in valid if isinstance(v, str)]),
                     st.text(max_size=6), JUNK, INTS)


@st.composite
def tensors(draw, max_dims=4):
    """Any small tensor: float or integer dtypes, empty dimensions, tiny or huge values, NaN/Inf."""
    dtype = draw(st.sampled_from([torch.float32, torch.float64, torch.float16, torch.int64, torch.uint8, torch.bool]))
    shape = draw(st.lists(st.integers(0, 5), max_size=max_dims))
    scale = draw(st.sampled_from([1.0, 1e-30, 1e30]))
    x = (torch.randn(shape, generator=torch.Generator().manual_seed(draw(st.integers(0, 9)))) * scale).to(dtype)
    if x.is_floating_point() and x.numel() and draw(st.booleans()):
        x.view(-1)[draw(st.integers(0, x.numel() - 1))] = draw(st.sampled_from([NAN, INF, -INF]))
    return x


TENSOR = st.one_of(tensors(), JUNK, st.just(torch.zeros(3, 4, device="meta")), st.just(np.zeros((3, 4), np.float32)))

# --------------------------------------------------------------------------- models and data
X = torch.rand(16, 1, 28, 28, generator=torch.Generator().manual_seed(0))
Y = torch.arange(16) % 10


def lenet(name="lenet300"):
    train.set_seed(0)
    return models.build(name)


def nan_model():
    model = lenet()
    with torch.no_grad():
        model.fc1.weight[0, 0] = NAN
    return model


MODELS = st.one_of(st.sampled_from([lambda: lenet().double(), lambda: lenet().half(), lambda: lenet().to("meta"),
                                    nan_model, lambda: nn.ReLU(), lambda: nn.Sequential(),
                                    lambda: lenet("lenet5")]).map(lambda make: make()),
                   st.sampled_from(["lenet300", None, 3, torch.zeros(2)]))
DATA = st.sampled_from([
    (X, Y[:-1]), (X, Y + 10), (X, Y - 1), (X, Y.float()), (X.double(), Y), (X.int(), Y),
    (torch.where(X > 0.99, NAN, X), Y), (X[:, :, :20, :20], Y), (X.repeat(1, 3, 1, 1), Y), (X[:0], Y[:0]),
    (X * 1e30, Y), X, "digits", [1, 2, 3], None, (X, Y, Y), (X[0], Y[0]),
])


def empty_linear() -> nn.Linear:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Initializing zero-element tensors is a no-op"
        return nn.Linear(0, 3)


def finite(t) -> bool:
    return bool(torch.isfinite(torch.as_tensor(t)).all())


def params_finite(model) -> bool:
    return all(finite(p.detach().float()) for p in model.parameters())


# --------------------------------------------------------------------------- entry points
@dataclass
class Entry:
    """A public function, a valid call (``valid[arg]()`` builds each argument), the hostile values
    of each argument, and an oracle any right answer passes."""

    fn: Callable
    valid: dict[str, Callable]
    hostile: dict[str, st.SearchStrategy]
    oracle: Callable  # (result, kwargs) -> bool
    names: dict[str, tuple[str, ...]] = field(default_factory=dict)  # words a refusal may name instead


def _integer_model():
    if not hasattr(_integer_model, "cached"):
        _integer_model.cached = convert_to_integer(lenet(), X)
    return _integer_model.cached


def _pruned_fraction(model, amount) -> bool:
    weights = [m.weight.detach() for m in prune.prunable_layers(model).values()]
    total = sum(w.numel() for w in weights)
    return sum(int((w == 0).sum()) for w in weights) == round(amount * total)


def _round_trip_checkpoint(model, kwargs) -> bool:
    loaded = zoo.load_checkpoint(kwargs["path"])
    x = X.to(next((p.dtype for p in model.parameters()), torch.float32))
    with torch.no_grad():
        return torch.equal(loaded(x), model.eval()(x))


def _is_pow2_or_zero(q: torch.Tensor) -> bool:
    m = q[q != 0].double().abs()
    return bool((m == 2.0 ** torch.round(torch.log2(m))).all())


ENTRIES = {
    "train.fit": Entry(
        lambda **k: (train.fit(progress=False, **k), k["model"])[1],
        {"model": lenet, "train_data": lambda: (X, Y), "epochs": lambda: 1, "lr": lambda: 1e-3,
         "batch_size": lambda: 8, "optimizer": lambda: "adam", "weight_decay": lambda: 0.0, "seed": lambda: 0,
         "lr_schedule": lambda: "constant"},
        {"model": MODELS, "train_data": DATA, "epochs": COUNT, "lr": NUMBER, "batch_size": NUMBER,
         "optimizer": choice("adam", "sgd"), "weight_decay": NUMBER, "seed": NUMBER,
         "lr_schedule": choice("constant", "cosine")},
        lambda model, k: params_finite(model)),
    "train.evaluate": Entry(
        train.evaluate, {"model": lenet, "data": lambda: (X, Y), "batch_size": lambda: 5},
        {"model": MODELS, "data": DATA, "batch_size": NUMBER}, lambda acc, k: 0.0 <= acc <= 1.0),
    "train.predict": Entry(
        train.predict, {"model": lenet, "data": lambda: X, "batch_size": lambda: 5},
        {"model": MODELS, "data": DATA, "batch_size": NUMBER},
        lambda logits, k: len(logits) == len(torch.as_tensor(k["data"][0] if isinstance(k["data"], tuple)
                                                             else k["data"])) and finite(logits)),
    "measure.size_on_disk": Entry(
        measure.size_on_disk, {"model_or_state_dict": lenet, "fmt": lambda: "int4", "values_fmt": lambda: "fp16"},
        {"model_or_state_dict": st.one_of(MODELS, st.just({"w": torch.zeros(2, 2), 3: torch.zeros(1)}),
                                          st.builds(lambda t: {"w": t}, tensors())),
         "fmt": choice(*measure.STORAGE_FORMATS), "values_fmt": choice(*measure.VALUES_FORMATS)},
        lambda size, k: isinstance(size, int) and size >= measure.FILE_HEADER_BYTES,  # a module without tensors: 9
        {"model_or_state_dict": ("model_or_state_dict", "state dict", "tensor '", "model")}),
    "measure.total_macs": Entry(
        measure.total_macs, {"model": lenet, "input_shape": lambda: (1, 28, 28)},
        {"model": MODELS, "input_shape": st.one_of(st.lists(st.integers(-2, 40), max_size=4).map(tuple), NUMBER)},
        lambda macs, k: isinstance(macs, int) and macs >= 0),
    "measure.latency": Entry(
        measure.latency, {"model": lenet, "example_input": lambda: X[:2], "warmup": lambda: 0,
                          "repeats": lambda: 2, "threads": lambda: 1},
        {"model": MODELS, "example_input": TENSOR, "warmup": COUNT, "repeats": COUNT, "threads": COUNT},
        lambda r, k: r["median_ms"] > 0 and r["repeats"] == k["repeats"]),
    "measure.pack_bits": Entry(
        measure.pack_bits, {"codes": lambda: [1, 2, 3], "bits": lambda: 2},
        {"codes": st.one_of(tensors(2).map(lambda t: t.numpy()), JUNK, st.lists(INTS, max_size=5)), "bits": NUMBER},
        lambda packed, k: (measure.unpack_bits(packed, k["bits"], np.asarray(k["codes"]).size)
                           == np.asarray(k["codes"]).reshape(-1)).all()),
    "affine.quantize_tensor": Entry(
        affine.quantize_tensor, {"x": lambda: torch.randn(4, 6), "bits": lambda: 4, "symmetric": lambda: False,
                                 "signed": lambda: False, "granularity": lambda: "channel", "axis": lambda: 0},
        {"x": TENSOR, "bits": NUMBER, "symmetric": NUMBER, "signed": NUMBER,
         "granularity": choice("tensor", "channel"), "axis": NUMBER},
        lambda out, k: out[0].shape == k["x"].shape and finite(out[0].float())),
    "nonuniform.pow2_quantize": Entry(
        nonuniform.pow2_quantize, {"x": lambda: torch.randn(5, 3), "bits": lambda: 4, "max_exponent": lambda: None,
                                   "rounding": lambda: "nearest"},
        {"x": TENSOR, "bits": NUMBER, "max_exponent": NUMBER, "rounding": choice("nearest", "log")},
        lambda q, k: q.shape == k["x"].shape and q.dtype == k["x"].dtype and _is_pow2_or_zero(q)),
    "nonuniform.log_quantize": Entry(
        nonuniform.log_quantize, {"x": lambda: torch.randn(5, 3), "bits": lambda: 4, "base": lambda: 2.0,
                                  "max_value": lambda: None},
        {"x": TENSOR, "bits": NUMBER, "base": NUMBER, "max_value": NUMBER},
        lambda q, k: q.shape == k["x"].shape and finite(q.float())),
    "huffman.huffman_encode": Entry(
        huffman.huffman_encode, {"symbols": lambda: [0, 1, 1, 2, 2, 2]},
        {"symbols": st.one_of(TENSOR, st.lists(INTS, max_size=8))},
        lambda enc, k: huffman.huffman_decode(enc).tolist() == torch.as_tensor(k["symbols"]).reshape(-1).tolist()),
    "huffman.fixed_length_size_bytes": Entry(
        huffman.fixed_length_size_bytes, {"indices": lambda: [0, 5, 3], "bits": lambda: 4},
        {"indices": st.one_of(TENSOR, st.lists(INTS, max_size=8)), "bits": NUMBER},
        lambda size, k: size * 8 >= np.asarray(k["indices"]).size * max(1, int(np.asarray(k["indices"]).max()).bit_length())),
    "ptq.quantize_static": Entry(
        ptq.quantize_static, {"model": lenet, "calib_data": lambda: X, "weight_bits": lambda: 8, "act_bits": lambda: 8,
                              "observer": lambda: "minmax", "num_batches": lambda: 1, "batch_size": lambda: 8},
        {"model": MODELS, "calib_data": st.one_of(DATA, TENSOR), "weight_bits": NUMBER, "act_bits": NUMBER,
         "observer": choice("minmax", "histogram", "percentile", "mse", "entropy"), "num_batches": NUMBER,
         "batch_size": NUMBER},
        lambda q, k: 0.0 <= train.evaluate(q, (X, Y)) <= 1.0, {"calib_data": ("calib_data", "data", "x")}),
    "qat.prepare_qat": Entry(
        qat.prepare_qat, {"model": lenet, "weight_bits": lambda: 4, "act_bits": lambda: 4, "per_channel": lambda: True,
                          "quantizer": lambda: "ste"},
        {"model": MODELS, "weight_bits": NUMBER, "act_bits": NUMBER, "per_channel": NUMBER,
         "quantizer": choice("ste", "lsq", "pact")},
        lambda q, k: finite(q(X))),
    "integer.evaluate_integer": Entry(
        evaluate_integer, {"model": _integer_model, "data": lambda: (X, Y), "batch_size": lambda: 5},
        {"model": MODELS, "data": DATA, "batch_size": NUMBER}, lambda acc, k: 0.0 <= acc <= 1.0,
        {"data": ("data", "x")}),
    "prune.global_prune": Entry(
        prune.global_prune, {"model": lenet, "amount": lambda: 0.5, "criterion": lambda: "magnitude", "seed": lambda: 0},
        {"model": MODELS, "amount": NUMBER, "criterion": choice("magnitude", "random"), "seed": NUMBER},
        lambda masks, k: _pruned_fraction(k["model"], k["amount"])),
    "lowrank.svd_linear": Entry(
        svd_linear, {"layer": lambda: nn.Linear(6, 4), "rank": lambda: 2},
        {"layer": st.one_of(MODELS, st.sampled_from([lambda: nn.Linear(6, 4).double(), lambda: nn.Linear(6, 4).half(),
                                                     empty_linear, lambda: nn.Linear(6, 4).to("meta")]).map(
                                                         lambda make: make())), "rank": NUMBER},
        lambda f, k: f.second.weight.dtype == k["layer"].weight.dtype, {"layer": ("layer",)}),
    "models.build": Entry(
        models.build, {"name": lambda: "lenet5", "in_channels": lambda: 1, "num_classes": lambda: 10,
                       "image_size": lambda: 28},
        {"name": choice(*models.MODEL_NAMES), "in_channels": NUMBER, "num_classes": NUMBER, "image_size": NUMBER},
        lambda m, k: m.config()["num_classes"] == k["num_classes"]),
    "distill.kd_loss": Entry(
        kd_loss, {"student_logits": lambda: torch.randn(4, 10), "teacher_logits": lambda: torch.randn(4, 10),
                  "T": lambda: 4.0},
        {"student_logits": TENSOR, "teacher_logits": TENSOR, "T": NUMBER},
        lambda loss, k: finite(loss) and float(loss) >= -1e-6),
    "zoo.save_checkpoint": Entry(
        lambda **k: (zoo.save_checkpoint(k["model"], k["path"], note=k["note"]), k["model"])[1],
        {"model": lenet, "path": lambda: Path(CHECKPOINTS.name) / f"m{next(SAVED)}.pt", "note": lambda: "ok"},
        {"model": MODELS, "path": st.one_of(JUNK, st.just("")), "note": st.one_of(JUNK, NUMBER, TENSOR)},
        _round_trip_checkpoint, {"note": ("note",)}),
}

CHECKPOINTS, SAVED = tempfile.TemporaryDirectory(prefix="labkit-fuzz-"), itertools.count()
TALLY: Counter = Counter()
PROBLEMS: list[str] = []


def _message_names(error: Exception, words: tuple[str, ...]) -> bool:
    text = str(error)
    return any(word in text for word in words)


def _try(entry: Entry, kwargs: dict, arg: str) -> None:
    """Run one call and sort its outcome (see the module docstring)."""
    TALLY["tried"] += 1
    where = f"{entry.fn.__module__}.{getattr(entry.fn, '__name__', '?')}({arg}={kwargs[arg]!r:.80})"
    try:
        result = entry.fn(**kwargs)
    except (ValueError, TypeError) as error:
        if _message_names(error, entry.names.get(arg, (arg,))):
            TALLY["clear"] += 1
        else:
            TALLY["unclear"] += 1
            PROBLEMS.append(f"unclear: {where}: {type(error).__name__}: {str(error)[:200]}")
        return
    except Exception as error:  # noqa: BLE001 — every other exception is what this test looks for
        TALLY["crash"] += 1
        PROBLEMS.append(f"crash: {where}: {type(error).__name__}: {str(error)[:200]}")
        return
    try:
        right = bool(entry.oracle(result, kwargs))
    except Exception as error:  # noqa: BLE001 — an oracle that cannot even read the result
        right, error_text = False, f" ({type(error).__name__}: {error})"
    else:
        error_text = ""
    TALLY["accepted" if right else "silent-wrong"] += 1
    if not right:
        PROBLEMS.append(f"silent-wrong: {where}{error_text}")


@settings(max_examples=800, deadline=10_000, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large])
@given(st.data())
def _fuzz(data):
    name = data.draw(st.sampled_from(sorted(ENTRIES)), label="entry")
    entry = ENTRIES[name]
    arg = data.draw(st.sampled_from(sorted(entry.hostile)), label="argument")
    kwargs = {key: make() for key, make in entry.valid.items()}
    kwargs[arg] = data.draw(entry.hostile[arg], label=arg)
    _try(entry, kwargs, arg)


def test_every_refusal_names_its_argument_and_nothing_is_silently_wrong(tmp_path, monkeypatch):
    """Runs in an empty temporary directory: junk strings ("3", "abc") reach path arguments, and a
    save that accepts one writes a file of that name, which must not land in the checkout."""
    torch.set_num_threads(1)
    junk_names = [name for name in ("3", "abc") if not Path(name).exists()]
    checkout = Path.cwd()
    monkeypatch.chdir(tmp_path)
    _fuzz()
    assert not [name for name in junk_names if (checkout / name).exists()], "the fuzz test wrote into the checkout"
    summary = (f"{TALLY['tried']} tried, {TALLY['clear']} clear, {TALLY['silent-wrong']} silent-wrong "
               f"({TALLY['accepted']} accepted correctly, {TALLY['unclear']} unclear refusals, {TALLY['crash']} crashes)")
    print(f"\nfuzz of the public API: {summary}")
    assert not PROBLEMS, summary + "\n" + "\n".join(sorted(set(PROBLEMS))[:40])
    assert TALLY["tried"] >= 800 and TALLY["clear"] >= 400  # the hostile values were really hostile


def test_the_oracles_reject_wrong_answers():
    """The oracles are what make "accepted" mean "right": check that each can say no."""
    assert not ENTRIES["train.evaluate"].oracle(1.5, {})
    assert not ENTRIES["nonuniform.pow2_quantize"].oracle(torch.tensor([3.0]), {"x": torch.tensor([3.0])})
    assert not ENTRIES["huffman.huffman_encode"].oracle(huffman.huffman_encode([1, 2]), {"symbols": [2, 1]})
    model = lenet()
    prune.global_prune(model, 0.25)
    assert not ENTRIES["prune.global_prune"].oracle(None, {"model": model, "amount": 0.5})
    assert not ENTRIES["distill.kd_loss"].oracle(torch.tensor(math.nan), {})
