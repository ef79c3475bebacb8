"""Speed of labkit's int8 GEMM / fused quantized linear against torch fp32 and torch's int8 engines.

One process, the same thread count everywhere (default 2: ``torch.set_num_threads`` and
``labkit.kernels.set_num_threads``), ``OMP_WAIT_POLICY=PASSIVE``. Every case of a shape is timed in
interleaved rounds (a busy machine then slows all of them alike, so the ratios hold), median (and
min) of the repeats after warm-up. For each shape (M x K x N: activations [M, K], weights [N, K]):

- ``labkit <isa> gemm``: int32 out; ``packed`` = ``PackedLinear.gemm`` (w packed once), ``one-call`` =
  ``gemm_u8s8s32(a, w)`` (packs w on every call); on every code path of this machine (the scalar
  ``ref`` path only where M*K*N <= 3e8, reported as skipped elsewhere);
- ``labkit <isa> linear``: uint8 out (zero point, bias, requantization fused); ``packed`` =
  ``PackedLinear.forward``, ``one-call`` = ``qlinear``;
- ``torch fp32``: ``F.linear`` with bias;
- ``torch int8 <engine>``: ``torch.ao.nn.quantized.Linear`` (per-channel weights, packed once) for each
  of x86 / fbgemm / onednn in ``torch.backends.quantized.supported_engines`` (as a benchmark only;
  skipped when torch.ao quantization is gone).

Columns: median and min ms of the packed call, the one-call median and its ratio to the packed
one, GOPS (2*M*N*K / packed median), the share of the path's own measured peak (``% peak``), the
speed-up over torch fp32 and over the fastest torch int8 engine, and packing throughput (``pack
GB/s``: N*K bytes / time to pack w the way the one-call op does, with the row sums for linear; the
``memcpy`` row is numpy copying w, for memory speed). On AMX the one-call ops (up to 1024 rows,
N >= 16 for linear) do not pack w as a whole: each task packs 32 columns' block at a time right
before multiplying it, so there ``pack GB/s`` is the packer's speed alone (``PackedLinear``'s), not
a pass the one-call op makes. Then LeNet-5's two convolutions as layers
(``PackedConv2d.forward`` / ``qconv2d``) against torch fp32 ``conv2d`` and quantized ``Conv2d``.

The peaks come first, per path: nominal int8 ops/cycle/core (AVX2 vpmaddwd 64, AVX-512 VNNI 256,
AMX tdpbusd 2048) at the measured clock, and measured with a register-only loop of the path's
instruction (12 vpdpbusd, 6 vpmaddwd, or 4 tdpbusd on resident tiles). ``% peak`` uses the measured
one. The clock is measured with a chain of dependent imul (3 cycles each).

    python benchmarks/int8_gemm.py [--threads 2] [--seconds 0.4] [--statistic median|min]
                                   [--shapes 256x1024x1024 ...] [--threads 1 --cpu-time]
    python benchmarks/int8_gemm.py --quick     # seconds: tiny shapes, for a smoke test
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings

# torch and labkit.kernels each load an OpenMP runtime; with spinning idle threads the two fight
# for the 2 cores and timings jump. Passive waiting (read when the runtimes load) avoids that.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np

from labkit import kernels
from labkit.kernels import api

SHAPES = {  # name: (M, K, N)
    "lenet300 fc1, batch 64": (64, 784, 300),
    "lenet300 fc1, batch 256": (256, 784, 300),
    "lenet5 conv1 as GEMM": (256 * 28 * 28, 25, 6),
    "lenet5 conv2 as GEMM": (256 * 10 * 10, 150, 16),
    "square 1024": (256, 1024, 1024),
    "cube 1024": (1024, 1024, 1024),
    "GEMV 4096": (1, 4096, 4096),
}
QUICK_SHAPES = {"quick": (8, 64, 16)}
# int8 ops (2 per multiply-add) per cycle per core: AVX2 vpmaddwd (2/cycle x 16 int16 products),
# AVX-512 VNNI vpdpbusd (2/cycle x 64), AMX tdpbusd (16 x 16 x 64 products per 16 cycles).
NOMINAL_OPS_PER_CYCLE = {"avx2": 64, "avx512vnni": 256, "amx": 2048}
CPU_FLAGS = {"avx2": "avx2", "avx512vnni": "avx512_vnni", "amx": "amx_int8"}
PROBE_ITERATIONS = {"avx2": 300_000, "avx512vnni": 300_000, "amx": 30_000}
REF_MAX_MACS = 3e8           # the scalar ref path would take seconds per call beyond this
ROUNDS = 5                   # interleaved rounds per shape


def time_repeats(fn, budget: float, clock=time.perf_counter, min_repeats: int = 3,
                 max_repeats: int = 300) -> list[float]:
    """Times of fn() after two warm-up calls, repeating for about `budget` seconds."""
    fn()
    start = clock()
    fn()
    first = clock() - start
    repeats = int(min(max_repeats, max(min_repeats, budget / max(first, 1e-6))))
    times = []
    for _ in range(repeats):
        start = clock()
        fn()
        times.append(clock() - start)
    return times


def too_slow(isa: str, macs: float) -> bool:
    """The scalar path is left out of shapes beyond REF_MAX_MACS (seconds per call); the table says so."""
    return isa == "ref" and macs > REF_MAX_MACS


class Case:
    """One row of the table: how to select it, the packed call, and optionally the one-call op and
    the packing it does (for pack GB/s, over `pack_bytes` bytes of w)."""

    def __init__(self, select, packed, one_call=None, pack=None, pack_bytes=0):
        self.select, self.packed, self.one_call, self.pack, self.pack_bytes = select, packed, one_call, pack, pack_bytes

    def timed(self):
        """(column, function) pairs to time."""
        return [(column, fn) for column, fn in (("packed", self.packed), ("one-call", self.one_call),
                                                ("pack", self.pack)) if fn is not None]


def labkit_cases(m, k, n, rng):
    x = rng.integers(0, 256, size=(m, k), dtype=np.uint8)
    w = rng.integers(-127, 128, size=(n, k), dtype=np.int8)
    bias = rng.integers(-5000, 5000, size=n).astype(np.int32)
    multiplier = rng.integers(2**30, 2**31, size=n).astype(np.int32)
    shift = np.full(n, -10, dtype=np.int32)
    layer = kernels.PackedLinear(w, bias)
    ext = api._ext
    cases = {}
    for isa in kernels.available_isas():
        if too_slow(isa, m * k * n):
            cases[f"labkit {isa} gemm"] = cases[f"labkit {isa} linear"] = None  # printed as skipped
            continue

        def use(isa=isa):
            kernels.set_isa(isa)
        cases[f"labkit {isa} gemm"] = Case(  # ref multiplies w in place: nothing to pack for a GEMM
            use, lambda: layer.gemm(x), lambda: kernels.gemm_u8s8s32(x, w),
            None if ext is None or isa == "ref" else (lambda isa=isa: ext._pack(w, isa, False)), n * k)
        cases[f"labkit {isa} linear"] = Case(
            use, lambda: layer.forward(x, 3, multiplier, shift, 128),
            lambda: kernels.qlinear(x, 3, w, bias, multiplier, shift, 128),
            None if ext is None else (lambda isa=isa: ext._pack(w, isa, True)), n * k)
    copy = np.empty_like(w)
    cases["memcpy of w (numpy)"] = Case(lambda: None, None, pack=lambda: np.copyto(copy, w), pack_bytes=n * k)
    return cases


def torch_engines(torch) -> list[str]:
    return [e for e in ("x86", "fbgemm", "onednn") if e in torch.backends.quantized.supported_engines]


def torch_cases(m, k, n, torch):
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(m, k, generator=generator)
    w = torch.randn(n, k, generator=generator) * 0.05
    b = torch.randn(n, generator=generator) * 0.1
    nothing = lambda: None  # noqa: E731
    cases = {"torch fp32": Case(nothing, lambda: torch.nn.functional.linear(x, w, b))}
    try:
        import torch.ao.nn.quantized as nnq
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            qx = torch.quantize_per_tensor(x, 1 / 255, 0, torch.quint8)
            scales = (w.abs().amax(dim=1) / 127).double()
            qw = torch.quantize_per_channel(w, scales, torch.zeros(n, dtype=torch.long), 0, torch.qint8)
            for engine in torch_engines(torch):
                torch.backends.quantized.engine = engine  # set_weight_bias packs for this engine
                layer = nnq.Linear(k, n, dtype=torch.qint8)
                layer.set_weight_bias(qw, b)
                layer.scale, layer.zero_point = 0.05, 128

                def use(engine=engine):
                    torch.backends.quantized.engine = engine
                cases[f"torch int8 {engine}"] = Case(use, lambda layer=layer: layer(qx))
    except (ImportError, AttributeError, RuntimeError, NotImplementedError) as exc:
        print(f"  (torch int8 engines unavailable: {exc})")
    return cases


CONVS = {  # name: (batch, channels, size, out_channels, kernel, padding)
    "lenet5 conv1 (qconv2d)": (256, 1, 28, 6, 5, 2),
    "lenet5 conv2 (qconv2d)": (256, 6, 14, 16, 5, 0),
}
QUICK_CONVS = {"quick conv (qconv2d)": (2, 1, 8, 4, 3, 1)}


def conv_cases(batch, channels, size, out_channels, kernel, padding, rng, torch):
    """labkit PackedConv2d / qconv2d (every path) against torch fp32 conv2d and torch's quantized Conv2d."""
    x = rng.integers(0, 256, size=(batch, channels, size, size), dtype=np.uint8)
    w = rng.integers(-127, 128, size=(out_channels, channels, kernel, kernel), dtype=np.int8)
    bias = rng.integers(-5000, 5000, size=out_channels).astype(np.int32)
    multiplier = np.full(out_channels, 2**30, dtype=np.int32)
    layer = kernels.PackedConv2d(w, bias, stride=1, padding=padding)
    out = size + 2 * padding - kernel + 1
    cases = {}
    for isa in kernels.available_isas():
        if too_slow(isa, batch * out * out * channels * kernel * kernel * out_channels):
            cases[f"labkit {isa} qconv2d"] = None  # printed as skipped
            continue

        def use(isa=isa):
            kernels.set_isa(isa)
        cases[f"labkit {isa} qconv2d"] = Case(
            use, lambda: layer.forward(x, 0, multiplier, -12, 128, True),
            lambda: kernels.qconv2d(x, 0, w, bias, multiplier, -12, 128, 1, padding, True))
    if torch is None:
        return cases
    nothing = lambda: None  # noqa: E731
    xf = torch.rand(batch, channels, size, size)
    wf = torch.randn(out_channels, channels, kernel, kernel) * 0.1
    bf = torch.randn(out_channels) * 0.1
    cases["torch fp32"] = Case(nothing, lambda: torch.nn.functional.conv2d(xf, wf, bf, padding=padding))
    try:
        import torch.ao.nn.quantized as nnq
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            qx = torch.quantize_per_tensor(xf, 1 / 255, 0, torch.quint8)
            scales = (wf.abs().amax(dim=(1, 2, 3)) / 127).double()
            qw = torch.quantize_per_channel(wf, scales, torch.zeros(out_channels, dtype=torch.long), 0, torch.qint8)
            for engine in torch_engines(torch):
                torch.backends.quantized.engine = engine
                conv = nnq.Conv2d(channels, out_channels, kernel, padding=padding)
                conv.set_weight_bias(qw, bf)
                conv.scale, conv.zero_point = 0.05, 0

                def use(engine=engine):
                    torch.backends.quantized.engine = engine
                cases[f"torch int8 {engine}"] = Case(use, lambda conv=conv: conv(qx))
    except (ImportError, AttributeError, RuntimeError, NotImplementedError) as exc:
        print(f"  (torch quantized Conv2d unavailable: {exc})")
    return cases


