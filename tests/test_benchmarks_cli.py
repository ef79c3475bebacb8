"""benchmarks/cli.py: the one home of the --threads (and other count) check the benchmark scripts share."""
import argparse
import pathlib
import sys

import pytest

BENCHMARKS = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
import cli  # noqa: E402  (benchmarks/cli.py)


def parser():
    p = argparse.ArgumentParser(prog="bench")
    cli.add_threads(p)
    p.add_argument("--epochs", type=int, default=None, action=cli.AtLeastOne)
    return p


def test_counts_at_least_one_pass_and_defaults_are_kept():
    assert parser().parse_args([]).threads == 1 and parser().parse_args([]).epochs is None
    assert parser().parse_args(["--threads", "3", "--epochs", "1"]).threads == 3


@pytest.mark.parametrize("flag", ["--threads", "--epochs"])
def test_a_count_below_one_stops_with_the_flags_name(flag, capsys):
    with pytest.raises(SystemExit) as info:
        parser().parse_args([flag, "0"])
    assert info.value.code == 2 and f"{flag} must be an integer >= 1, got 0" in capsys.readouterr().err


def test_no_benchmark_writes_the_threads_check_out_by_hand():
    for script in BENCHMARKS.glob("*.py"):
        if script.name != "cli.py":
            assert "threads must be an integer" not in script.read_text(), script.name
