"""A tiny neural architecture search: random and evolutionary search under a MACs budget.

The search space is a family of depthwise-separable CNNs (MobileNet-style, Howard et al. 2017):
a 3×3 stride-2 stem, then ``depth`` blocks ``depthwise k×k → BN → ReLU → pointwise 1×1 → BN → ReLU``
with base widths 32, 64, 128, 128 (strides 1, 2, 2, 1) scaled by the width multiplier ``α``, then
global pooling and a classifier. A candidate ``(width, depth, kernel)`` costs
``MACs(α) ≈ α²·MACs(1)`` in its pointwise convolutions, which dominate. Candidates above the budget
are never trained. Each one is scored by a *proxy*: one short training epoch on a subset, then
accuracy on a fixed evaluation subset — cheap, noisy, and only a ranking signal.
Random search samples feasible candidates uniformly; evolution (regularised evolution, Real et al.
2019) repeatedly picks the best of a random sample of the population, mutates one choice, trains the
child and retires the oldest member. Everything is seeded, so a search repeats exactly.
Explained in notebooks/13_lowrank_lightweight.ipynb.
"""
from __future__ import annotations

import functools
import itertools
import random
from collections import OrderedDict, deque
from dataclasses import asdict, dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

from labkit import measure, train
from labkit.validate import require_int

BASE_WIDTHS = (32, 64, 128, 128)
STRIDES = (1, 2, 2, 1)


@dataclass(frozen=True)
class SearchSpace:
    """The choices: width multipliers α, numbers of blocks, depthwise kernel sizes."""

    widths: tuple = (0.25, 0.5, 0.75, 1.0)
    depths: tuple = (1, 2, 3, 4)
    kernels: tuple = (3, 5)

    def __post_init__(self):
        for name in ("widths", "depths", "kernels"):
            values = getattr(self, name)
            if not isinstance(values, tuple) or not values:
                raise ValueError(f"{name} must be a non-empty tuple")
        if any(not 0 < w <= 4 for w in self.widths):
            raise ValueError("widths must be multipliers in (0, 4]")
        if any(not 1 <= d <= len(BASE_WIDTHS) for d in self.depths):
            raise ValueError(f"depths must be in [1, {len(BASE_WIDTHS)}]")
        if any(k % 2 == 0 or k < 1 for k in self.kernels):
            raise ValueError("kernels must be odd positive sizes (3, 5, ...)")

    def all(self) -> list["Candidate"]:
        return [Candidate(w, d, k) for w, d, k in itertools.product(self.widths, self.depths, self.kernels)]


@dataclass(frozen=True)
class Candidate:
    """One architecture: width multiplier, number of depthwise-separable blocks, depthwise kernel size."""

    width: float
    depth: int
    kernel: int


def _channels(base: int, width: float) -> int:
    return max(4, int(round(base * width)))