def cpuinfo() -> tuple[str, float | None, set[str]]:
    """The model name, clock (Hz) and feature flags of the first CPU in /proc/cpuinfo."""
    name, clock, flags = "unknown CPU", None, set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and name == "unknown CPU":
                    name = value.strip()
                elif key == "cpu MHz" and clock is None:
                    clock = float(value) * 1e6
                elif key == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return name, clock, flags


def peak_report(threads: int) -> dict[str, float]:
    """Print the clocks and, per SIMD path, the nominal peak and the one measured with a
    register-only loop of its instruction; return path -> measured peak ops/s for `threads` cores."""
    ext = api._ext
    _, cpuinfo_hz, flags = cpuinfo()
    measured_hz = ext._measure_clock_hz() if ext is not None else None
    print(f"\nclock: /proc/cpuinfo {cpuinfo_hz / 1e9 if cpuinfo_hz else float('nan'):.2f} GHz, "
          f"measured (dependent imul) {measured_hz / 1e9 if measured_hz else float('nan'):.2f} GHz")
    peaks = {}
    for isa, per_cycle in NOMINAL_OPS_PER_CYCLE.items():
        label = {"avx2": "AVX2 vpmaddwd", "avx512vnni": "VNNI vpdpbusd", "amx": "AMX tdpbusd"}[isa]
        if CPU_FLAGS[isa] not in flags:
            print(f"peak {label:14s}: no {isa} on this CPU ({CPU_FLAGS[isa]} not in /proc/cpuinfo)")
            continue
        nominal = f"nominal {per_cycle} int8 ops/cycle/core"
        if measured_hz:
            nominal += f" x {threads} = {per_cycle * measured_hz * threads / 1e9:.0f} GOPS"
        if ext is None or isa not in kernels.available_isas():
            print(f"peak {label:14s}: {nominal}; not measured ({api.unavailable_reason(isa)})")
            continue
        best = 0.0
        for _ in range(20):  # short runs, the best one: a busy machine interrupts some of them
            seconds, ops = ext._probe_peak(isa, PROBE_ITERATIONS[isa])
            best = max(best, ops / seconds)
        peaks[isa] = best * threads
        per_cycle_measured = f" = {best / measured_hz:.0f} ops/cycle/core" if measured_hz else ""
        print(f"peak {label:14s}: {nominal}; measured loop x {threads}: {best * threads / 1e9:.0f} GOPS"
              f"{per_cycle_measured}")
    return peaks


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=None,
                        help="time budget per measurement (default 0.4; 0.01 with --quick)")
    parser.add_argument("--shapes", nargs="*", help="MxKxN shapes instead of the default set (no convolutions)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: one tiny GEMM and one tiny convolution, 0.01 s per measurement")
    parser.add_argument("--statistic", choices=("median", "min"), default="median",
                        help="the time GOPS and ratios use (min resists a busy machine)")
    parser.add_argument("--cpu-time", action="store_true",
                        help="with --threads 1: time the calling thread's CPU time, not wall time "
                             "(comparable numbers on a machine shared with other work)")
    args = parser.parse_args(argv)
    if args.cpu_time and args.threads != 1:
        parser.error("--cpu-time needs --threads 1 (every op then runs in the calling thread)")
    if args.quick and args.shapes:
        parser.error("--quick and --shapes exclude each other")
    if args.seconds is None:
        args.seconds = 0.01 if args.quick else 0.4
    return args


