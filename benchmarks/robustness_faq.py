"""Chapter 15's experiments that do not fit a 90-second notebook: robustness of compressed models, the
seeds' FAQ grids and federated learning's communication cost, over several seeds on real MNIST.

Parts (each unit of work — part, model, seed — is cached as JSON in ``benchmarks/results/robustness_faq/``;
notebook 15 loads those files, and reproduces seed 0 of several of them live to show they are the same
computation):

* ``robustness``: ``labkit.robust.compressed_variants`` of the zoo model (base, pruned 90 %, structured
  50 %, int8 PTQ, 4-bit QAT, binary, distilled, low-rank), clean accuracy and robust accuracy under
  FGSM and PGD-10 (L∞) at each ε on the 10,000 test images, paired with the base on the same images;
  transfer of PGD examples base → variant and variant → base; the integer-only int8 model attacked
  through its fake-quantized twin.
* ``adversarial``: the pruned 90 % model fine-tuned for one pass over 12,800 images on adversarial
  examples (one-step PGD from a random start, ε = 0.1, Wong et al. 2020) against the same pass of plain
  fine-tuning; measured with PGD-10, PGD-50 with restarts, and PGD transferred from the base model.
* ``recovery``: seed 002 §9.1's grid — pruning ratio × fine-tuning steps (× learning rate), accuracy on
  a 5,000-image validation split (for choosing, seed 001 §9.4) and on the test set.
* ``kd``: seed 000 Q3's combination — the pruned 90 % model and the 4-bit QAT model fine-tuned with
  cross-entropy or with distillation from the dense model, same steps.
* ``federated``: FedAvg with 10 clients, client updates sent as float32, quantized (8/4/2/1 bits) or
  top-k sparsified (with and without error feedback); accuracy vs bytes sent.

    nohup .venv/bin/python benchmarks/robustness_faq.py --parts robustness --seeds 0 &   # parallel units
    .venv/bin/python benchmarks/robustness_faq.py           # computes what is missing, prints the tables
    .venv/bin/python benchmarks/robustness_faq.py --quick   # smoke run on digits, seconds, writes nothing
"""
from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import TensorDataset

from labkit import data, distill, federated, prune, quant, robust, stats, train, zoo
from labkit.distill import MLPStudent
from labkit.prune.recovery import recovery_curve
from labkit.quant import integer
from cli import add_threads
from prune_table import cached
from results import RESULTS_DIR

CACHE = RESULTS_DIR / "robustness_faq"
PARTS = ("robustness", "adversarial", "recovery", "kd", "federated")
CODECS = (federated.UpdateCodec(), federated.UpdateCodec("quantize", bits=8), federated.UpdateCodec("quantize", bits=4),
          federated.UpdateCodec("quantize", bits=2), federated.UpdateCodec("quantize", bits=1),
          federated.UpdateCodec("quantize", bits=1, error_feedback=True), federated.UpdateCodec("topk", keep_fraction=0.1),
          federated.UpdateCodec("topk", keep_fraction=0.01), federated.UpdateCodec("topk", keep_fraction=0.01,
                                                                                  error_feedback=True))


def config(quick: bool) -> dict:
    """Budgets of a full MNIST run, or of the smoke run on digits."""
    if quick:
        return {"dataset": "digits", "model": "lenet300", "seeds": (0,), "eps": (0.1,), "finetune_images": 640,
                "student_epochs": 1, "adv_images": 640, "adv_eps": 0.1, "eval_eps": (0.1,), "strong_steps": 5,
                "restarts": 1, "amounts": (0.9,), "lrs": (1e-3,), "checkpoints": (0, 5), "validation": 200,
                "kd_images": 640, "clients": 3, "rounds": 2, "local_steps": 2, "codecs": CODECS[:2] + CODECS[6:7]}
    return {"dataset": "mnist", "model": "lenet300", "seeds": (0, 1, 2), "eps": (0.02, 0.05, 0.1, 0.15),
            "finetune_images": 12_800, "student_epochs": 3, "adv_images": 12_800, "adv_eps": 0.1,
            "eval_eps": (0.05, 0.1), "strong_steps": 50, "restarts": 2, "amounts": (0.5, 0.8, 0.9, 0.95, 0.98, 0.99),
            "lrs": (1e-3, 1e-4), "checkpoints": (0, 25, 100, 400, 800), "validation": 5000, "kd_images": 12_800,
            "clients": 10, "rounds": 20, "local_steps": 10, "codecs": CODECS}


