"""Baselines of the model zoo on MNIST, digits and Fashion-MNIST: accuracy, size, MACs and latency.

The uncompressed references every compression chapter is measured against. Targets on MNIST
(Han et al., "Learning both Weights and Connections for Efficient Neural Networks", NeurIPS
2015, Table 1): LeNet-300-100 1.64 % error (accuracy >= 98.2 %), LeNet-5 (Caffe's, our
``lenet5-caffe``) 0.80 % (>= 99.1 %), and LeCun's LeNet-5 held to the same 99.1 %; on the embedded
digits both LeNets reach >= 95 %. Fashion-MNIST has no target ("—"). Accuracies carry their 95 %
Wilson interval on the test split. A full run records the MNIST rows for ``scorecard.py``.

    LABKIT_DATA=/path/to/idx/files .venv/bin/python benchmarks/baselines.py \
        --models lenet300 lenet5 --datasets digits mnist fashion-mnist
    .venv/bin/python benchmarks/baselines.py --quick      # smoke run: digits LeNets, a few seconds

Models come from ``labkit.zoo.pretrained`` (shipped or cached checkpoint, else trained with the
zoo's recipe and cached). ``--epochs N`` trains afresh with N epochs and caches nothing. A dataset
whose files are missing stops the run before any training, with exit status 2.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace

import torch

from labkit import data, measure, models, stats, train, zoo
from cli import AtLeastOne, add_threads
from results import Row, record

DEFAULT_DATASETS = ("mnist", "digits", "fashion-mnist")
QUICK_MODELS, QUICK_DATASETS = ("lenet300", "lenet5"), ("digits",)
# Least test accuracy per (model, dataset); rows without an entry have no target.
TARGETS = {
    ("lenet300", "mnist"): 0.982, ("lenet5", "mnist"): 0.991,  # Han et al. 2015: 1.64 % / 0.80 % error
    ("lenet5-caffe", "mnist"): 0.991,
    ("lenet300", "digits"): 0.95, ("lenet5", "digits"): 0.95,
}
LATENCY_REPEATS = {False: (100, 20), True: (5, 2)}  # quick? -> (batch 1, batch 256) timed runs
PAPER_ERROR = {"lenet300": 1.64, "lenet5-caffe": 0.80}  # Han et al. 2015, Table 1 (% test error)
COLUMNS = ("model", "dataset", "epochs", "test acc", "95 % interval", "target", "status", "params", "MACs", "fp32 bytes",
           "ms (b=1)", "ms (b=256)")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=None, choices=models.MODEL_NAMES,
                        help="default: every zoo model (LeNet-300-100 and LeNet-5 with --quick)")
    parser.add_argument("--datasets", nargs="+", default=None, choices=data.DATASETS,
                        help=f"default: {' '.join(DEFAULT_DATASETS)} (digits with --quick)")
    parser.add_argument("--epochs", type=int, default=None, action=AtLeastOne,
                        help="train afresh with this many epochs (default: the zoo recipe, cached)")
    add_threads(parser, default=None, help="torch threads for the latency runs")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: the shipped digits LeNets and a handful of latency runs")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    args.models = args.models or list(QUICK_MODELS if args.quick else models.MODEL_NAMES)
    args.explicit_datasets = args.datasets is not None
    args.datasets = args.datasets or list(QUICK_DATASETS if args.quick else DEFAULT_DATASETS)
    return args


def missing_datasets(datasets) -> list[str]:
    """The error message of every dataset whose files cannot be found (checked before any training)."""
    missing = []
    for dataset in datasets:
        try:
            for split in ("train", "test"):
                data.load(dataset, split)
        except data.DatasetNotFoundError as err:
            missing.append(str(err))
    return missing


def trained_model(name: str, dataset: str, epochs: int | None, progress: bool):
    """The zoo model (cached), or one trained afresh with ``epochs`` (not cached)."""
    if epochs is None:
        model = zoo.pretrained(name, dataset, progress=progress)
        return model, zoo.checkpoint_info(name, dataset)["recipe"]["epochs"]
    recipe = replace(zoo.recipe_for(name, dataset), epochs=epochs)
    model, _ = zoo.train_model(name, dataset, recipe, progress=progress)
    return model, epochs


def measure_row(name: str, dataset: str, args: argparse.Namespace) -> dict:
    """One table row: accuracy on the full test split, its target, parameters, MACs, fp32 bytes, latency."""
    model, used_epochs = trained_model(name, dataset, args.epochs, not args.quiet)
    test_set = data.load(dataset, "test")
    shape = tuple(test_set.tensors[0].shape[1:])
    x = test_set.tensors[0]
    repeats_b1, repeats_b256 = LATENCY_REPEATS[args.quick]
    accuracy = stats.accuracy_interval(train.correct(model, test_set))
    return {
        "model": name, "dataset": dataset, "epochs": used_epochs,
        "accuracy": accuracy.value, "interval": accuracy, "target": TARGETS.get((name, dataset)),
        "params": measure.count_parameters(model),
        "macs": measure.total_macs(model, shape),
        "fp32_bytes": measure.size_on_disk(model, "fp32"),
        "ms_b1": measure.latency(model, x[:1], threads=args.threads, repeats=repeats_b1)["median_ms"],
        "ms_b256": measure.latency(model, x[:256], threads=args.threads, repeats=repeats_b256)["median_ms"],
    }


def target_text(row: dict) -> str:
    return "—" if row["target"] is None else f"≥ {row['target']:.1%}"


def status(row: dict) -> str:
    """PASS / MISS against the row's target, "—" where there is none."""
    if row["target"] is None:
        return "—"
    return "PASS" if row["accuracy"] >= row["target"] else "MISS"


