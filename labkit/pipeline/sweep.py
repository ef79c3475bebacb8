"""A sweep: many pipelines on many zoo models, run on any ``concurrent.futures.Executor``, cached.

``run_sweep(points, cache)`` submits every point that the cache file does not hold yet to an executor
— a local process pool by default — and writes each finished result into the cache as soon as it
arrives (atomically: the whole file to a temporary file, then ``os.replace``). If a point fails, or the
executor itself breaks half-way (a worker killed, a cluster gone), the finished results stay in the
cache and ``SweepError`` says which points are missing and why; running the sweep again computes only
those. A result is plain JSON: the point, ``PipelineResult.summary()`` and the per-image test results
packed into bits (so two pipelines can be compared on the *same* images, with a paired interval).

**Any executor.** The sweep only calls ``executor.submit(fn, *args)`` and waits on the futures, so every
``concurrent.futures.Executor`` works — the functions and arguments it sends are plain and picklable:

* local (default): ``ProcessPoolExecutor(max_workers, mp_context=spawn)``, one thread per worker;
* Dask, when a course outgrows one machine: ``from dask.distributed import Client``;
  ``run_sweep(points, cache, executor=Client("tcp://scheduler:8786").get_executor())`` — Dask's
  ``Client.get_executor()`` returns an executor compatible with ``concurrent.futures``;
* Ray: a Ray ``ObjectRef`` turns into a ``concurrent.futures.Future`` with ``ref.future()``, so a
  four-line adapter is an executor::

      class RayExecutor(concurrent.futures.Executor):
          def submit(self, fn, /, *args, **kwargs):
              return ray.remote(num_cpus=1)(fn).remote(*args, **kwargs).future()

  (``ray.init(address="auto")`` first). Every worker needs labkit installed and the dataset on disk.

Explained in notebooks/14_pipeline_tradeoffs_export.ipynb
"""
from __future__ import annotations

import base64
import concurrent.futures as cf
import hashlib
import json
import multiprocessing
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from labkit.files import atomic_write
from labkit.validate import require_int

__all__ = ["SweepPoint", "SweepError", "run_point", "run_sweep", "load_results", "pack_correct",
           "unpack_correct", "CACHE_VERSION"]

CACHE_VERSION = 1