def paired(a, b) -> list[float]:
    """``[value, low, high]`` of B − A on the same images (``stats.paired_difference``)."""
    d = stats.paired_difference(a, b)
    return [d.value, d.low, d.high]


def accuracy(correct) -> float:
    return float(correct.float().mean())


# ----------------------------------------------------------------------------------------------
# Units of work
# ----------------------------------------------------------------------------------------------

def robustness_unit(seed: int, cfg: dict, progress: bool) -> dict:
    """Every variant of one seed: clean, FGSM and PGD-10 at each ε, transfer, and the integer-only model."""
    start = time.perf_counter()
    train_set, test_set = data.load(cfg["dataset"], "train"), data.load(cfg["dataset"], "test")
    base = zoo.pretrained(cfg["model"], cfg["dataset"], train_if_missing=False, progress=False)
    variants = robust.compressed_variants(base, train_set, seed=seed, finetune_images=cfg["finetune_images"],
                                          student_epochs=cfg["student_epochs"])
    reference = {"clean": train.correct(base, test_set)}
    base_examples = {eps: robust.adversarial_examples(base, test_set, eps, attack="pgd", seed=seed) for eps in cfg["eps"]}
    out = {"seed": seed, "model": cfg["model"], "eps": list(cfg["eps"]), "variants": {}}
    for name, model in variants.items():
        view, row = robust.attack_view(model), {}
        clean = train.correct(model, test_set)
        row["clean"] = {"acc": accuracy(clean), "vs_base": paired(reference["clean"], clean)}
        for attack in robust.ATTACKS:
            for eps in cfg["eps"]:
                if name == "base" and attack == "pgd":
                    examples = base_examples[eps]
                else:
                    examples = robust.adversarial_examples(view, test_set, eps, attack=attack, seed=seed,
                                                           progress=progress)
                correct = train.correct(model, examples)
                key = f"{attack} {eps:g}"
                reference.setdefault(key, correct)           # the base comes first: its results are the reference
                row[key] = {"acc": accuracy(correct), "vs_base": paired(reference[key], correct)}
                if attack == "pgd":
                    row[f"transfer {eps:g}"] = {"from_base": accuracy(train.correct(model, base_examples[eps])),
                                                "to_base": accuracy(train.correct(base, examples))}
        out["variants"][name] = row
    out["integer"] = integer_row(base, variants["int8 PTQ"], train_set, test_set, cfg, seed)
    out["seconds"] = time.perf_counter() - start
    return out


def integer_row(base, ptq_model, train_set, test_set, cfg: dict, seed: int) -> dict:
    """The integer-only int8 model: clean accuracy and accuracy on PGD examples of the PTQ model's twin."""
    calib = robust.training_subset(train_set, min(1024, len(train_set)), seed)
    model = integer.convert_to_integer(base, calib)
    twin = robust.straight_through_twin(ptq_model)
    row = {"clean": float(integer.evaluate_integer(model, test_set))}
    for eps in cfg["eps"]:
        row[f"pgd {eps:g}"] = accuracy(robust.robust_correct(model, test_set, eps, source=twin, seed=seed))
    return row


def adversarial_unit(seed: int, cfg: dict, progress: bool) -> dict:
    """Pruned 90 %: one pass of adversarial fine-tuning against one pass of plain fine-tuning."""
    start = time.perf_counter()
    train_set, test_set = data.load(cfg["dataset"], "train"), data.load(cfg["dataset"], "test")
    base = zoo.pretrained(cfg["model"], cfg["dataset"], train_if_missing=False, progress=False)
    pruned = robust.compressed_variants(base, train_set, seed=seed, names=["pruned 90 %"],
                                        finetune_images=cfg["finetune_images"])["pruned 90 %"]
    subset = robust.training_subset(train_set, cfg["adv_images"], seed + 1000)
    control, hardened = copy.deepcopy(pruned), copy.deepcopy(pruned)
    train.fit(control, subset, epochs=1, lr=1e-3, seed=seed, progress=False, after_step=prune.reapply_masks)
    robust.adversarial_finetune(hardened, subset, cfg["adv_eps"], seed=seed, after_step=prune.reapply_masks,
                                progress=progress)
    results = {}
    for name, model in (("control", control.eval()), ("adversarial", hardened)):
        results[name] = evaluate_hardening(model, base, test_set, cfg, seed)
    diffs = {key: paired(results["control"][key], results["adversarial"][key]) for key in results["control"]}
    return {"seed": seed, "eps_train": cfg["adv_eps"], "seconds": time.perf_counter() - start,
            "acc": {name: {k: accuracy(v) for k, v in r.items()} for name, r in results.items()},
            "adversarial_minus_control": diffs}


