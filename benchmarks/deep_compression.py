"""Deep Compression (Han, Mao & Dally, ICLR 2016) reproduced on real MNIST, measured as file bytes.

The paper's Table 1: LeNet-300-100 1070 KB → 27 KB (40×) at 1.58 % error (reference 1.64 %), and
Caffe's LeNet-5 (the zoo's ``lenet5-caffe``, 431k weights) 1720 KB → 44 KB (39×) at 0.74 % (reference
0.80 %). Their three stages, and ours:

1. **Pruning with retraining** to ~8 % of the weights (Han et al. 2015): chapter 10's recipe —
   ``prune.AGPSchedule`` + ``prune.prune_on_schedule``, gradual global magnitude pruning to 92 % during
   retraining of the zoo checkpoint (AdamW, cosine learning rate), the loop ``benchmarks/prune_table.py``
   uses for the Han 2015 rows.
2. **Trained quantization**: k-means weight sharing per layer (``quant.codebook``, linear
   initialisation, pruned zeros kept at an exact 0 entry), then the centroids fine-tuned on the training
   set with the gradients of their weights summed. Bits: 8 for the convolutions and 5 for the fully
   connected layers, the paper's widths for LeNet-5 (Table 3); for LeNet-300-100 the paper's Table 2
   uses 6 bits, whose file (38.5× here) the script prints beside ours.
3. **Storage**: the compressed-model file of ``labkit.pipeline.fileformat`` — relative indices of the
   non-zeros with filler zeros where a gap overflows (the paper's Figure 2 and §2; 5-bit in the paper,
   the width that gives the shortest layer here), the codebook indices and the gaps Huffman-coded per
   layer (§4), centroids and biases rounded to float16, the architecture and a header with a checksum.
   The bytes after every stage are printed, each a real file, beside the paper's ratios (its Tables
   2-3: 32× / 33× after pruning + quantization, 40× / 39× with Huffman coding). The ratio is the dense
   fp32 file (``measure.serialize``) over our file's bytes; the error is measured on the model *loaded
   back from the file*.

Goal: ≥ 40× (LeNet-300-100) and ≥ 39× (LeNet-5) in file bytes, with a test error ≤ our own dense
baseline + 0.1 point; the paired 95 % interval of compressed − dense accuracy is printed beside it.

    nohup .venv/bin/python benchmarks/deep_compression.py --models lenet300 &      # one process per model
    .venv/bin/python benchmarks/deep_compression.py           # computes what is missing, prints, records
    .venv/bin/python benchmarks/deep_compression.py --quick   # smoke run on digits, seconds, records nothing
    .venv/bin/python benchmarks/deep_compression.py --models lenet5-caffe --prune-epochs 4 --share-epochs 1
                                                              # a reduced budget, stated in the rows

CPU time on one thread (a 2-core Xeon shared with other jobs; wall time was 5-10× longer): LeNet-300-100's
3 epochs of centroid fine-tuning and the measurements 22 s (its 20 pruning epochs: 41 min wall); LeNet-5
with 4 pruning epochs and 1 of fine-tuning 2.8 min (30 min wall) — the full 12 + 3 epochs ≈ 3× that.

Each stage is cached (the pruned checkpoint under ``datasets/cache/deep_compression/``, the per-model
result as JSON in ``benchmarks/results/deep_compression/`` with the compressed file beside it), so a
later run only assembles. A full run records its rows with ``benchmarks/results.py``.
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cli import AtLeastOne, add_threads  # noqa: E402  (scripts beside this one)
from results import RESULTS_DIR, Row, record  # noqa: E402

from labkit import data, measure, prune, stats, train, zoo  # noqa: E402
from labkit.files import atomic_write  # noqa: E402
from labkit.pipeline import fileformat  # noqa: E402
from labkit.quant import codebook  # noqa: E402

FOLDER = RESULTS_DIR / "deep_compression"
MODELS = ("lenet300", "lenet5-caffe")
SOURCE = "Han, Mao & Dally 2016 (Deep Compression), Tables 1-3"
# The paper's Table 1 (error %, KB, ratio), Tables 2-3 (compression after pruning + quantization, and
# per layer: weights kept, weight bits, weight bits after Huffman, index bits after Huffman).
PAPER = {
    "lenet300": {"ref_error": 1.64, "error": 1.58, "ref_kb": 1070, "kb": 27, "ratio": 40, "pq_ratio": 32,
                 "layers": {"fc1": (0.08, 6, 4.4, 3.7), "fc2": (0.09, 6, 4.4, 4.3), "fc3": (0.26, 6, 4.3, 3.2)}},
    "lenet5-caffe": {"ref_error": 0.80, "error": 0.74, "ref_kb": 1720, "kb": 44, "ratio": 39, "pq_ratio": 33,
                     "layers": {"conv1": (0.66, 8, 7.2, 1.5), "conv2": (0.12, 8, 7.2, 3.9),
                                "fc1": (0.08, 5, 4.5, 4.5), "fc2": (0.19, 5, 5.2, 3.7)}},
}
# Ours: 5 bits for every fully connected layer — the paper's width for LeNet-5's (Table 3) — and 8 for
# the convolutions; the paper's Table 2 gives LeNet-300-100 6 bits (its bytes are printed beside ours).
WEIGHT_BITS = {"lenet300": {"fc1": 5, "fc2": 5, "fc3": 5},
               "lenet5-caffe": {"conv1": 8, "conv2": 8, "fc1": 5, "fc2": 5}}
INDEX_BITS = 5          # the paper's LeNet tables: 5-bit relative indices for every layer


def config(quick: bool) -> dict:
    """Budgets of a full MNIST run, or of the smoke run on digits."""
    if quick:
        return {"dataset": "digits", "models": ("lenet300",), "prune_epochs": {"lenet300": 1},
                "sparsity": 0.92, "share_epochs": 1, "share_lr": 1e-4}
    return {"dataset": "mnist", "models": MODELS, "prune_epochs": {"lenet300": 20, "lenet5-caffe": 12},
            "sparsity": 0.92, "share_epochs": 3, "share_lr": 1e-4}


# ----------------------------------------------------------------------------------------------
# Stage 1: pruning with retraining (chapter 10's loop)
# ----------------------------------------------------------------------------------------------

def pruned_path(name: str, cfg: dict) -> Path:
    return data.cache_dir() / "deep_compression" / f"{name}-{cfg['dataset']}-pruned{cfg['prune_epochs'][name]}.pt"


def prune_stage(name: str, cfg: dict, progress: bool, folder: Path | None = None):
    """The zoo checkpoint pruned to ``cfg['sparsity']`` during ``prune_epochs`` epochs of retraining
    (cached as a checkpoint; ``folder`` overrides the cache folder, e.g. a temporary one)."""
    path = pruned_path(name, cfg) if folder is None else folder / pruned_path(name, cfg).name
    if path.exists():
        return zoo.load_checkpoint(path), json.loads(path.with_suffix(".json").read_text())
    train_set = data.load(cfg["dataset"], "train")
    model = zoo.pretrained(name, cfg["dataset"], train_if_missing=cfg["dataset"] == "digits", progress=progress)
    start, epochs = time.perf_counter(), cfg["prune_epochs"][name]
    total = prune.training_steps(train_set, epochs, 64)
    schedule = prune.AGPSchedule(cfg["sparsity"], end=max(1, int(0.6 * total)), frequency=max(1, total // 100))
    prune.prune_on_schedule(model, train_set, schedule, epochs=epochs, lr=5e-4, weight_decay=0.05,
                            lr_schedule="cosine", seed=0, progress=progress)
    prune.remove_all(model)                                   # pruning made permanent: plain zeros
    info = {"epochs": epochs, "seconds": time.perf_counter() - start,
            "layers": {k: 1 - v for k, v in prune.sparsity(model)["layers"].items()}}
    zoo.save_checkpoint(model, path, dataset=cfg["dataset"], stage="pruned")
    _write_json(path.with_suffix(".json"), info)
    return model.eval(), info


def _write_json(path: Path, payload: dict) -> None:
    """``payload`` as JSON at ``path``, atomically."""
    with atomic_write(path, "w") as f:
        json.dump(payload, f, indent=1)


# ----------------------------------------------------------------------------------------------
# Stage 2: trained quantization (k-means weight sharing, centroids fine-tuned)
# ----------------------------------------------------------------------------------------------

def share_stage(name: str, pruned, cfg: dict, progress: bool):
    """k-means codebooks per layer (``WEIGHT_BITS``, linear initialisation, pruned zeros kept at an
    exact 0 entry), then the centroids fine-tuned on the training set."""
    shared = codebook.apply_weight_sharing(pruned, WEIGHT_BITS[name], init="linear", keep_zeros=True)
    start = time.perf_counter()
    history = codebook.finetune_codebooks(shared, data.load(cfg["dataset"], "train"), epochs=cfg["share_epochs"],
                                          lr=cfg["share_lr"], seed=0)
    return shared, {"loss": history, "seconds": time.perf_counter() - start}


def half_floats(shared):
    """A copy of ``shared`` whose centroids and biases are rounded to float16 values (still float32
    tensors: the file stores each tensor in the narrowest float type that holds it exactly, so these
    take 16 bits). The pruned zeros stay exact zeros."""
    out = copy.deepcopy(shared)
    with torch.no_grad():
        for m in out.modules():
            if isinstance(m, codebook.WeightSharing):
                for p in (m.codebook, m.bias):
                    if p is not None:
                        p.copy_(p.half().float())
    return out


# ----------------------------------------------------------------------------------------------
# Stage 3: the file, loaded back and measured
# ----------------------------------------------------------------------------------------------

def layer_rows(report, model_name: str) -> list[dict]:
    """One row per layer, the paper's Table 2/3 columns, from the file's records of ``<layer>.indices``."""
    rows = []
    for r in report.tensors:
        if not r.name.endswith(".indices"):
            continue
        layer = r.name.removesuffix(".indices")
        weights = r.numel
        layer_bytes = sum(t.bytes for t in report.tensors if t.name.startswith(layer + "."))
        rows.append({"layer": layer, "weights": weights, "kept": r.nonzeros / weights,
                     "weight_bits": WEIGHT_BITS[model_name][layer], "weight_bits_huffman": r.value_bits / r.entries,
                     "gap_bits": r.gap_bits, "index_bits_huffman": r.index_bits / r.entries if r.index_bits else 0.0,
                     "entries": r.entries, "bytes": layer_bytes, "rate": layer_bytes / (4 * weights)})
    return rows


def stage_bytes(name: str, dense, pruned, shared, final_bytes: int, folder: Path) -> list[dict]:
    """File bytes after each stage, the paper's storage first (5-bit relative indices), then ours.

    Every row is a real file (``fileformat.save`` with the options named); the pruned model keeps its
    float32 non-zeros. Returns ``[{"stage", "bytes", "paper_ratio" (or None)}]``.
    """
    paper = PAPER[name]

    def saved(model, **options) -> int:
        return fileformat.save(model, folder / "stage.lkcm", meta={"model": name}, **options).bytes

    bits = "/".join(str(b) for b in WEIGHT_BITS[name].values())
    return [
        {"stage": "dense float32 (measure.serialize)", "bytes": measure.serialize(dense, "fp32", folder / "dense.bin"),
         "paper_ratio": 1},
        {"stage": "pruned: float32 non-zeros + 5-bit relative indices", "bytes": saved(pruned, gap_bits=INDEX_BITS,
                                                                                       huffman=False), "paper_ratio": None},
        {"stage": f"+ trained quantization ({bits}-bit codebook indices, fixed width)",
         "bytes": saved(shared, gap_bits=INDEX_BITS, huffman=False), "paper_ratio": paper["pq_ratio"]},
        {"stage": "+ Huffman coding of codebook indices and gaps (the paper's storage)",
         "bytes": saved(shared, gap_bits=INDEX_BITS), "paper_ratio": paper["ratio"]},
        {"stage": "+ relative-index width chosen per layer (2-10 bits)", "bytes": saved(shared, gap_bits="auto"),
         "paper_ratio": None},
        {"stage": "+ centroids and biases rounded to float16 (our file)", "bytes": final_bytes, "paper_ratio": None},
    ]


def paper_bits_bytes(name: str, pruned, folder: Path) -> int | None:
    """Bytes of our final storage with the paper's bit widths instead of ``WEIGHT_BITS`` (None when they
    are the same). Fine-tuning centroids changes no codebook index, so these bytes need no fine-tuning."""
    bits = {layer: b for layer, (_, b, _, _) in PAPER[name]["layers"].items()}
    if bits == WEIGHT_BITS[name]:
        return None
    shared = codebook.apply_weight_sharing(pruned, bits, init="linear", keep_zeros=True)
    return fileformat.save(half_floats(shared), folder / "paper-bits.lkcm", meta={"model": name}).bytes


def compress(name: str, cfg: dict, progress: bool, folder: Path, prune_folder: Path | None = None) -> dict:
    """All three stages for one model; the file ``folder/<name>.lkcm`` and a result dict (cached as JSON)."""
    test_set = data.load(cfg["dataset"], "test")
    dense = zoo.pretrained(name, cfg["dataset"], train_if_missing=cfg["dataset"] == "digits", progress=progress)
    pruned, prune_info = prune_stage(name, cfg, progress, prune_folder)
    shared, share_info = share_stage(name, pruned, cfg, progress)
    path = folder / f"{name}.lkcm"
    report = fileformat.save(half_floats(shared), path, gap_bits="auto", meta={"model": name})
    with tempfile.TemporaryDirectory() as tmp:
        stages = stage_bytes(name, dense, pruned, shared, report.bytes, Path(tmp))
        paper_bits = paper_bits_bytes(name, pruned, Path(tmp))
    loaded = fileformat.load(path)                               # the error is the file's, not the model's
    return {"model": name, "dataset": cfg["dataset"], "dense_bytes": stages[0]["bytes"], "file_bytes": report.bytes,
            "file_bytes_5bit_gaps": stages[3]["bytes"], "file_bytes_paper_bits": paper_bits, "stages": stages,
            "weight_bits": WEIGHT_BITS[name], "layers": layer_rows(report, name),
            "overhead_bytes": report.bytes - sum(r.bytes for r in report.tensors),
            "dense_correct": train.correct(dense, test_set).tolist(),
            "pruned_correct": train.correct(pruned, test_set).tolist(),
            "shared_correct": train.correct(shared, test_set).tolist(),
            "compressed_correct": train.correct(loaded, test_set).tolist(),
            "prune": prune_info, "share": share_info, "config": budget(name, cfg)}


def budget(name: str, cfg: dict) -> dict:
    """The settings one model's result depends on (a cached result with other settings is recomputed)."""
    return {"dataset": cfg["dataset"], "prune_epochs": cfg["prune_epochs"][name], "sparsity": cfg["sparsity"],
            "share_epochs": cfg["share_epochs"], "share_lr": cfg["share_lr"], "weight_bits": WEIGHT_BITS[name]}


