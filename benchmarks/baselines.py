"""Baselines of the model zoo on real MNIST and Fashion-MNIST: accuracy, size, MACs and latency.

The uncompressed references every compression chapter is measured against. Targets on MNIST
(Han et al., "Learning both Weights and Connections for Efficient Neural Networks", NeurIPS
2015, Table 1): LeNet-300-100 1.64 % error (accuracy >= 98.2 %), LeNet-5 0.80 % (>= 99.1 %).

    LABKIT_DATA=/path/to/idx/files .venv/bin/python benchmarks/baselines.py \
        --models lenet300 lenet5 --datasets mnist fashion-mnist

Models come from ``labkit.zoo.pretrained`` (shipped or cached checkpoint, else trained with the
zoo's recipe and cached). ``--epochs N`` trains afresh with N epochs and caches nothing.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import replace

import torch

from labkit import data, measure, models, train, zoo


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(models.MODEL_NAMES), choices=models.MODEL_NAMES)
    parser.add_argument("--datasets", nargs="+", default=["mnist", "fashion-mnist"], choices=data.DATASETS)
    parser.add_argument("--epochs", type=int, default=None,
                        help="train afresh with this many epochs (default: the zoo recipe, cached)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads for the latency runs")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    if args.epochs is not None and args.epochs < 1:
        parser.error(f"--epochs must be an integer >= 1, got {args.epochs}")
    return args


def trained_model(name: str, dataset: str, epochs: int | None, progress: bool):
    """The zoo model (cached), or one trained afresh with ``epochs`` (not cached)."""
    if epochs is None:
        model = zoo.pretrained(name, dataset, progress=progress)
        return model, zoo.checkpoint_info(name, dataset)["recipe"]["epochs"]
    recipe = replace(zoo.recipe_for(name, dataset), epochs=epochs)
    model, _ = zoo.train_model(name, dataset, recipe, progress=progress)
    return model, epochs


def measure_row(name: str, dataset: str, epochs: int | None, threads: int | None, progress: bool) -> dict:
    """One table row: accuracy on the full test split, parameters, MACs, fp32 bytes, latency."""
    model, used_epochs = trained_model(name, dataset, epochs, progress)
    test_set = data.load(dataset, "test")
    shape = tuple(test_set.tensors[0].shape[1:])
    x = test_set.tensors[0]
    return {
        "model": name, "dataset": dataset, "epochs": used_epochs,
        "accuracy": train.evaluate(model, test_set),
        "params": measure.count_parameters(model),
        "macs": measure.total_macs(model, shape),
        "fp32_bytes": measure.size_on_disk(model, "fp32"),
        "ms_b1": measure.latency(model, x[:1], threads=threads, repeats=100)["median_ms"],
        "ms_b256": measure.latency(model, x[:256], threads=threads, repeats=20)["median_ms"],
    }


def format_table(rows: list[dict]) -> str:
    """A Markdown table of the rows (accuracy as a percentage, latency medians in ms)."""
    header = ("| model | dataset | epochs | test acc | params | MACs | fp32 bytes | ms (b=1) | ms (b=256) |\n"
              "|---|---|---:|---:|---:|---:|---:|---:|---:|")
    lines = [f"| {r['model']} | {r['dataset']} | {r['epochs']} | {r['accuracy']:.2%} | {r['params']:,} | "
             f"{r['macs']:,} | {r['fp32_bytes']:,} | {r['ms_b1']:.3f} | {r['ms_b256']:.2f} |" for r in rows]
    return "\n".join([header, *lines])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rows = []
    for dataset in args.datasets:
        for name in args.models:
            try:
                rows.append(measure_row(name, dataset, args.epochs, args.threads, not args.quiet))
            except data.DatasetNotFoundError as err:
                print(f"skipping {dataset}: {err}", file=sys.stderr)
                break
            print(format_table(rows[-1:]).splitlines()[-1], flush=True)
    print(f"\ntorch {torch.__version__}, {torch.get_num_threads()} threads\n")
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