def evaluate_hardening(model, base, test_set, cfg: dict, seed: int) -> dict:
    """Per-image results: clean, PGD-10 and PGD transferred from the base at each ε, and PGD-``strong_steps``
    with ``restarts`` random starts at the largest ε (an image counts as robust only if every restart fails)."""
    out = {"clean": train.correct(model, test_set)}
    for eps in cfg["eval_eps"]:
        out[f"pgd {eps:g}"] = robust.robust_correct(model, test_set, eps, seed=seed)
        out[f"transfer from base {eps:g}"] = robust.robust_correct(model, test_set, eps, source=base, seed=seed)
    eps, strong = max(cfg["eval_eps"]), torch.ones(len(test_set), dtype=torch.bool)
    for restart in range(cfg["restarts"]):                 # robust only if no restart finds an example
        strong &= robust.robust_correct(model, test_set, eps, steps=cfg["strong_steps"], seed=seed + 10 * (restart + 1))
    out[f"pgd-{cfg['strong_steps']}x{cfg['restarts']} {eps:g}"] = strong
    return out


def recovery_unit(seed: int, cfg: dict, progress: bool) -> dict:
    """Seed 002 §9.1's grid for one seed: {lr: {amount: {step: accuracies and the paired change}}}."""
    start = time.perf_counter()
    train_set, test_set = data.load(cfg["dataset"], "train"), data.load(cfg["dataset"], "test")
    x, y = train_set.tensors
    cut = len(x) - cfg["validation"]
    fit_set, val_set = TensorDataset(x[:cut], y[:cut]), TensorDataset(x[cut:], y[cut:])
    base = zoo.pretrained(cfg["model"], cfg["dataset"], train_if_missing=False, progress=False)
    dense = {"val": train.correct(base, val_set), "test": train.correct(base, test_set)}
    grid = {}
    for lr in cfg["lrs"]:
        for amount in cfg["amounts"]:
            curve = recovery_curve(base, amount, fit_set, {"val": val_set, "test": test_set}, cfg["checkpoints"],
                                   lr=lr, seed=seed)
            grid.setdefault(f"{lr:g}", {})[f"{amount:g}"] = {
                str(step): {"val": accuracy(r["val"]), "test": accuracy(r["test"]),
                            "test_vs_dense": paired(dense["test"], r["test"])} for step, r in curve.items()}
    return {"seed": seed, "dense": {k: accuracy(v) for k, v in dense.items()}, "grid": grid,
            "validation_images": cfg["validation"], "seconds": time.perf_counter() - start}


def kd_unit(seed: int, cfg: dict, progress: bool) -> dict:
    """Seed 000 Q3: prune 90 % (or QAT W4A4), then the same steps with cross-entropy or with KD from the base."""
    start = time.perf_counter()
    train_set, test_set = data.load(cfg["dataset"], "train"), data.load(cfg["dataset"], "test")
    base = zoo.pretrained(cfg["model"], cfg["dataset"], train_if_missing=False, progress=False)
    subset = robust.training_subset(train_set, cfg["kd_images"], seed)
    starts = {"pruned 90 %": lambda: pruned_copy(base), "4-bit QAT": lambda: quant.prepare_qat(base, 4, 4)}
    out = {"seed": seed, "seconds": 0.0, "rows": {}}
    for name, make in starts.items():
        correct = {}
        for loss, alpha in (("cross-entropy", 0.0), ("distillation", 0.9)):
            train.set_seed(seed)
            model = make()
            after = prune.reapply_masks if name.startswith("pruned") else None
            distill.distill(model, base, subset, T=4.0, alpha=alpha, epochs=1, lr=1e-3, seed=seed, progress=False,
                            after_step=after)
            final = quant.convert(model) if name == "4-bit QAT" else model.eval()
            correct[loss] = train.correct(final, test_set)
        out["rows"][name] = {"cross-entropy": accuracy(correct["cross-entropy"]),
                             "distillation": accuracy(correct["distillation"]),
                             "kd_minus_ce": paired(correct["cross-entropy"], correct["distillation"])}
    out["seconds"] = time.perf_counter() - start
    return out


def pruned_copy(base):
    model = copy.deepcopy(base)
    prune.global_magnitude_prune(model, 0.9)
    return model


