"""The int4 weight-only kernel (``kernels.int4_linear``) against torch fp32 ``F.linear``, at batch 1-8.

Layers: the four block linears of chapter 16's transformer (``labkit.llm.model.GPTConfig``: d_model
128 -> qkv 128x384, proj 128x128, fc1 128x512, fc2 512x128), plus a 4096x4096 layer where the weights
no longer fit the cache (the regime of real language models). Weights: random 4-bit codes in
``labkit.llm.int4``'s packed format with float32 group scales and uint8 zero points (group 64 by
default). Per row: torch fp32 ``F.linear(x, W, b)`` (x a torch tensor); labkit's int4 kernel on numpy
arrays (zero-copy views of the same tensors) two ways — the one-call ``kernels.int4_linear`` (checks
every argument and reads the file format on each call, its codes along k: the kernel before issue 16's
speed work) and ``kernels.Int4Weights`` (checked and rearranged once, 16 output rows in the SIMD lanes,
a call checks only x: what ``labkit.llm.int4.Int4Linear`` calls); the torch dequantize-then-multiply
reference ``labkit.llm.int4.int4_linear``; the speed-up of each kernel over fp32 (median of the
per-round ratios, p10-p90 for the prepared one), and the weight bytes each reads per call: 4·N·K for
fp32, N·K/2 + 5·N·K/group for int4 (codes, float32 scale and uint8 zero point per group).

Timing: every case of a row in interleaved rounds (the order rotated each round), each round
``--calls`` calls timed together (a call takes microseconds), same process, same thread count for
torch and labkit (default 1: batch-1 decoding on one core). Times are the median round; on a
machine shared with other jobs a round can lose the core, so the ratio of the *best* rounds
(``best x``) is printed beside the median ratio. Timings depend on the machine and its load
(printed); the goal of issue 16 is a speed-up >= 2 at batch 1 on the transformer's layers.

    python benchmarks/int4_gemv.py [--threads 1] [--rounds 15] [--calls 200] [--large-calls 10] [--group-size 64]
    python benchmarks/int4_gemv.py --quick    # seconds (smoke test)
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see int8_models.py: two OpenMP pools on few cores

import numpy as np
import torch
from torch.nn import functional as F

from labkit import kernels
from labkit.llm import int4
from labkit.llm.model import GPTConfig

BIG = 4096


def layer_shapes(config: GPTConfig) -> list[tuple[str, int, int]]:
    """(name, in K, out N) of the block linears, and one large layer."""
    d = config.d_model
    return [("attn.qkv", d, 3 * d), ("attn.proj", d, d), ("mlp.fc1", d, 4 * d), ("mlp.fc2", 4 * d, d),
            (f"large {BIG}x{BIG}", BIG, BIG)]


def make_case(k: int, n: int, m: int, group_size: int, rng) -> dict:
    codes = torch.from_numpy(rng.integers(0, 16, size=(n, k), dtype=np.uint8))
    packed = int4.pack_int4(codes)
    scale = torch.from_numpy((rng.random((n, k // group_size)) * 0.02 + 1e-3).astype(np.float32))
    zero_point = torch.from_numpy(rng.integers(0, 16, size=(n, k // group_size), dtype=np.uint8))
    bias = torch.from_numpy(rng.standard_normal(n).astype(np.float32))
    weight = int4.dequantize_int4(packed, scale, zero_point, group_size).contiguous()
    x = torch.from_numpy(rng.standard_normal((m, k)).astype(np.float32))
    arrays = [t.numpy() for t in (packed, scale, zero_point, bias)]
    prepared = kernels.Int4Weights(arrays[0], arrays[1], arrays[2], group_size, arrays[3])
    return {
        "torch fp32": lambda: F.linear(x, weight, bias),
        "labkit int4 one-call": lambda: kernels.int4_linear(x.numpy(), arrays[0], arrays[1], arrays[2], group_size,
                                                            arrays[3]),
        "labkit int4 prepared": lambda: prepared.forward(x.numpy()),
        "torch int4 reference": lambda: int4.int4_linear(x, packed, scale, zero_point, group_size, bias),
    }, (x, weight, bias, arrays, prepared)


def check(case_data, group_size: int) -> float:
    """Largest |kernel - fp32 torch| of both kernels relative to max |y| (a sanity check, not the test)."""
    x, weight, bias, arrays, prepared = case_data
    want = F.linear(x, weight, bias).numpy()
    one_call = kernels.int4_linear(x.numpy(), arrays[0], arrays[1], arrays[2], group_size, arrays[3])
    return float(max(np.abs(got - want).max() for got in (one_call, prepared(x.numpy())))
                 / max(np.abs(want).max(), 1e-30))


def interleaved(cases: dict, rounds: int, calls: int) -> dict[str, list[float]]:
    """Seconds per call, one entry per round, the order of the cases rotated every round."""
    names = list(cases)
    for fn in cases.values():
        for _ in range(max(3, calls // 10)):
            fn()
    times = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            fn = cases[name]
            start = time.perf_counter()
            for _ in range(calls):
                fn()
            times[name].append((time.perf_counter() - start) / calls)
    return times


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--large-calls", type=int, default=10, help="calls per round on the 4096x4096 layer")
    parser.add_argument("--group-size", type=int, default=64)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--quick", action="store_true", help="a few rounds of few calls, no large layer")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.calls, args.batches = 3, 10, [1, 4]
    torch.set_num_threads(args.threads)
    kernels.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    print(f"labkit {kernels.isa()} path, torch {torch.__version__}; threads {args.threads}; group size "
          f"{args.group_size}; {args.rounds} rounds x {args.calls} calls; load average {os.getloadavg()[0]:.2f}")
    header = (f"{'layer':<18s} {'M x K x N':>16s} {'torch fp32 us':>13s} {'one-call us':>11s} {'x':>5s} "
              f"{'prepared us':>11s} {'speed-up (p10-p90)':>20s} {'best x':>6s} {'torch int4 ref us':>17s} "
              f"{'fp32 bytes':>11s} {'int4 bytes':>11s} {'fewer bytes':>11s}")
    print(header)
    print("-" * len(header))
    worst = []
    for name, k, n in layer_shapes(GPTConfig()):
        if args.quick and k == BIG:
            continue
        for m in args.batches:
            cases, case_data = make_case(k, n, m, args.group_size, rng)
            relative_error = check(case_data, args.group_size)
            times = interleaved(cases, args.rounds, args.large_calls if k == BIG else args.calls)
            ratios = [a / b for a, b in zip(times["torch fp32"], times["labkit int4 prepared"])]
            one_call = statistics.median(a / b for a, b in zip(times["torch fp32"], times["labkit int4 one-call"]))
            med = {c: statistics.median(v) * 1e6 for c, v in times.items()}
            fp32_bytes, int4_bytes = 4 * n * k, n * k // 2 + 5 * n * (k // args.group_size)
            speedup = statistics.median(ratios)
            best = min(times["torch fp32"]) / min(times["labkit int4 prepared"])
            if m == 1 and k != BIG:
                worst.append(speedup)
            print(f"{name:<18s} {f'{m}x{k}x{n}':>16s} {med['torch fp32']:13.2f} {med['labkit int4 one-call']:11.2f} "
                  f"{one_call:5.2f} {med['labkit int4 prepared']:11.2f} "
                  f"{f'{speedup:.2f} ({percentile(ratios, 10):.2f}-{percentile(ratios, 90):.2f})':>20s} {best:6.2f} "
                  f"{med['torch int4 reference']:17.2f} {fp32_bytes:11d} {int4_bytes:11d} "
                  f"{fp32_bytes / int4_bytes:10.2f}x" + (f"   (max rel. diff {relative_error:.1e})"
                                                          if relative_error > 1e-5 else ""))
    if worst:
        verdict = "met" if min(worst) >= 2 else "NOT met"
        print(f"\ngoal (issue 16): batch-1 speed-up >= 2x over torch fp32 on the transformer's layers "
              f"(kernels.Int4Weights, as Int4Linear calls it): "
              f"{verdict} (smallest median speed-up {min(worst):.2f}x). Load average at the end "
              f"{os.getloadavg()[0]:.2f}.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
