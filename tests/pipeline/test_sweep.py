"""Sweeps on a concurrent.futures executor: cached, resumable, finished results kept when it fails."""
from __future__ import annotations

import concurrent.futures as cf
import json

import numpy as np
import pytest

from labkit.pipeline import catalogue, sweep
from labkit.pipeline.sweep import SweepError, SweepPoint

POINTS = [SweepPoint("lenet300", (), "baseline", "fp32"),
          SweepPoint("lenet300", (("ptq", {"weight_bits": 4}),), "ptq", "PTQ W4")]


def test_local_process_pool_runs_and_caches(tmp_path):
    cache = tmp_path / "sweep.json"
    results = sweep.run_sweep(POINTS, cache, max_workers=2, dataset="digits", progress=False)
    assert [r["label"] for r in results] == ["fp32", "PTQ W4"]
    assert results[1]["bytes"] < results[0]["bytes"] / 5
    assert 0.5 < results[0]["accuracy"] <= 1 and results[0]["n"] == 359
    bits = sweep.unpack_correct(results[0]["correct"], results[0]["n"])
    assert bits.mean() == pytest.approx(results[0]["accuracy"])
    assert sweep.load_results(cache) == results

    class NoWork(cf.Executor):                      # everything is cached: the executor is never asked
        def submit(self, fn, *args, **kwargs):
            raise AssertionError("a cached point was computed again")

    assert sweep.run_sweep(POINTS, cache, executor=NoWork(), dataset="digits") == results


class BreaksAfterOne(cf.Executor):
    """Runs the first task in this process, then behaves like a pool whose workers died."""

    def __init__(self):
        self.calls = 0

    def submit(self, fn, *args, **kwargs):
        self.calls += 1
        future = cf.Future()
        if self.calls == 1:
            future.set_result(fn(*args, **kwargs))
        else:
            future.set_exception(cf.process.BrokenProcessPool("a worker process died"))
        return future


def test_an_executor_failing_mid_sweep_keeps_the_finished_results(tmp_path):
    cache = tmp_path / "sweep.json"
    with pytest.raises(SweepError, match="1 of 2 sweep points failed") as info:
        sweep.run_sweep(POINTS, cache, executor=BreaksAfterOne(), dataset="digits", progress=False)
    assert "BrokenProcessPool" in str(info.value) and str(cache) in str(info.value)
    assert [r["label"] for r in info.value.results] == ["fp32"]
    assert [r["label"] for r in sweep.load_results(cache)] == ["fp32"]        # on disk, before the failure
    assert list(info.value.failures) == ["PTQ W4"]


def test_a_failing_point_is_named_and_the_others_kept(tmp_path):
    cache = tmp_path / "sweep.json"
    with cf.ThreadPoolExecutor(1) as pool:
        with pytest.raises(SweepError, match="no such model: ValueError: name must be one of") as info:
            sweep.run_sweep([POINTS[0], SweepPoint("nonet", (), "baseline", "no such model")], cache, executor=pool,
                            dataset="digits", progress=False)
    assert [r["label"] for r in info.value.results] == ["fp32"]
    assert list(info.value.failures) == ["no such model"]


def test_bad_arguments_and_a_damaged_cache(tmp_path):
    with pytest.raises(TypeError, match="SweepPoint"):
        sweep.run_sweep([("lenet300", ())], tmp_path / "c.json")
    with pytest.raises(TypeError, match="concurrent.futures.Executor"):
        sweep.run_sweep(POINTS, tmp_path / "c.json", executor=object())
    (tmp_path / "c.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a sweep cache"):
        sweep.load_results(tmp_path / "c.json")
    (tmp_path / "c.json").write_text(json.dumps({"version": 99, "results": []}))
    with pytest.raises(ValueError, match="version"):
        sweep.load_results(tmp_path / "c.json")


def test_the_catalogue_covers_every_technique_and_its_points_compose():
    points = catalogue.default_points()
    assert {p.family for p in points} == set(catalogue.FAMILIES)
    assert len({p.key() for p in points}) == len(points)                       # no point twice
    from labkit.pipeline.compose import Pipeline
    for p in points:
        Pipeline.from_spec(p.spec)                                              # every order composes


def test_pack_correct_round_trip():
    bits = np.random.default_rng(0).random(10_000) < 0.98
    text = sweep.pack_correct(bits)
    assert len(text) < 1700 and (sweep.unpack_correct(text, 10_000) == bits).all()
