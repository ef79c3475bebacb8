"""Integer-only models (labkit.quant.integer on labkit.kernels) against the fp32 torch models.

For lenet300, lenet5 and vgg (trained checkpoints from ``labkit.zoo.pretrained(name, dataset)``):
top-1 accuracy of fp32 torch, of the fake-quantized static-PTQ model (``quantize_static``) and of the
integer-only model on the test split; then the latency of one forward pass at batch 1 and batch 256,
fp32 torch (``model(x)`` under ``inference_mode``) against the integer model (``forward_uint8``:
uint8 pixels in, int32 logits out), same process, same thread count for both (default 2), median of
repeats after warm-up.

    python benchmarks/int8_models.py [--dataset digits|mnist] [--threads 2] [--repeats 30]
                                     [--models lenet5 lenet300 vgg] [--calib-batches 4]
    python benchmarks/int8_models.py --quick   # seconds: lenet300 and lenet5, few repeats (smoke test)

MNIST needs the files under ``LABKIT_DATA`` (e.g. ``LABKIT_DATA=/work/shared/data``); a missing MNIST
checkpoint is trained once and cached by labkit.zoo. Timings depend on the machine and its load.
``OMP_WAIT_POLICY`` defaults to ``PASSIVE`` here (set before torch is imported; see below).
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

# torch and labkit.kernels each bring their own libgomp thread pool; with the default (active) wait
# policy the idle pool keeps spinning and steals the cores the other one needs (on 2 cores the
# timings jump to the 10-16 ms scheduler quantum). Passive waiting makes them take turns.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch

from labkit import data, kernels, train, zoo
from labkit.quant import quantize_static
from labkit.quant.integer import convert_to_integer, evaluate_integer, to_pixels

MODELS = ("lenet300", "lenet5", "vgg")
QUICK_MODELS = ["lenet300", "lenet5"]


def median_ms(fn, repeats: int, warmup: int = 3, min_seconds: float = 0.2) -> float:
    """Median wall time of ``fn()`` in ms over at least ``repeats`` calls (and ``min_seconds``)."""
    for _ in range(warmup):
        fn()
    times, start = [], time.perf_counter()
    while len(times) < repeats or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if len(times) >= 20 * repeats:
            break
    return 1e3 * statistics.median(times)


def run(name: str, dataset: str, threads: int, repeats: int, calib_batches: int, min_seconds: float) -> dict:
    train_set, test_set = data.load(dataset, "train"), data.load(dataset, "test")
    model = zoo.pretrained(name, dataset).eval()
    fq = quantize_static(model, train_set, num_batches=calib_batches)
    im = convert_to_integer(model, train_set, num_batches=calib_batches)
    row = {"model": name, "fp32": train.evaluate(model, test_set), "fake-quant": train.evaluate(fq, test_set),
           "integer": evaluate_integer(im, test_set)}
    x_all = test_set.tensors[0]
    torch.set_num_threads(threads)
    kernels.set_num_threads(threads)
    for batch in (1, 256):
        x = x_all[:batch].contiguous()
        pixels = to_pixels(x)
        with torch.inference_mode():
            row[f"fp32 b{batch}"] = median_ms(lambda: model(x), repeats, min_seconds=min_seconds)
        row[f"int b{batch}"] = median_ms(lambda: im.forward_uint8(pixels), repeats, min_seconds=min_seconds)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits", choices=("digits", "mnist"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--calib-batches", type=int, default=4)
    parser.add_argument("--models", nargs="+", default=None, choices=MODELS,
                        help=f"default: {' '.join(MODELS)} ({' '.join(QUICK_MODELS)} with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: lenet300 and lenet5, 3 repeats, 1 calibration batch")
    args = parser.parse_args(argv)
    if args.models is None:
        args.models = QUICK_MODELS if args.quick else list(MODELS)
    repeats, calib_batches = (3, 1) if args.quick else (args.repeats, args.calib_batches)
    min_seconds = 0.02 if args.quick else 0.2
    torch.manual_seed(0)
    print(f"dataset={args.dataset} threads={args.threads} isa={kernels.isa()} "
          f"(available: {', '.join(kernels.available_isas())}) torch {torch.__version__}")
    rows = [run(name, args.dataset, args.threads, repeats, calib_batches, min_seconds) for name in args.models]
    head = (f"{'model':<9} {'fp32 acc':>8} {'fq acc':>8} {'int acc':>8} {'Δ int-fp32':>10} | "
            f"{'fp32 b1':>9} {'int b1':>9} {'×':>5} | {'fp32 b256':>9} {'int b256':>9} {'×':>5}")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['model']:<9} {100 * r['fp32']:7.2f}% {100 * r['fake-quant']:7.2f}% {100 * r['integer']:7.2f}% "
              f"{round(100 * (r['integer'] - r['fp32']), 2) + 0.0:+9.2f}p | "
              f"{r['fp32 b1']:7.3f}ms {r['int b1']:7.3f}ms {r['fp32 b1'] / r['int b1']:5.2f} | "
              f"{r['fp32 b256']:7.2f}ms {r['int b256']:7.2f}ms {r['fp32 b256'] / r['int b256']:5.2f}")
    print("latency: median wall time of one forward pass (ms); × = fp32 time / integer time "
          "(> 1: the integer model is faster). Indicative: depends on the machine and its load.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