def problems(args) -> list[tuple[str, tuple[int, int, int], tuple | None]]:
    """(name, (M, K, N), convolution or None) for each row group of the table."""
    if args.quick:
        shapes, convs = QUICK_SHAPES, QUICK_CONVS
    elif args.shapes:
        shapes, convs = {s: tuple(int(v) for v in s.split("x")) for s in args.shapes}, {}
    else:
        shapes, convs = SHAPES, CONVS
    rows = [(name, shape, None) for name, shape in shapes.items()]
    for name, (batch, channels, size, out_channels, kernel, padding) in convs.items():
        out = size + 2 * padding - kernel + 1
        rows.append((name, (batch * out * out, channels * kernel * kernel, out_channels),
                     (batch, channels, size, out_channels, kernel, padding)))
    return rows


def measure(cases: dict, budget: float, clock) -> dict[str, dict[str, list[float]]]:
    """label -> column -> times, in ROUNDS interleaved rounds of budget / ROUNDS seconds each."""
    runs = {label: {column: [] for column, _ in case.timed()} for label, case in cases.items() if case}
    for _ in range(ROUNDS):
        for label, case in cases.items():
            if case is None:
                continue
            case.select()
            for column, fn in case.timed():
                runs[label][column] += time_repeats(fn, budget / ROUNDS, clock)
    return runs