def build_candidate(candidate: Candidate, in_channels: int = 1, num_classes: int = 10) -> nn.Sequential:
    """The CNN of ``candidate``: ``[N, in_channels, S, S]`` → logits ``[N, num_classes]``.
    Explained in notebooks/13_lowrank_lightweight.ipynb."""
    stem = _channels(16, candidate.width)
    layers = [("stem", nn.Sequential(OrderedDict([
        ("conv", nn.Conv2d(in_channels, stem, 3, stride=2, padding=1, bias=False)),
        ("bn", nn.BatchNorm2d(stem)), ("relu", nn.ReLU())])))]
    c, k = stem, candidate.kernel
    for i in range(candidate.depth):
        out = _channels(BASE_WIDTHS[i], candidate.width)
        layers.append((f"block{i + 1}", nn.Sequential(OrderedDict([
            ("depthwise", nn.Conv2d(c, c, k, stride=STRIDES[i], padding=k // 2, groups=c, bias=False)),
            ("bn1", nn.BatchNorm2d(c)), ("relu1", nn.ReLU()),
            ("pointwise", nn.Conv2d(c, out, 1, bias=False)),
            ("bn2", nn.BatchNorm2d(out)), ("relu2", nn.ReLU())]))))
        c = out
    layers += [("pool", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten()), ("fc", nn.Linear(c, num_classes))]
    return nn.Sequential(OrderedDict(layers))


def candidate_macs(candidate: Candidate, input_shape=(1, 28, 28)) -> int:
    """MACs of one example through ``build_candidate(candidate)`` (``labkit.measure.total_macs``; cached)."""
    return _macs(candidate, tuple(input_shape))


@functools.lru_cache(maxsize=4096)
def _macs(candidate: Candidate, input_shape: tuple) -> int:
    return measure.total_macs(build_candidate(candidate, in_channels=input_shape[0]), input_shape)


def feasible(space: SearchSpace, max_macs: int, input_shape=(1, 28, 28)) -> list[Candidate]:
    """The candidates of ``space`` whose MACs are ≤ ``max_macs`` (in the space's order)."""
    return [c for c in space.all() if candidate_macs(c, input_shape) <= max_macs]


class ProxyScorer:
    """Score = eval-subset accuracy after ``epochs`` of Adam on ``train_data`` (cached per candidate).

    The model is initialised with ``train.set_seed(seed)``, so a candidate always gets the same score.
    """

    def __init__(self, train_data, eval_data, *, epochs: int = 1, lr: float = 3e-3, batch_size: int = 64,
                 seed: int = 0, input_shape=(1, 28, 28)):
        self.train_data, self.eval_data = train_data, eval_data
        self.epochs = require_int("epochs", epochs, 1, 100)
        self.lr, self.batch_size = lr, batch_size
        self.seed = require_int("seed", seed, 0, 2**32 - 1)
        self.input_shape = tuple(input_shape)
        self.cache: dict[Candidate, dict] = {}

    def __call__(self, candidate: Candidate) -> dict:
        if candidate not in self.cache:
            train.set_seed(self.seed)
            model = build_candidate(candidate, in_channels=self.input_shape[0])
            train.fit(model, self.train_data, epochs=self.epochs, lr=self.lr, batch_size=self.batch_size,
                      seed=self.seed, progress=False)
            recalibrate_batchnorm(model, self.train_data)
            self.cache[candidate] = {**asdict(candidate), "macs": measure.total_macs(model, self.input_shape),
                                     "params": measure.count_parameters(model),
                                     "accuracy": train.evaluate(model.eval(), self.eval_data)}
        return self.cache[candidate]


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, data, batches: int = 8, batch_size: int = 128) -> None:
    """Re-estimate every BatchNorm's running mean/var as a plain average over ``batches`` batches of
    ``data`` (train-mode forward, no gradient). After one short epoch the running averages (momentum
    0.1) still remember the random initialisation; recalibrating makes eval-mode scores meaningful."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    was_training = model.training
    for bn in norms:
        bn.reset_running_stats()
        bn.momentum = None          # cumulative average
    model.train()
    if isinstance(data, (tuple, list)):
        data = torch.utils.data.TensorDataset(*data)
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=False)
    for i, (x, _) in enumerate(loader):
        if i == batches:
            break
        model(x)
    for bn in norms:
        bn.momentum = 0.1
    model.train(was_training)


def _check_search(space, max_macs, budget, input_shape):
    if not isinstance(space, SearchSpace):
        raise TypeError(f"space must be a SearchSpace, got {type(space).__name__}")
    max_macs = require_int("max_macs", max_macs, 1)
    require_int("budget", budget, 1, 10_000)
    options = feasible(space, max_macs, input_shape)
    if not options:
        raise ValueError(f"no candidate of the space fits max_macs={max_macs:,}; the smallest needs "
                         f"{min(candidate_macs(c, input_shape) for c in space.all()):,}")
    return options


def random_search(space: SearchSpace, scorer: ProxyScorer, *, max_macs: int, budget: int = 8,
                  seed: int = 0, progress: bool = True) -> list[dict]:
    """Score ``budget`` distinct candidates drawn uniformly (seeded) from those within ``max_macs``.

    Returns the records (``width, depth, kernel, macs, params, accuracy``) in the order evaluated.
    Explained in notebooks/13_lowrank_lightweight.ipynb.
    """
    options = _check_search(space, max_macs, budget, scorer.input_shape)
    picks = random.Random(seed).sample(options, min(budget, len(options)))
    return [scorer(c) for c in tqdm(picks, desc="random search", disable=not progress, leave=False)]


def _mutate(parent: Candidate, space: SearchSpace, rng: random.Random) -> Candidate:
    gene = rng.choice([g for g in ("width", "depth", "kernel") if len(getattr(space, g + "s")) > 1] or ["width"])
    choices = [v for v in getattr(space, gene + "s") if v != getattr(parent, gene)] or [getattr(parent, gene)]
    values = asdict(parent)
    values[gene] = rng.choice(choices)
    return Candidate(**values)


def evolutionary_search(space: SearchSpace, scorer: ProxyScorer, *, max_macs: int, budget: int = 8,
                        population: int = 4, sample: int = 2, seed: int = 0, progress: bool = True) -> list[dict]:
    """Regularised evolution: ``population`` random feasible parents, then children by one-gene mutation
    of the best of ``sample`` random members until ``budget`` candidates are scored; children over
    ``max_macs`` are redrawn (never trained). Returns the records in the order evaluated.
    Explained in notebooks/13_lowrank_lightweight.ipynb.
    """
    options = _check_search(space, max_macs, budget, scorer.input_shape)
    population = require_int("population", population, 1, budget)
    sample = require_int("sample", sample, 1, population)
    rng = random.Random(seed)
    allowed = set(options)
    history, alive = [], deque()
    with tqdm(total=budget, desc="evolution", disable=not progress, leave=False) as bar:
        for c in rng.sample(options, min(population, len(options))):
            alive.append(scorer(c))
            history.append(alive[-1])
            bar.update()
        seen = {Candidate(r["width"], r["depth"], r["kernel"]) for r in history}
        attempts = 0
        while len(history) < budget and len(seen) < len(allowed) and attempts < 100 * budget:
            attempts += 1
            parent = max(rng.sample(list(alive), min(sample, len(alive))), key=lambda r: r["accuracy"])
            child = _mutate(Candidate(parent["width"], parent["depth"], parent["kernel"]), space, rng)
            if child not in allowed or child in seen:
                continue
            seen.add(child)
            alive.append(scorer(child))
            history.append(alive[-1])
            alive.popleft()
            bar.update()
    return history


def best(records: list[dict]) -> dict:
    """The record with the highest accuracy (ties: fewer MACs)."""
    return max(records, key=lambda r: (r["accuracy"], -r["macs"]))
