"""benchmarks/results.py and scorecard.py: rows written atomically, printed as one table with verdicts."""
import json

import pytest

import results
import scorecard


def row(**changes):
    base = dict(experiment="baseline", model="lenet300", metric="test error %", ours=1.59, paper=1.64,
                tolerance="accuracy >= 98.2%", passed=True, seeds=1, seconds=12.0, source="Han 2015")
    return results.Row(**{**base, **changes})


def test_record_writes_one_json_file_and_nothing_else(tmp_path):
    path = results.record("baselines", [row()], folder=tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["baselines.json"]
    payload = json.loads(path.read_text())
    assert payload["benchmark"] == "baselines" and payload["rows"][0]["ours"] == 1.59
    assert "cores" in payload["machine"]
    with pytest.raises(ValueError, match="rows"):
        results.record("empty", [], folder=tmp_path)


def test_scorecard_prints_every_row_and_fails_on_a_missed_target(tmp_path, capsys):
    results.record("a", [row(), row(model="lenet5-caffe", passed=None, paper=None)], folder=tmp_path)
    assert scorecard.main(["--folder", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| a | baseline | lenet300 | mnist | test error % | 1.59 | 1.64 |" in out and "PASS" in out
    assert "| info |" in out and "2 rows from 1 benchmarks" in out
    results.record("b", [row(ours=2.5, passed=False)], folder=tmp_path)
    assert scorecard.main(["--folder", str(tmp_path)]) == 1
    assert "1 rows miss their target: b/lenet300 (test error %)" in capsys.readouterr().out


def test_scorecard_of_the_committed_results_runs(capsys):
    code = scorecard.main(["--quick"])
    out = capsys.readouterr().out
    assert ("rows from" in out and code == ("miss their target" in out)) or "no results in" in out