def federated_unit(seed: int, cfg: dict, progress: bool) -> dict:
    """FedAvg from the same initial MLP (784-100-10) with every codec of ``cfg``; the same client split."""
    start = time.perf_counter()
    train_set, test_set = data.load(cfg["dataset"], "train"), data.load(cfg["dataset"], "test")
    shards = federated.split_clients(train_set, cfg["clients"], seed=seed)
    out = {"seed": seed, "clients": cfg["clients"], "rounds": cfg["rounds"], "local_steps": cfg["local_steps"],
           "codecs": {}}
    reference = None
    for codec in cfg["codecs"]:
        train.set_seed(seed)
        model = MLPStudent((100,))
        result = federated.federated_averaging(model, shards, test_set, rounds=cfg["rounds"],
                                               local_steps=cfg["local_steps"], codec=codec, seed=seed,
                                               progress=progress)
        reference = result["correct"] if reference is None else reference
        out["codecs"][codec.label] = {"accuracy": [r["accuracy"] for r in result["rounds"]],
                                      "uplink_bytes": [r["uplink_bytes"] for r in result["rounds"]],
                                      "downlink_bytes": result["downlink_bytes"],
                                      "vs_float32": paired(reference, result["correct"])}
    out["seconds"] = time.perf_counter() - start
    return out


UNITS = {"robustness": robustness_unit, "adversarial": adversarial_unit, "recovery": recovery_unit,
         "kd": kd_unit, "federated": federated_unit}


# ----------------------------------------------------------------------------------------------
# Tables
# ----------------------------------------------------------------------------------------------

def over_seeds(values) -> str:
    """``mean [low, high]`` in % over seeds (Student t), or the single value."""
    values = [100 * v for v in values]
    if len(values) < 2:
        return f"{values[0]:.2f}"
    est = stats.seed_interval(values)
    return f"{est.value:.2f} [{est.low:.2f}, {est.high:.2f}]"


def robustness_table(units: list[dict]) -> str:
    eps, names = units[0]["eps"], list(units[0]["variants"])
    head = ["variant", "clean"] + [f"{a} ε={e:g}" for a in robust.ATTACKS for e in eps]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in names:
        cells = [over_seeds([u["variants"][name]["clean"]["acc"] for u in units])]
        cells += [over_seeds([u["variants"][name][f"{a} {e:g}"]["acc"] for u in units]) for a in robust.ATTACKS for e in eps]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def print_tables(units: dict) -> None:
    if units.get("robustness"):
        print("\nRobust accuracy (%, mean [95 % interval] over seeds):\n" + robustness_table(units["robustness"]))
    for u in units.get("adversarial", []):
        print(f"\nadversarial fine-tuning, seed {u['seed']}: " + ", ".join(
            f"{k}: {100 * u['acc']['control'][k]:.2f} → {100 * u['acc']['adversarial'][k]:.2f}" for k in u["acc"]["control"]))
    for u in units.get("kd", []):
        print(f"\nKD vs CE, seed {u['seed']}: " + ", ".join(
            f"{k}: CE {100 * r['cross-entropy']:.2f} %, KD {100 * r['distillation']:.2f} %" for k, r in u["rows"].items()))
    for u in units.get("federated", []):
        print(f"\nFedAvg seed {u['seed']}: " + ", ".join(
            f"{k} {100 * r['accuracy'][-1]:.2f} % / {r['uplink_bytes'][-1]:,} B" for k, r in u["codecs"].items()))
    for u in units.get("recovery", []):
        print(f"\nrecovery grid seed {u['seed']} (test %, lr → amount → step): " + "; ".join(
            f"lr {lr} {a}: " + " ".join(f"{s}:{100 * v['test']:.1f}" for s, v in row.items())
            for lr, rows in u["grid"].items() for a, row in rows.items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run on digits (seconds); writes nothing")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=None, help="default: 0 1 2 (0 with --quick)")
    add_threads(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    if args.seeds is not None and any(s < 0 for s in args.seeds):
        parser.error(f"--seeds must be integers >= 0, got {args.seeds}")
    torch.set_num_threads(args.threads)
    cfg = config(args.quick)
    seeds = tuple(args.seeds) if args.seeds is not None else cfg["seeds"]
    with tempfile.TemporaryDirectory(prefix="labkit-robustness-faq-") as scratch:
        folder = Path(scratch) if args.quick else CACHE
        units = {part: [cached(folder, f"{part}-{cfg['model']}-seed{s}",
                               lambda part=part, s=s: UNITS[part](s, cfg, not args.quiet)) for s in seeds]
                 for part in args.parts}
    print(f"Chapter 15's experiments on {cfg['dataset']} ({'smoke run' if args.quick else 'full run'}), seeds {list(seeds)}:")
    print_tables(units)
    return 0


if __name__ == "__main__":
    sys.exit(main())