def stale(cached: dict | None, wanted: dict, explicit: bool) -> bool:
    """Whether a cached result must be recomputed: other settings, or another budget asked for
    explicitly (a reduced run stays the answer of a plain run until a budget is asked for)."""
    if not cached:
        return True
    keys = set(wanted) if explicit else set(wanted) - {"prune_epochs", "share_epochs"}
    return any(cached.get(k) != wanted[k] for k in keys)


def reduced(r: dict) -> str:
    """'' for a result of the full budget, else what was cut (stated in its rows)."""
    full = config(False)
    cuts = [f"{r['config'][k]} of {want} {what} epochs" for k, want, what in
            (("prune_epochs", full["prune_epochs"][r["model"]], "pruning"), ("share_epochs", full["share_epochs"],
                                                                             "centroid fine-tuning"))
            if r["config"][k] != want]
    return "; reduced budget: " + ", ".join(cuts) if cuts else ""


def error_pct(correct) -> float:
    return 100.0 * (1.0 - float(np.mean(correct)))


def rows_for(results: list[dict]) -> list[Row]:
    rows = []
    for r in results:
        paper = PAPER[r["model"]]
        base, err = error_pct(r["dense_correct"]), error_pct(r["compressed_correct"])
        ratio = r["dense_bytes"] / r["file_bytes"]
        diff = stats.paired_difference(r["dense_correct"], r["compressed_correct"])
        interval = stats.accuracy_interval(np.asarray(r["compressed_correct"], dtype=bool))
        passed = ratio >= paper["ratio"] and err <= base + 0.1
        layers = "; ".join(f"{x['layer']} {100 * x['kept']:.1f} % kept, {x['weight_bits']}-bit → "
                           f"{x['weight_bits_huffman']:.1f} bits/entry, " + (f"gaps {x['gap_bits']} bits → {x['index_bits_huffman']:.1f}"
                           if x["gap_bits"] else "stored dense") for x in r["layers"])
        stages = "; ".join(f"{st['stage']} {st['bytes']:,} B ({r['dense_bytes'] / st['bytes']:.1f}×)"
                           for st in r["stages"][1:])
        paper_bits = (f"; with the paper's bit widths the file is {r['file_bytes_paper_bits']:,} B "
                      f"({r['dense_bytes'] / r['file_bytes_paper_bits']:.1f}×)" if r.get("file_bytes_paper_bits") else "")
        rows.append(Row("Deep Compression Table 1", r["model"], "file bytes, test error",
                        f"{r['dense_bytes'] / 1000:.0f} KB → {r['file_bytes'] / 1000:.1f} KB ({ratio:.1f}×) at "
                        f"{err:.2f} % error [{100 - 100 * interval.high:.2f}, {100 - 100 * interval.low:.2f}] "
                        f"(our dense baseline {base:.2f} %){reduced(r)}",
                        f"{paper['ref_kb']} KB → {paper['kb']} KB ({paper['ratio']}×) at {paper['error']:.2f} % "
                        f"(reference {paper['ref_error']:.2f} %)",
                        f"≥ {paper['ratio']}× in file bytes and error ≤ our baseline + 0.1 pt", bool(passed), 1,
                        r["prune"]["seconds"] + r["share"]["seconds"], SOURCE,
                        f"compressed − dense accuracy {diff.signed_points()} (paired, {diff.n:,} images); "
                        f"{stages}{paper_bits}; {layers}",
                        dataset=r["dataset"], extra={"ratio": ratio, "error": err, "baseline_error": base,
                                                     "file_bytes": r["file_bytes"], "dense_bytes": r["dense_bytes"],
                                                     "config": r["config"]}))
    return rows


