"""Speed of labkit's int8 GEMM / fused quantized linear against torch fp32 and torch's int8 engines.

One process, the same thread count everywhere (default 2: ``torch.set_num_threads`` and
``labkit.kernels.set_num_threads``), median (and min) wall time of repeats after warm-up. For each shape
(M x K x N: activations [M, K], weights [N, K]) it times

- ``labkit <isa> gemm``: ``PackedLinear.gemm`` (int32 out) on every code path the CPU has (the
  scalar ``ref`` path only where M*K*N <= 3e8);
- ``labkit <isa> linear``: ``PackedLinear.forward`` (zero point, bias, requantization fused; uint8 out);
- ``torch fp32``: ``F.linear`` with bias;
- ``torch int8 <engine>``: ``torch.ops.quantized.linear`` with prepacked per-channel weights, for each
  of x86 / fbgemm / onednn in ``torch.backends.quantized.supported_engines`` (skipped when torch.ao
  quantization is gone);

and prints GOPS (2*M*N*K / time) and ratios; then LeNet-5's two convolutions as layers: labkit
``qconv2d`` against torch fp32 ``conv2d`` and torch's quantized ``Conv2d`` per engine. Then the
VNNI peak: the nominal one the targets use (256 int8 ops/cycle/core at the clock from
/proc/cpuinfo and at the measured clock) and the one measured with a register-only vpdpbusd loop
(on AMD Zen 4, 512-bit vpdpbusd issues once per cycle: 128 ops/cycle/core).

    python benchmarks/int8_gemm.py [--threads 2] [--seconds 1.0] [--statistic median|min]
                                   [--shapes 256x1024x1024 ...] [--threads 1 --cpu-time]
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
    "GEMV 4096": (1, 4096, 4096),
    "large 4096": (512, 4096, 4096),
}
NOMINAL_OPS_PER_CYCLE = 256  # int8 ops / cycle / core the targets assume for AVX-512 VNNI


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
        if isa == "ref" and m * k * n > 3e8:
            continue  # the scalar path would take seconds per call: left out of the big shapes
        def use(isa=isa):
            kernels.set_isa(isa)
        cases[f"labkit {isa} gemm"] = (use, lambda: layer.gemm(x))
        cases[f"labkit {isa} linear"] = (use, lambda: layer.forward(x, 3, multiplier, shift, 128))
    return cases


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


def conv_cases(batch, channels, size, out_channels, kernel, padding, rng, torch):
    """labkit qconv2d (every SIMD path) against torch fp32 conv2d and torch's quantized Conv2d."""
    x = rng.integers(0, 256, size=(batch, channels, size, size), dtype=np.uint8)
    w = rng.integers(-127, 128, size=(out_channels, channels, kernel, kernel), dtype=np.int8)
    bias = rng.integers(-5000, 5000, size=out_channels).astype(np.int32)
    multiplier = np.full(out_channels, 2**30, dtype=np.int32)
    layer = kernels.PackedConv2d(w, bias, stride=1, padding=padding)
    cases = {}
    for isa in kernels.available_isas():
        if isa == "ref":
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


def clock_from_cpuinfo() -> float | None:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("cpu MHz"):
                    return float(line.split(":")[1]) * 1e6
    except OSError:
        pass
    return None


