"""TradeoffExplorer: the Pareto front of what is shown, filters, axes, the learner's runs added live."""
from __future__ import annotations

import pytest

from labkit.pipeline import report
from labkit.widgets import TradeoffExplorer


def _r(label, model, family, acc, size, latency=1.0, macs=1000):
    return {"label": label, "model": model, "family": family, "accuracy": acc, "accuracy_low": acc - 0.002,
            "accuracy_high": acc + 0.002, "bytes": size, "latency_ms": latency, "macs": macs,
            "spec": [["prune", {"amount": 0.9}]], "runtime": "torch fp32"}


RECORDS = [_r("fp32", "lenet300", "baseline", 0.984, 1_066_000, 0.40, 266_200),
           _r("PTQ W8", "lenet300", "ptq", 0.983, 270_000, 30.0, 266_200),
           _r("PTQ W4", "lenet300", "ptq", 0.975, 140_000, 30.0, 266_200),
           _r("prune 90%", "lenet300", "unstructured", 0.970, 122_000, 0.4, 266_200),   # dominated by PTQ W4? no: smaller
           _r("k-means 2", "lenet300", "kmeans", 0.960, 60_000, 0.5, 266_200),
           _r("bad", "lenet300", "ptq", 0.900, 500_000, 30.0, 266_200),                    # dominated
           _r("fp32", "lenet5", "baseline", 0.991, 247_000, 2.0, 416_000)]


def test_pareto_front_by_hand():
    front = report.pareto_front(RECORDS[:6])
    assert [RECORDS[i]["label"] for i in front] == ["k-means 2", "prune 90%", "PTQ W4", "PTQ W8", "fp32"]
    assert report.pareto_front([{"bytes": 1, "accuracy": 0.5}, {"bytes": 1, "accuracy": 0.6}]) == [1]
    assert report.pareto_front([{"bytes": None, "accuracy": 0.5}]) == []
    with pytest.raises(TypeError, match="points"):
        report.pareto_front("bytes")


def test_explorer_shows_every_family_with_its_front_and_filters():
    ex = TradeoffExplorer(RECORDS)
    assert ex.stats["shown"] == 7
    names = [t.name for t in ex.figure.data]
    assert names[-1] == "Pareto front" and "post-training quantization" in names and "your runs" in names
    ptq = next(t for t in ex.figure.data if t.name == "post-training quantization")
    assert list(ptq.y) == pytest.approx([98.3, 97.5, 90.0]) and isinstance(ptq.x, tuple)
    assert list(ptq.error_y.array) == pytest.approx([0.2, 0.2, 0.2])
    assert ex.figure.layout.xaxis.type == "log" and "bytes" in ex.figure.layout.xaxis.title.text
    ex.set(model="lenet300")
    assert ex.stats["front"] == ["k-means 2", "prune 90%", "PTQ W4", "PTQ W8", "fp32"]
    ex.set(front=True)
    assert ex.stats["shown"] == 5 and not next(t for t in ex.figure.data if t.name.startswith("post")).y[-1] == 90.0
    ex.set(front=False, x="latency_ms")
    assert ex.stats["front"] == ["fp32"]                                      # fastest and most accurate
    assert "latency" in ex.figure.layout.title.text
    ex.set(family="ptq", x="bytes")
    assert ex.stats["shown"] == 3 and ex.stats["front"] == ["PTQ W4", "PTQ W8"]
    assert "PTQ W4" in ex.readout.value and "Pareto front" in ex.readout.value
    hidden = next(t for t in ex.figure.data if t.name == "unstructured pruning")
    assert hidden.visible is not False and list(hidden.x) == []            # empty, never hidden


def test_a_learners_run_is_added_live():
    ex = TradeoffExplorer(RECORDS, model="lenet300")
    before = ex.update_count
    ex.add_run(_r("my 2-bit", "lenet300", "ptq", 0.99, 50_000))
    assert ex.update_count == before + 1 and ex.stats["user_runs"] == 1
    assert ex.stats["front"] == ["my 2-bit"]                                   # it dominates everything
    mine = next(t for t in ex.figure.data if t.name == "your runs")
    assert mine.visible is not False and list(mine.x) == [50_000.0]


def test_bad_input():
    with pytest.raises(TypeError, match="records"):
        TradeoffExplorer("results.json")
    with pytest.raises(ValueError, match=r"lacks \['bytes'\]"):
        TradeoffExplorer([{k: v for k, v in RECORDS[0].items() if k != "bytes"}])
    with pytest.raises(ValueError, match="family"):
        TradeoffExplorer([{**RECORDS[0], "family": "magic"}])
    with pytest.raises(ValueError, match="x must be one of"):
        TradeoffExplorer(RECORDS, x="flops")
    with pytest.raises(TypeError, match="PipelineResult"):
        report.record({"accuracy": 1}, "x", "lenet300")


def test_setting_computes_the_view_without_drawing():
    ex = TradeoffExplorer(RECORDS)
    before = ex.update_count
    view = ex.setting(model="lenet300", family="ptq")
    assert [r["label"] for r in view["front"]] == ["PTQ W4", "PTQ W8"] and len(view["points"]) == 3
    assert len(ex.setting(model="lenet300", front=True)["shown"]) == 5
    assert ex.update_count == before and ex.stats["shown"] == 7               # the displayed view is untouched
    with pytest.raises(ValueError, match="model must be one of"):
        ex.setting(model="alexnet")