def stage_table(results: list[dict]) -> str:
    """Bytes after each stage (each a real file), ratio and error beside the paper's ratio."""
    lines = [f"{'model':<13} {'stage':<70} {'bytes':>10} {'ratio':>7} {'paper':>6} {'error %':>16}"]
    for r in results:
        errors = {0: r["dense_correct"], 1: r["pruned_correct"], 2: r["shared_correct"], 5: r["compressed_correct"]}
        for i, st in enumerate(r["stages"]):
            paper = f"{st['paper_ratio']}×" if st["paper_ratio"] else "—"
            err = ""
            if i in errors:
                iv = stats.accuracy_interval(np.asarray(errors[i], dtype=bool))
                err = f"{error_pct(errors[i]):.2f} [{100 - 100 * iv.high:.2f}, {100 - 100 * iv.low:.2f}]"
            lines.append(f"{r['model']:<13} {st['stage']:<70} {st['bytes']:>10,} "
                         f"{r['dense_bytes'] / st['bytes']:>6.1f}× {paper:>6} {err:>16}")
        lines.append(f"{r['model']:<13} {'  of which header, architecture, checksum':<70} {r['overhead_bytes']:>10,}")
        if r.get("file_bytes_paper_bits"):
            lines.append(f"{r['model']:<13} {'  our storage with the paper bit widths (bytes only)':<70} "
                         f"{r['file_bytes_paper_bits']:>10,} {r['dense_bytes'] / r['file_bytes_paper_bits']:>6.1f}×")
    return "\n".join(lines)