def format_table(rows: list[dict]) -> str:
    """A Markdown table of the rows (accuracy as a percentage, latency medians in ms)."""
    header = "| " + " | ".join(COLUMNS) + " |\n|---|---|" + "---:|" * 4 + ":---:|" + "---:|" * 5
    lines = [f"| {r['model']} | {r['dataset']} | {r['epochs']} | {r['accuracy']:.2%} | "
             f"[{100 * r['interval'].low:.2f}, {100 * r['interval'].high:.2f}] | {target_text(r)} | {status(r)} | {r['params']:,} | "
             f"{r['macs']:,} | {r['fp32_bytes']:,} | {r['ms_b1']:.3f} | {r['ms_b256']:.2f} |" for r in rows]
    return "\n".join([header, *lines])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    missing = missing_datasets(args.datasets)
    if missing and not args.explicit_datasets:  # the default list: measure what is here, say what is not
        for message in missing:
            print(f"skipped (files not found): {message.splitlines()[0]}", file=sys.stderr)
        args.datasets = [d for d in args.datasets if not any(m.startswith(f"{d}:") for m in missing)]
        missing = []
    if missing:
        print("error: " + "\n\n".join(missing), file=sys.stderr)
        print("\nNothing was measured. Point LABKIT_DATA at the original files, or fetch them once "
              "with `make data`, or leave the missing datasets out of --datasets.", file=sys.stderr)
        return 2
    rows, start = [], time.perf_counter()
    for dataset in args.datasets:
        for name in args.models:
            rows.append(measure_row(name, dataset, args))
            rows[-1]["seconds"] = time.perf_counter() - start
            print(format_table(rows[-1:]).splitlines()[-1], flush=True)
    judged = [r for r in rows if r["target"] is not None]
    print(f"\ntorch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"targets met: {sum(status(r) == 'PASS' for r in judged)}/{len(judged)}\n")
    print(format_table(rows))
    if not args.quick and args.epochs is None:
        paper_rows = [scorecard_row(r) for r in rows if r["target"] is not None]
        if paper_rows:
            print(f"\nrecorded for the scorecard: {record('baselines', paper_rows)}")
    return 0


def scorecard_row(row: dict) -> Row:
    error = 100 * (1 - row["accuracy"])
    paper = PAPER_ERROR.get(row["model"]) if row["dataset"] == "mnist" else None   # the paper's numbers are MNIST's
    return Row(experiment="baseline (uncompressed)", model=row["model"], metric="test error %",
               ours=round(error, 2), paper=paper, tolerance=f"accuracy >= {row['target']:.1%}",
               passed=status(row) == "PASS", seeds=1, seconds=round(row["seconds"], 1),
               source="Han et al. 2015, Table 1" if paper else "",
               note=f"95 % interval of the accuracy {row['interval']}", dataset=row["dataset"])


if __name__ == "__main__":
    raise SystemExit(main())
