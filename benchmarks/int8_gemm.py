"""Speed of labkit's int8 GEMM / fused quantized linear against torch fp32 and torch's int8 engines.

One process, the same thread count everywhere (default 2: ``torch.set_num_threads`` and
``labkit.kernels.set_num_threads``), median (and min) wall time of repeats after warm-up. For each shape
(M x K x N: activations [M, K], weights [N, K]) it times

- ``labkit <isa> gemm``: ``PackedLinear.gemm`` (int32 out) on every code path the CPU has (the
  scalar ``ref`` path only where M*K*N <= 3e8, reported as skipped elsewhere);
- ``labkit <isa> linear``: ``PackedLinear.forward`` (zero point, bias, requantization fused; uint8 out);
- ``torch fp32``: ``F.linear`` with bias;
- ``torch int8 <engine>``: ``torch.ops.quantized.linear`` with prepacked per-channel weights, for each
  of x86 / fbgemm / onednn in ``torch.backends.quantized.supported_engines`` (skipped when torch.ao
  quantization is gone);

and prints GOPS (2*M*N*K / time) and ratios; then LeNet-5's two convolutions as layers: labkit
``qconv2d`` (every path, ``ref`` included) against torch fp32 ``conv2d`` and torch's quantized
``Conv2d`` per engine. The peaks come first: the nominal ones the targets use (VNNI: 256 int8
ops/cycle/core; AMX: 2048, printed where /proc/cpuinfo lists amx_int8) at the clock from
/proc/cpuinfo and at the measured clock, and the one measured with a register-only vpdpbusd loop
(on AMD Zen 4, 512-bit vpdpbusd issues once per cycle: 128 ops/cycle/core). The VNNI target is
>= 70 % of the nominal peak at 1024 x 1024 x 1024.

    python benchmarks/int8_gemm.py [--threads 2] [--seconds 1.0] [--statistic median|min]
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

SHAPES = {  # name: (M, K, N)
    "lenet300 fc1, batch 64": (64, 784, 300),
    "lenet300 fc1, batch 256": (256, 784, 300),
    "lenet5 conv1 as GEMM": (256 * 28 * 28, 25, 6),
    "lenet5 conv2 as GEMM": (256 * 10 * 10, 150, 16),
    "square 1024": (256, 1024, 1024),
    "cube 1024": (1024, 1024, 1024),
    "GEMV 4096": (1, 4096, 4096),
    "large 4096": (512, 4096, 4096),
}
QUICK_SHAPES = {"quick": (8, 64, 16)}
NOMINAL_OPS_PER_CYCLE = 256  # int8 ops / cycle / core the targets assume for AVX-512 VNNI
AMX_OPS_PER_CYCLE = 2048     # int8 ops / cycle / core of AMX-INT8 (TDPBUSD: 16x16x64 MACs per 16 cycles)
REF_MAX_MACS = 3e8           # the scalar ref path would take seconds per call beyond this


def time_repeats(fn, budget: float, clock=time.perf_counter, min_repeats: int = 7,
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


def labkit_cases(m, k, n, rng):
    x = rng.integers(0, 256, size=(m, k), dtype=np.uint8)
    w = rng.integers(-127, 128, size=(n, k), dtype=np.int8)
    bias = rng.integers(-5000, 5000, size=n).astype(np.int32)
    multiplier = rng.integers(2**30, 2**31, size=n).astype(np.int32)
    shift = np.full(n, -10, dtype=np.int32)
    layer = kernels.PackedLinear(w, bias)
    cases = {}
    for isa in kernels.available_isas():
        if too_slow(isa, m * k * n):
            cases[f"labkit {isa} gemm"] = cases[f"labkit {isa} linear"] = None  # printed as skipped
            continue
        def use(isa=isa):
            kernels.set_isa(isa)
        cases[f"labkit {isa} gemm"] = (use, lambda: layer.gemm(x))
        cases[f"labkit {isa} linear"] = (use, lambda: layer.forward(x, 3, multiplier, shift, 128))
    return cases


def too_slow(isa: str, macs: float) -> bool:
    """The scalar path is left out of shapes beyond REF_MAX_MACS (seconds per call); the table says so."""
    return isa == "ref" and macs > REF_MAX_MACS


def torch_cases(m, k, n, torch):
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(m, k, generator=generator)
    w = torch.randn(n, k, generator=generator) * 0.05
    b = torch.randn(n, generator=generator) * 0.1
    nothing = lambda: None  # noqa: E731
    cases = {"torch fp32": (nothing, lambda: torch.nn.functional.linear(x, w, b))}
    try:
        engines = [e for e in ("x86", "fbgemm", "onednn") if e in torch.backends.quantized.supported_engines]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            qx = torch.quantize_per_tensor(x, 1 / 255, 0, torch.quint8)
            scales = (w.abs().amax(dim=1) / 127).double()
            qw = torch.quantize_per_channel(w, scales, torch.zeros(n, dtype=torch.long), 0, torch.qint8)
        for engine in engines:
            torch.backends.quantized.engine = engine
            packed = torch.ops.quantized.linear_prepack(qw, b)

            def use(engine=engine):
                torch.backends.quantized.engine = engine
            cases[f"torch int8 {engine}"] = (use, lambda packed=packed: torch.ops.quantized.linear(qx, packed, 0.05, 128))
    except (AttributeError, RuntimeError, NotImplementedError) as exc:
        print(f"  (torch int8 engines unavailable: {exc})")
    return cases


CONVS = {  # name: (batch, channels, size, out_channels, kernel, padding)
    "lenet5 conv1 (qconv2d)": (256, 1, 28, 6, 5, 2),
    "lenet5 conv2 (qconv2d)": (256, 6, 14, 16, 5, 0),
}
QUICK_CONVS = {"quick conv (qconv2d)": (2, 1, 8, 4, 3, 1)}


def conv_cases(batch, channels, size, out_channels, kernel, padding, rng, torch):
    """labkit qconv2d (every SIMD path) against torch fp32 conv2d and torch's quantized Conv2d."""
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
        cases[f"labkit {isa} qconv2d"] = (use, lambda: layer.forward(x, 0, multiplier, -12, 128, True))
    if torch is None:
        return cases
    nothing = lambda: None  # noqa: E731
    xf = torch.rand(batch, channels, size, size)
    wf = torch.randn(out_channels, channels, kernel, kernel) * 0.1
    bf = torch.randn(out_channels) * 0.1
    cases["torch fp32"] = (nothing, lambda: torch.nn.functional.conv2d(xf, wf, bf, padding=padding))
    try:
        import torch.ao.nn.quantized as nnq
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            qx = torch.quantize_per_tensor(xf, 1 / 255, 0, torch.quint8)
            scales = (wf.abs().amax(dim=(1, 2, 3)) / 127).double()
            qw = torch.quantize_per_channel(wf, scales, torch.zeros(out_channels, dtype=torch.long), 0, torch.qint8)
        for engine in [e for e in ("x86", "fbgemm", "onednn") if e in torch.backends.quantized.supported_engines]:
            torch.backends.quantized.engine = engine
            conv = nnq.Conv2d(channels, out_channels, kernel, padding=padding)
            conv.set_weight_bias(qw, bf)
            conv.scale, conv.zero_point = 0.05, 0

            def use(engine=engine):
                torch.backends.quantized.engine = engine
            cases[f"torch int8 {engine}"] = (use, lambda conv=conv: conv(qx))
    except (ImportError, AttributeError, RuntimeError, NotImplementedError) as exc:
        print(f"  (torch quantized Conv2d unavailable: {exc})")
    return cases