HEADER = (f"{'shape (M x K x N)':36s} {'implementation':24s} {'median ms':>10s} {'min ms':>9s} {'one-call ms':>11s} "
          f"{'one/packed':>10s} {'GOPS':>8s} {'% peak':>7s} {'x fp32':>7s} {'x int8':>7s} {'pack GB/s':>9s}")


def print_rows(name, shape, cases, runs, statistic, peaks) -> dict[str, dict[str, float]]:
    """One row per implementation (skipped ones say so); returns label -> {packed, one-call, gops} seconds."""
    m, k, n = shape
    ops = 2.0 * m * k * n
    chosen = {label: {column: statistic(times) for column, times in columns.items()} for label, columns in runs.items()}
    fp32 = chosen.get("torch fp32", {}).get("packed")
    int8 = min((c["packed"] for label, c in chosen.items() if label.startswith("torch int8")), default=None)
    summary = {}
    title = name + f" {m}x{k}x{n}"
    for label, case in cases.items():
        if case is None:
            print(f"{title:36s} {label:24s} skipped: the scalar path is left out above {REF_MAX_MACS:.0e} "
                  "multiply-adds")
            continue
        c, times = chosen[label], runs[label]
        cells = ["-"] * 9
        if "packed" in c:
            seconds = c["packed"]
            isa = label.split()[1] if label.startswith("labkit") else None
            cells[0] = f"{statistics.median(times['packed']) * 1e3:.3f}"
            cells[1] = f"{min(times['packed']) * 1e3:.3f}"
            cells[4] = f"{ops / seconds / 1e9:.1f}"
            cells[5] = f"{100 * ops / seconds / peaks[isa]:.1f}" if isa in peaks else "-"
            cells[6] = f"{fp32 / seconds:.2f}" if fp32 else "-"
            cells[7] = f"{int8 / seconds:.2f}" if int8 else "-"
            summary[label] = {"packed": seconds, "gops": ops / seconds / 1e9}
        if "one-call" in c:
            cells[2] = f"{statistics.median(times['one-call']) * 1e3:.3f}"
            cells[3] = f"{c['one-call'] / c['packed']:.2f}"
            summary[label]["one-call"] = c["one-call"]
        if "pack" in c:
            cells[8] = f"{case.pack_bytes / c['pack'] / 1e9:.1f}"
        widths = (10, 9, 11, 10, 8, 7, 7, 7, 9)
        print(f"{title:36s} {label:24s} " + " ".join(f"{cell:>{width}s}" for cell, width in zip(cells, widths)))
    print()
    return summary


