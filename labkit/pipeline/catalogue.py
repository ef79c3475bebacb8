"""Every technique of the lab as sweep points, and the shipped MNIST results the explorer opens with.

``default_points()`` lists, for LeNet-300-100 and LeNet-5, one pipeline per technique and setting —
each pruning family (unstructured magnitude and random, structured channel surgery), each bit width
(PTQ 8/6/4/3, QAT 4 and 2 bits, k-means codebooks 5/4/3/2 bits), distillation, low-rank
factorisation, integer-only inference, the lightweight network (MobileNet) and the small VGG/ResNet
as they are, and combinations (prune → quantize, Deep-Compression-like prune → k-means, structured →
integer, low-rank → PTQ, prune ↔ QAT in both orders with and without KD). Fine-tuning uses 8,192
training images for 2 epochs (QAT and KD too), so a point costs seconds to a minute on one core; every
result is measured on all 10,000 test images.

Run the whole sweep (1 thread per worker; hours on a loaded 2-core machine) and refresh the shipped file::

    nohup .venv/bin/python -m labkit.pipeline.catalogue --workers 1 &

Explained in notebooks/14_pipeline_tradeoffs_export.ipynb
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from labkit.pipeline.sweep import SweepPoint, load_results, run_sweep

__all__ = ["SHIPPED_RESULTS", "FAMILIES", "default_points", "shipped_results"]

SHIPPED_RESULTS = Path(__file__).resolve().parent / "results" / "tradeoffs-mnist.json"
FAMILIES = ("baseline", "lightweight", "unstructured", "structured", "ptq", "qat", "kmeans", "distill",
            "lowrank", "integer", "combination")
TUNE = ("finetune", {"epochs": 2, "train_size": 8192})
KD = ("distill", {"epochs": 2, "train_size": 8192})


def _point(model: str, family: str, label: str, *steps) -> SweepPoint:
    return SweepPoint(model, tuple(steps), family, label)


def _per_model(model: str) -> list[SweepPoint]:
    p = []
    p.append(_point(model, "baseline", "fp32 (zoo)"))
    for amount in (0.5, 0.8, 0.9, 0.95):
        p.append(_point(model, "unstructured", f"magnitude {amount:.0%} + FT", ("prune", {"amount": amount}), TUNE))
    p.append(_point(model, "unstructured", "random 50% + FT", ("prune", {"amount": 0.5, "criterion": "random"}), TUNE))
    p.append(_point(model, "unstructured", "magnitude 90% (no FT)", ("prune", {"amount": 0.9})))
    for amount in (0.25, 0.5, 0.75):
        p.append(_point(model, "structured", f"L1 channels {amount:.0%} + FT", ("structured", {"amount": amount}), TUNE))
    for bits in (8, 6, 4, 3):
        p.append(_point(model, "ptq", f"PTQ W{bits}A8", ("ptq", {"weight_bits": bits})))
    for bits in (4, 2):
        p.append(_point(model, "qat", f"QAT W{bits}A8", ("qat", {"weight_bits": bits}), TUNE))
    for bits in (5, 4, 3, 2):
        p.append(_point(model, "kmeans", f"k-means {bits}-bit + FT", ("kmeans", {"bits": bits}), TUNE))
    p.append(_point(model, "distill", "magnitude 90% + KD", ("prune", {"amount": 0.9}), KD))
    p.append(_point(model, "distill", "L1 channels 75% + KD", ("structured", {"amount": 0.75}), KD))
    for energy in (0.5, 0.7, 0.9):
        p.append(_point(model, "lowrank", f"low-rank {energy:.0%} energy + FT", ("lowrank", {"energy": energy}), TUNE))
    p.append(_point(model, "integer", "integer-only int8", ("integer", {})))
    p += [
        _point(model, "combination", "prune 90% + FT → PTQ W4", ("prune", {"amount": 0.9}), TUNE, ("ptq", {"weight_bits": 4})),
        _point(model, "combination", "prune 90% + FT → k-means 4 + FT", ("prune", {"amount": 0.9}), TUNE,
               ("kmeans", {"bits": 4}), TUNE),
        _point(model, "combination", "QAT W4 + FT → prune 90% + FT", ("qat", {"weight_bits": 4}), TUNE,
               ("prune", {"amount": 0.9}), TUNE),
        _point(model, "combination", "prune 90% + KD → QAT W4 + KD", ("prune", {"amount": 0.9}), KD,
               ("qat", {"weight_bits": 4}), KD),
        # with the two above, the 2 × 2 of chapter 14's "order matters": which comes first, with or without KD
        _point(model, "combination", "prune 90% + FT → QAT W4 + FT", ("prune", {"amount": 0.9}), TUNE,
               ("qat", {"weight_bits": 4}), TUNE),
        _point(model, "combination", "QAT W4 + KD → prune 90% + KD", ("qat", {"weight_bits": 4}), KD,
               ("prune", {"amount": 0.9}), KD),
        _point(model, "combination", "L1 channels 50% + FT → int8", ("structured", {"amount": 0.5}), TUNE, ("integer", {})),
        _point(model, "combination", "low-rank 70% + FT → PTQ W8", ("lowrank", {"energy": 0.7}), TUNE, ("ptq", {"weight_bits": 8})),
    ]
    return p


def default_points() -> list[SweepPoint]:
    """The sweep behind the shipped results: ``_per_model`` for LeNet-300-100 and LeNet-5, the other zoo
    networks as they are (MobileNet is the lab's lightweight network) and MobileNet at PTQ W8.
    Explained in notebooks/14_pipeline_tradeoffs_export.ipynb
    """
    points = _per_model("lenet300") + _per_model("lenet5")
    for model in ("vgg", "resnet", "lenet5-caffe"):
        points.append(_point(model, "baseline", "fp32 (zoo)"))
    points.append(_point("mobilenet", "lightweight", "MobileNet fp32 (zoo)"))
    points.append(_point("mobilenet", "lightweight", "MobileNet PTQ W8", ("ptq", {"weight_bits": 8})))
    return points


def shipped_results() -> list[dict]:
    """The results in ``SHIPPED_RESULTS`` (``[]`` if the file is missing)."""
    return load_results(SHIPPED_RESULTS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the trade-off sweep and refresh the shipped results.")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cache", type=Path, default=SHIPPED_RESULTS)
    parser.add_argument("--models", nargs="*", default=None, help="only these zoo models")
    args = parser.parse_args(argv)
    points = [p for p in default_points() if not args.models or p.model in args.models]
    results = run_sweep(points, args.cache, max_workers=args.workers, threads=args.threads)
    print(f"{len(results)} results in {args.cache}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