def cpuinfo() -> tuple[float | None, set[str]]:
    """The clock (Hz) and the feature flags of the first CPU in /proc/cpuinfo (None, {} elsewhere)."""
    clock, flags = None, set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("cpu MHz") and clock is None:
                    clock = float(line.split(":")[1]) * 1e6
                elif line.startswith("flags") and not flags:
                    flags = set(line.split(":")[1].split())
    except OSError:
        pass
    return clock, flags


def nominal_peaks(threads: int, cpuinfo_hz: float | None, measured_hz: float | None, flags: set[str]) -> None:
    """Print the nominal VNNI and AMX peaks (ops/cycle/core x cores x clock) the targets use."""
    for name, per_cycle, flag in (("VNNI", NOMINAL_OPS_PER_CYCLE, "avx512_vnni"),
                                  ("AMX", AMX_OPS_PER_CYCLE, "amx_int8")):
        if flag not in flags:
            print(f"nominal {name} peak: no {name} on this CPU ({flag} not in /proc/cpuinfo)")
            continue
        for clock_name, hz in (("cpuinfo", cpuinfo_hz), ("measured", measured_hz)):
            if hz:
                print(f"nominal {name} peak ({per_cycle} int8 ops/cycle/core x {threads}) at the {clock_name} clock: "
                      f"{per_cycle * hz * threads / 1e9:.0f} GOPS")