@dataclass(frozen=True)
class SweepPoint:
    """One pipeline on one zoo model: ``model`` (a ``labkit.models`` name), ``spec`` (the plain-data steps
    of ``Pipeline.spec()``), ``family`` (the technique, for the explorer's colours and filters) and a
    short ``label``. ``key()`` identifies it in the cache (model + spec, not the label)."""

    model: str
    spec: tuple
    family: str
    label: str

    def key(self) -> str:
        text = json.dumps([self.model, _plain(self.spec)], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def as_dict(self) -> dict:
        return {"model": self.model, "spec": _plain(self.spec), "family": self.family, "label": self.label}


def _plain(spec) -> list:
    return json.loads(json.dumps(spec))


class SweepError(RuntimeError):
    """Some points of a sweep failed; ``results`` holds the finished ones (also in the cache) and
    ``failures`` ``{label: error text}`` the others."""

    def __init__(self, message: str, results: list, failures: dict):
        super().__init__(message)
        self.results, self.failures = results, failures


def pack_correct(correct) -> str:
    """Per-image bools ``[N]`` → base64 of ``np.packbits`` (1,250 bytes for 10,000 images)."""
    bits = np.asarray(correct.cpu().numpy() if isinstance(correct, torch.Tensor) else correct, dtype=bool)
    return base64.b64encode(np.packbits(bits).tobytes()).decode("ascii")


def unpack_correct(text: str, n: int) -> np.ndarray:
    """Inverse of ``pack_correct``: bool ``[n]``."""
    return np.unpackbits(np.frombuffer(base64.b64decode(text), dtype=np.uint8))[:n].astype(bool)


def run_point(point: dict, dataset: str = "mnist", seed: int = 0, threads: int = 1) -> dict:
    """Run one point (``SweepPoint.as_dict()``) in this process and return its plain-data result.

    This is the function the executor runs: it imports what it needs, sets the thread count, builds
    the pipeline, runs it on ``zoo.pretrained(point["model"], dataset)`` and measures it. For the
    lightweight network and the baselines the spec may be empty (the zoo model as it is).
    Explained in notebooks/14_pipeline_tradeoffs_export.ipynb
    """
    from labkit import zoo
    from labkit.pipeline.compose import Pipeline

    torch.set_num_threads(require_int("threads", threads, 1))
    start = time.perf_counter()
    result = Pipeline.from_spec(point["spec"]).run(zoo.pretrained(point["model"], dataset, progress=False),
                                                  dataset=dataset, seed=seed)
    return {**result.summary(), **point, "dataset": dataset, "seed": seed, "threads": threads,
            "correct": pack_correct(result.correct), "wall_seconds": time.perf_counter() - start}


def load_results(path) -> list[dict]:
    """The results stored in a cache file (``[]`` if it does not exist). ``ValueError`` naming the file
    if it is not a sweep cache of this version."""
    path = Path(path)
    if not path.exists():
        return []
    try:
        payload = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not a sweep cache (invalid JSON: {error})") from None
    if not isinstance(payload, dict) or payload.get("version") != CACHE_VERSION or "results" not in payload:
        raise ValueError(f"{path} is not a labkit sweep cache of version {CACHE_VERSION}")
    return payload["results"]


def _save(path: Path, results: list[dict]) -> None:
    with atomic_write(path, "w") as f:
        json.dump({"version": CACHE_VERSION, "results": results}, f, separators=(",", ":"))


def _key(record: dict) -> str:
    return SweepPoint(record["model"], record["spec"], "", "").key()


def run_sweep(points, cache, *, executor: cf.Executor | None = None, max_workers: int = 1,
              dataset: str = "mnist", seed: int = 0, threads: int = 1, progress: bool = True) -> list[dict]:
    """Results of every ``SweepPoint`` in ``points``, computing only those missing from ``cache``.

    Missing points go to ``executor`` (default: a spawn-based ``ProcessPoolExecutor`` with
    ``max_workers`` workers, shut down at the end); each finished result is added to ``cache`` at once.
    Returns the results in the order of ``points``. Raises ``SweepError`` (finished results kept in the
    cache and in ``error.results``) when a point or the executor fails.
    Explained in notebooks/14_pipeline_tradeoffs_export.ipynb
    """
    points = list(points)
    if not all(isinstance(p, SweepPoint) for p in points):
        raise TypeError("points must be SweepPoint objects")
    if executor is not None and not isinstance(executor, cf.Executor):
        raise TypeError(f"executor must be a concurrent.futures.Executor, got {type(executor).__name__}")
    cache = Path(cache)
    done = {_key(r): r for r in load_results(cache)}
    todo = [p for p in points if p.key() not in done]
    failures = {}
    if todo:
        own = executor is None
        pool = cf.ProcessPoolExecutor(require_int("max_workers", max_workers, 1),
                                      mp_context=multiprocessing.get_context("spawn")) if own else executor
        try:
            failures = _collect(pool, todo, done, cache, dataset, seed, threads, progress)
        finally:
            if own:
                pool.shutdown(wait=True, cancel_futures=True)
    results = [done[p.key()] for p in points if p.key() in done]
    if failures:
        lines = "; ".join(f"{label}: {text}" for label, text in failures.items())
        raise SweepError(f"{len(failures)} of {len(points)} sweep points failed ({lines}); the {len(results)} "
                         f"finished results are kept in {cache} — run the sweep again to compute the rest",
                         results, failures)
    return results


def _collect(pool, todo, done, cache, dataset, seed, threads, progress) -> dict:
    """Submit ``todo``, store each result as it arrives; return ``{label: error}`` of the failed points."""
    failures, futures = {}, {}
    for point in todo:
        try:
            futures[pool.submit(run_point, point.as_dict(), dataset, seed, threads)] = point
        except Exception as error:                   # a broken or shut-down executor refuses new work
            failures[point.label] = f"{type(error).__name__}: {error}"
    for future in cf.as_completed(futures):
        point = futures[future]
        try:
            record = future.result()
        except Exception as error:                   # the point failed, or the executor broke under it
            failures[point.label] = f"{type(error).__name__}: {error}"
            continue
        done[point.key()] = record
        _save(cache, list(done.values()))
        if progress:
            print(f"  {point.model:<12} {point.label:<40} {100 * record['accuracy']:6.2f} %  "
                  f"{record['bytes']:>10,} B  {record['wall_seconds']:6.1f} s", flush=True)
    return failures


