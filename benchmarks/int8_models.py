"""Integer-only models (labkit.quant.integer on labkit.kernels) against fp32 torch and torch's int8 engines.

For lenet300, lenet5 and vgg (trained checkpoints from ``labkit.zoo.pretrained(name, dataset)``):
top-1 accuracy of fp32 torch, of the fake-quantized static-PTQ model (``quantize_static``), of the
integer-only model and of torch's own int8 model (eager-mode static quantization per engine, as an
oracle and a benchmark only: labkit never uses torch.ao) on the test split; then one latency table
for batch 1 and batch 256: fp32 torch (``model(x)`` under ``inference_mode``), labkit's integer model
(``forward_uint8``: uint8 pixels in, int32 logits out, on the default code path) and torch's int8
model under each engine of ``torch.backends.quantized.supported_engines`` (x86, fbgemm, onednn: float
in, float out, quantize/dequantize included), same process, same thread count for all (default 2),
median of repeats after warm-up, the cases of a row timed in interleaved rounds.

    python benchmarks/int8_models.py [--dataset digits|mnist] [--threads 2] [--repeats 30]
                                     [--models lenet5 lenet300 vgg] [--calib-batches 4]
    python benchmarks/int8_models.py --quick   # seconds: lenet300 and lenet5, few repeats (smoke test)

MNIST needs the files under ``LABKIT_DATA`` (e.g. ``LABKIT_DATA=/work/shared/data``); a missing MNIST
checkpoint is trained once and cached by labkit.zoo. Timings depend on the machine and its load
(printed). ``OMP_WAIT_POLICY`` defaults to ``PASSIVE`` here (set before torch is imported; see below).
"""
from __future__ import annotations

import argparse
import copy
import os
import statistics
import time
import warnings

# torch and labkit.kernels each bring their own libgomp thread pool; with the default (active) wait
# policy the idle pool keeps spinning and steals the cores the other one needs (on 2 cores the
# timings jump to the 10-16 ms scheduler quantum). Passive waiting makes them take turns.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch
from torch import nn

from labkit import data, kernels, train, zoo
from labkit.quant import quantize_static
from labkit.quant.integer import convert_to_integer, evaluate_integer, to_pixels

MODELS = ("lenet300", "lenet5", "vgg")
QUICK_MODELS = ["lenet300", "lenet5"]


def median_ms(fn, repeats: int, warmup: int = 3, min_seconds: float = 0.2) -> float:
    """Median wall time of ``fn()`` in ms over at least ``repeats`` calls (and ``min_seconds``)."""
    return 1e3 * statistics.median(wall_times(fn, repeats, warmup, min_seconds))