def peak_report(threads: int) -> tuple[float | None, float | None]:
    """Print the assumed and measured VNNI peaks; return (nominal ops/s at the measured clock,
    measured ops/s), both for `threads` cores."""
    from labkit.kernels import api
    if api._ext is None or "avx512vnni" not in kernels.available_isas():
        print("VNNI peak: no AVX-512 VNNI path on this machine/build")
        return None, None
    ext = api._ext
    cpuinfo_hz = clock_from_cpuinfo()
    measured_hz = ext._measure_clock_hz()
    probes = []
    for _ in range(30):  # short runs, the best one: a busy machine interrupts some of them
        seconds, ops = ext._probe_peak("avx512vnni", 300_000)
        probes.append(ops / seconds)
    probe = max(probes) * threads
    nominal = NOMINAL_OPS_PER_CYCLE * measured_hz * threads
    print(f"\nclock: /proc/cpuinfo {cpuinfo_hz / 1e9 if cpuinfo_hz else float('nan'):.2f} GHz, "
          f"measured (dependent adds) {measured_hz / 1e9:.2f} GHz")
    if cpuinfo_hz:
        print(f"nominal VNNI peak ({NOMINAL_OPS_PER_CYCLE} ops/cycle/core x {threads}) at the cpuinfo clock: "
              f"{NOMINAL_OPS_PER_CYCLE * cpuinfo_hz * threads / 1e9:.0f} GOPS")
    print(f"nominal VNNI peak ({NOMINAL_OPS_PER_CYCLE} ops/cycle/core x {threads}) at the measured clock: "
          f"{nominal / 1e9:.0f} GOPS")
    print(f"measured vpdpbusd peak (register-only loop, x {threads} cores): {probe / 1e9:.0f} GOPS "
          f"= {probe / threads / measured_hz:.0f} ops/cycle/core")
    return nominal, probe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=1.0, help="time budget per measurement")
    parser.add_argument("--shapes", nargs="*", help="MxKxN shapes instead of the default set")
    parser.add_argument("--statistic", choices=("median", "min"), default="median",
                        help="the time GOPS and ratios use (min resists a busy machine)")
    parser.add_argument("--cpu-time", action="store_true",
                        help="with --threads 1: time the calling thread's CPU time, not wall time "
                             "(comparable numbers on a machine shared with other work)")
    args = parser.parse_args()
    if args.cpu_time and args.threads != 1:
        parser.error("--cpu-time needs --threads 1 (every op then runs in the calling thread)")
    clock = time.thread_time if args.cpu_time else time.perf_counter

    try:
        import torch
    except ImportError:
        torch = None
    kernels.set_num_threads(args.threads)
    if torch is not None:
        torch.set_num_threads(args.threads)
    shapes = SHAPES if not args.shapes else {s: tuple(int(v) for v in s.split("x")) for s in args.shapes}
    convs = CONVS if not args.shapes else {}
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
    problems = [(name, (m, k, n), None) for name, (m, k, n) in shapes.items()]
    for name, (batch, channels, size, out_channels, kernel, padding) in convs.items():
        out = size + 2 * padding - kernel + 1
        problems.append((name, (batch * out * out, channels * kernel * kernel, out_channels),
                         (batch, channels, size, out_channels, kernel, padding)))
    for name, (m, k, n), conv in problems:
        ops = 2.0 * m * k * n
        if conv is None:
            cases = labkit_cases(m, k, n, rng)
            if torch is not None:
                cases.update(torch_cases(m, k, n, torch))
        else:
            cases = conv_cases(*conv, rng, torch)
        runs = {}
        for label, (use, fn) in cases.items():
            use()
            runs[label] = time_repeats(fn, args.seconds, clock)
        timings = {label: pick(times) for label, times in runs.items()}
        original = kernels.available_isas()[-1]
        kernels.set_isa(original)
        fp32 = timings.get("torch fp32")
        int8 = min((t for label, t in timings.items() if label.startswith("torch int8")), default=None)
        for label, seconds in timings.items():
            vs_fp32 = f"{fp32 / seconds:7.2f}" if fp32 else "      -"
            vs_int8 = f"{int8 / seconds:7.2f}" if int8 else "      -"
            print(f"{name + f' {m}x{k}x{n}':34s} {label:24s} {statistics.median(runs[label]) * 1e3:10.3f} "
                  f"{min(runs[label]) * 1e3:9.3f} {ops / seconds / 1e9:8.1f} {vs_fp32} {vs_int8}")
            if label == "labkit avx512vnni gemm":
                best_vnni[name] = ops / seconds
        print()
    if best_vnni and nominal:
        print("labkit avx512vnni gemm as a share of the peak:")
        for name, gops in best_vnni.items():
            print(f"  {name:28s} {gops / 1e9:7.1f} GOPS = {100 * gops / nominal:5.1f}% of nominal, "
                  f"{100 * gops / probe:5.1f}% of measured vpdpbusd peak")
    print(f"\nGOPS, x fp32 (speed-up over torch fp32 F.linear / F.conv2d) and x int8 (over the fastest "
          f"torch int8 engine; > 1: labkit is faster) use the {args.statistic} time.")


if __name__ == "__main__":
    main()