def peak_report(threads: int) -> tuple[float | None, float | None]:
    """Print the clocks, the nominal peaks and the measured vpdpbusd peak; return (nominal VNNI ops/s
    at the measured clock, measured vpdpbusd ops/s), both for `threads` cores (None: no VNNI path)."""
    from labkit.kernels import api
    ext = api._ext
    cpuinfo_hz, flags = cpuinfo()
    measured_hz = ext._measure_clock_hz() if ext is not None else None
    print(f"\nclock: /proc/cpuinfo {cpuinfo_hz / 1e9 if cpuinfo_hz else float('nan'):.2f} GHz, "
          f"measured (dependent adds) {measured_hz / 1e9 if measured_hz else float('nan'):.2f} GHz")
    nominal_peaks(threads, cpuinfo_hz, measured_hz, flags)
    if ext is None or "avx512vnni" not in kernels.available_isas():
        print("measured vpdpbusd peak: no AVX-512 VNNI path on this machine/build")
        return None, None
    probes = []
    for _ in range(30):  # short runs, the best one: a busy machine interrupts some of them
        seconds, ops = ext._probe_peak("avx512vnni", 300_000)
        probes.append(ops / seconds)
    probe = max(probes) * threads
    print(f"measured vpdpbusd peak (register-only loop, x {threads} cores): {probe / 1e9:.0f} GOPS "
          f"= {probe / threads / measured_hz:.0f} ops/cycle/core")
    return NOMINAL_OPS_PER_CYCLE * measured_hz * threads, probe


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=None,
                        help="time budget per measurement (default 1.0; 0.01 with --quick)")
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
        args.seconds = 0.01 if args.quick else 1.0
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


def print_rows(name, shape, cases, runs, statistic) -> float | None:
    """One row per implementation (skipped ones say so); returns labkit avx512vnni gemm's ops/s."""
    m, k, n = shape
    ops = 2.0 * m * k * n
    timings = {label: statistic(times) for label, times in runs.items()}
    fp32 = timings.get("torch fp32")
    int8 = min((t for label, t in timings.items() if label.startswith("torch int8")), default=None)
    vnni = None
    for label in cases:
        if label not in runs:
            print(f"{name + f' {m}x{k}x{n}':34s} {label:24s} skipped: the scalar path is left out above "
                  f"{REF_MAX_MACS:.0e} multiply-adds")
            continue
        seconds = timings[label]
        vs_fp32 = f"{fp32 / seconds:7.2f}" if fp32 else "      -"
        vs_int8 = f"{int8 / seconds:7.2f}" if int8 else "      -"
        print(f"{name + f' {m}x{k}x{n}':34s} {label:24s} {statistics.median(runs[label]) * 1e3:10.3f} "
              f"{min(runs[label]) * 1e3:9.3f} {ops / seconds / 1e9:8.1f} {vs_fp32} {vs_int8}")
        if label == "labkit avx512vnni gemm":
            vnni = ops / seconds
    print()
    return vnni


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
    print(f"threads: labkit {kernels.get_num_threads()}, torch {torch.get_num_threads() if torch else '-'}; "
          f"{'thread CPU' if args.cpu_time else 'wall'} time; "
          f"labkit paths {kernels.available_isas()}; torch {torch.__version__ if torch else 'missing'}")

    nominal, probe = peak_report(args.threads)
    rng = np.random.default_rng(0)
    best_vnni = {}
    pick = statistics.median if args.statistic == "median" else min
    header = (f"{'shape (M x K x N)':34s} {'implementation':24s} {'median ms':>10s} {'min ms':>9s} "
              f"{'GOPS':>8s} {'x fp32':>7s} {'x int8':>7s}")
    print("\n" + header + "\n" + "-" * len(header))
    original = kernels.isa()
    for name, (m, k, n), conv in problems(args):
        if conv is None:
            cases = labkit_cases(m, k, n, rng)
            if torch is not None:
                cases.update(torch_cases(m, k, n, torch))
        else:
            cases = conv_cases(*conv, rng, torch)
        runs = {}
        for label, case in cases.items():
            if case is not None:
                case[0]()
                runs[label] = time_repeats(case[1], args.seconds, clock)
        kernels.set_isa(original)
        vnni = print_rows(name, (m, k, n), cases, runs, pick)
        if vnni:
            best_vnni[name] = vnni
    if best_vnni and nominal:
        print("labkit avx512vnni gemm as a share of the peak (target: >= 70 % of nominal at 1024x1024x1024):")
        for name, gops in best_vnni.items():
            print(f"  {name:28s} {gops / 1e9:7.1f} GOPS = {100 * gops / nominal:5.1f}% of nominal, "
                  f"{100 * gops / probe:5.1f}% of measured vpdpbusd peak")
    print(f"\nGOPS, x fp32 (speed-up over torch fp32 F.linear / F.conv2d) and x int8 (over the fastest "
          f"torch int8 engine; > 1: labkit is faster) use the {args.statistic} time.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