def wall_times(fn, repeats: int, warmup: int = 3, min_seconds: float = 0.2) -> list[float]:
    """Seconds of ``fn()`` for at least ``repeats`` calls and ``min_seconds``, after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times, start = [], time.perf_counter()
    while len(times) < repeats or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if len(times) >= 20 * repeats:
            break
    return times


def interleaved_ms(cases: dict, repeats: int, min_seconds: float, rounds: int = 3) -> dict[str, float]:
    """name -> median ms of each ``(select, fn)`` case, timed in ``rounds`` interleaved rounds (a busy
    machine then slows every case alike)."""
    times = {name: [] for name in cases}
    for _ in range(rounds):
        for name, (select, fn) in cases.items():
            select()
            times[name] += wall_times(fn, max(1, repeats // rounds), warmup=2, min_seconds=min_seconds / rounds)
    return {name: 1e3 * statistics.median(t) for name, t in times.items()}


def torch_engines() -> list[str]:
    try:
        return [e for e in ("x86", "fbgemm", "onednn") if e in torch.backends.quantized.supported_engines]
    except AttributeError:
        return []


def torch_int8_model(model: nn.Sequential, engine: str, calib: torch.Tensor) -> nn.Module:
    """torch's own int8 version of a sequential model for ``engine`` (eager-mode static quantization:
    conv/linear (+BN) (+ReLU) fused, per-channel weights, min-max activations calibrated on
    ``calib``): a benchmark and an oracle only; labkit implements its own."""
    import torch.ao.quantization as tq
    torch.backends.quantized.engine = engine
    fp32 = copy.deepcopy(model).eval()
    names = list(fp32._modules)
    kinds = [type(fp32._modules[name]) for name in names]
    groups, i = [], 0
    while i < len(names):  # conv-bn-relu, conv-bn, conv/linear-relu: the patterns fuse_modules knows
        run = [names[i]]
        if kinds[i] in (nn.Conv2d, nn.Linear):
            if kinds[i] is nn.Conv2d and i + 1 < len(names) and kinds[i + 1] is nn.BatchNorm2d:
                run.append(names[i + 1])
            if i + len(run) < len(names) and kinds[i + len(run)] is nn.ReLU:
                run.append(names[i + len(run)])
        if len(run) > 1:
            groups.append(run)
        i += len(run)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fused = tq.fuse_modules(fp32, groups) if groups else fp32
        wrapped = nn.Sequential(tq.QuantStub(), fused, tq.DeQuantStub()).eval()
        wrapped.qconfig = tq.get_default_qconfig(engine)
        tq.prepare(wrapped, inplace=True)
        with torch.inference_mode():
            wrapped(calib)
        tq.convert(wrapped, inplace=True)
    return wrapped


def run(name: str, dataset: str, threads: int, repeats: int, calib_batches: int, min_seconds: float) -> dict:
    train_set, test_set = data.load(dataset, "train"), data.load(dataset, "test")
    model = zoo.pretrained(name, dataset).eval()
    fq = quantize_static(model, train_set, num_batches=calib_batches)
    im = convert_to_integer(model, train_set, num_batches=calib_batches)
    row = {"model": name, "fp32": train.evaluate(model, test_set), "fake-quant": train.evaluate(fq, test_set),
           "integer": evaluate_integer(im, test_set), "torch int8": {}, "latency": {}}
    engines = {}
    calib = train_set.tensors[0][:256 * calib_batches]
    for engine in torch_engines():
        try:
            engines[engine] = torch_int8_model(model, engine, calib)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                row["torch int8"][engine] = train.evaluate(engines[engine], test_set)
        except (AttributeError, RuntimeError, NotImplementedError, ImportError) as exc:
            print(f"  ({name}: torch int8 {engine} unavailable: {exc})")
            engines.pop(engine, None)
    x_all = test_set.tensors[0]
    torch.set_num_threads(threads)
    kernels.set_num_threads(threads)
    nothing = lambda: None  # noqa: E731
    for batch in (1, 256):
        x = x_all[:batch].contiguous()
        pixels = to_pixels(x)
        cases = {"fp32": (nothing, lambda: model(x)), "labkit int": (nothing, lambda: im.forward_uint8(pixels))}
        for engine, qmodel in engines.items():
            def use(engine=engine):
                torch.backends.quantized.engine = engine
            cases[f"torch {engine}"] = (use, lambda qmodel=qmodel: qmodel(x))
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            row["latency"][batch] = interleaved_ms(cases, repeats, min_seconds)
    return row


def print_tables(rows: list[dict]) -> None:
    engines = list(dict.fromkeys(e for r in rows for e in r["torch int8"]))
    head = (f"{'model':<9} {'fp32 acc':>8} {'fq acc':>8} {'int acc':>8} {'Δ int-fp32':>10}"
            + "".join(f" {'torch ' + e:>12}" for e in engines))
    print("\naccuracy on the test split (torch int8: torch's eager-mode static quantization, per engine)")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['model']:<9} {100 * r['fp32']:7.2f}% {100 * r['fake-quant']:7.2f}% {100 * r['integer']:7.2f}% "
              f"{round(100 * (r['integer'] - r['fp32']), 2) + 0.0:+9.2f}p"
              + "".join(f" {100 * r['torch int8'][e]:11.2f}%" if e in r["torch int8"] else f" {'-':>12}"
                        for e in engines))
    columns = ["fp32", "labkit int"] + [f"torch {e}" for e in engines]
    head = (f"{'model':<9} {'batch':>5} " + " ".join(f"{c:>12}" for c in columns)
            + f" {'int × fp32':>11} {'int × torch int8':>17}")
    print(f"\nlatency: median ms of one forward pass (labkit int on {kernels.isa()}; torch <engine>: torch's "
          "int8 model); int × fp32 = fp32 time / labkit int time, int × torch int8 = the fastest torch int8 "
          "engine's time / labkit int time (> 1: labkit's integer model is faster)")
    print(head)
    print("-" * len(head))
    for r in rows:
        for batch, ms in r["latency"].items():
            fastest = min((t for c, t in ms.items() if c.startswith("torch ")), default=None)
            print(f"{r['model']:<9} {batch:>5} " + " ".join(f"{ms[c]:10.3f}ms" if c in ms else f"{'-':>12}"
                                                           for c in columns)
                  + f" {ms['fp32'] / ms['labkit int']:11.2f}"
                  + (f" {fastest / ms['labkit int']:17.2f}" if fastest else f" {'-':>17}"))
    print("Indicative: depends on the machine and its load.")


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "unknown CPU")
    except OSError:
        return "unknown CPU"


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
    min_seconds = 0.02 if args.quick else 0.3
    torch.manual_seed(0)
    print(f"dataset={args.dataset} threads={args.threads} isa={kernels.isa()} "
          f"(available: {', '.join(kernels.available_isas())}) torch {torch.__version__}")
    print(f"CPU: {cpu_name()} ({os.cpu_count()} logical CPUs); load average "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    rows = [run(name, args.dataset, args.threads, repeats, calib_batches, min_seconds) for name in args.models]
    print_tables(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