def print_summary(results: dict, shapes: dict) -> None:
    """The targets: one-call within 1.3x packed at 256x1024x1024 (2x at the LeNet shapes); the AMX
    path at least as fast as oneDNN; each path's share of its measured peak."""
    print("one-call / packed (linear; target <= 1.3 at 256x1024x1024, <= 2 at the LeNet shapes), "
          "and the fastest labkit path against torch oneDNN (packed linear):")
    for name, summary in results.items():
        parts = []
        for label, row in summary.items():
            if label.startswith("labkit") and label.endswith(("linear", "qconv2d")) and "one-call" in row:
                parts.append(f"{label.split()[1]} {row['one-call'] / row['packed']:.2f}")
        fastest = min(((row["packed"], label) for label, row in summary.items()
                       if label.startswith("labkit") and label.endswith(("linear", "qconv2d"))), default=None)
        onednn = summary.get("torch int8 onednn", {}).get("packed")
        versus = (f"; {fastest[1]} = {onednn / fastest[0]:.2f}x oneDNN" if fastest and onednn else "")
        print(f"  {name + ' ' + 'x'.join(map(str, shapes[name])):44s} {', '.join(parts)}{versus}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    clock = time.thread_time if args.cpu_time else time.perf_counter
    try:
        import torch
    except ImportError:
        torch = None
    kernels.set_num_threads(args.threads)
    if torch is not None:
        torch.set_num_threads(args.threads)
    name, _, flags = cpuinfo()
    simd = " ".join(f for f in ("avx2", "avx512_vnni", "amx_int8") if f in flags)
    print(f"CPU: {name} ({os.cpu_count()} logical CPUs; {simd or 'no AVX2'}); load average "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"threads: labkit {kernels.get_num_threads()}, torch {torch.get_num_threads() if torch else '-'}; "
          f"{'thread CPU' if args.cpu_time else 'wall'} time; "
          f"labkit paths {kernels.available_isas()} (default {kernels.isa()}); "
          f"torch {torch.__version__ if torch else 'missing'}")

    peaks = peak_report(args.threads)
    rng = np.random.default_rng(0)
    pick = statistics.median if args.statistic == "median" else min
    print("\n" + HEADER + "\n" + "-" * len(HEADER))
    original = kernels.isa()
    results, shapes = {}, {}
    for title, (m, k, n), conv in problems(args):
        if conv is None:
            cases = labkit_cases(m, k, n, rng)
            if torch is not None:
                cases.update(torch_cases(m, k, n, torch))
        else:
            cases = conv_cases(*conv, rng, torch)
        runs = measure(cases, args.seconds, clock)
        kernels.set_isa(original)
        results[title], shapes[title] = print_rows(title, (m, k, n), cases, runs, pick, peaks), (m, k, n)
    print_summary(results, shapes)
    print(f"\nGOPS, % peak (of the path's measured peak above), x fp32 (speed-up over torch fp32 F.linear / "
          f"F.conv2d) and x int8 (over the fastest torch int8 engine; > 1: labkit is faster) use the "
          f"{args.statistic} packed time; one/packed the {args.statistic} times of both. Load average at the end: "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