def table(results: list[dict]) -> str:
    """The paper's Tables 2/3, ours beside theirs, one line per layer."""
    lines = [f"{'model':<13} {'layer':<6} {'weights':>8} {'kept % (paper)':>15} {'w bits (paper)':>14} "
             f"{'w bits H (paper)':>17} {'gap bits':>8} {'idx bits H (paper)':>19} {'rate %':>7}"]
    for r in results:
        for x in r["layers"]:
            kept, bits, wh, ih = PAPER[r["model"]]["layers"][x["layer"]]
            lines.append(f"{r['model']:<13} {x['layer']:<6} {x['weights']:>8,} {100 * x['kept']:>6.1f} ({100 * kept:>4.0f})  "
                         f"{x['weight_bits']:>6} ({bits})   {x['weight_bits_huffman']:>8.2f} ({wh:>4.1f})  "
                         f"{x['gap_bits'] or 'dense':>8} {x['index_bits_huffman']:>9.2f} ({ih:>4.1f})  {100 * x['rate']:>7.2f}")
    return "\n".join(lines)


def markdown(rows: list[Row]) -> str:
    head = ["model", "ours", "paper", "tolerance", "verdict"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lines.append(f"| {r.model} | {r.ours} | {r.paper} | {r.tolerance} | {'PASS' if r.passed else 'FAIL'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run on digits (seconds); records nothing")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=None)
    parser.add_argument("--stage", choices=("prune", "all"), default="all")
    parser.add_argument("--prune-epochs", type=int, default=None, action=AtLeastOne,
                        help="pruning epochs for every model run (default: the full budget, 20 for LeNet-300-100, "
                             "12 for LeNet-5); a reduced budget is stated in the rows")
    parser.add_argument("--share-epochs", type=int, default=None, action=AtLeastOne,
                        help="epochs of centroid fine-tuning (default: the full budget, 3)")
    add_threads(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = config(args.quick)
    names = args.models or cfg["models"]
    explicit = args.prune_epochs is not None or args.share_epochs is not None
    if args.prune_epochs is not None:
        cfg["prune_epochs"] = {**cfg["prune_epochs"], **{name: args.prune_epochs for name in names}}
    if args.share_epochs is not None:
        cfg["share_epochs"] = args.share_epochs
    if args.stage == "prune":
        for name in names:
            print(name, prune_stage(name, cfg, not args.quiet)[1], flush=True)
        return 0
    with tempfile.TemporaryDirectory(prefix="labkit-deep-compression-") as scratch:
        folder = Path(scratch) if args.quick else FOLDER
        folder.mkdir(parents=True, exist_ok=True)
        results = []
        for name in names:
            cached = folder / f"{name}.json"
            if not cached.exists() or stale(json.loads(cached.read_text()).get("config"), budget(name, cfg), explicit):
                _write_json(cached, compress(name, cfg, not args.quiet, folder, Path(scratch) if args.quick else None))
            results.append(json.loads(cached.read_text()))
    rows = rows_for(results)
    print(f"Deep Compression on {cfg['dataset']} ({'smoke run' if args.quick else 'full run'}):\n")
    print(markdown(rows))
    print("\nFile bytes after each stage (each a real file), ratio to the dense float32 file, the paper's ratio, "
          "test error with its 95 % interval\n")
    print(stage_table(results))
    print("\nPer layer, ours (paper): weights kept, bits per stored weight and per relative index after Huffman\n")
    print(table(results))
    for r in rows:
        print(f"- {r.model}: {r.note}")
    if not args.quick and set(names) == set(MODELS):
        print(f"\nrecorded to {record('deep_compression', rows)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
