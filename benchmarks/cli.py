"""Command-line options the benchmark scripts share, checked as they are read.

``add_threads(parser)`` adds ``--threads N``; ``AtLeastOne`` is the ``argparse`` action behind it
(any count option that must be >= 1 uses it: epochs, budgets). A value below 1 stops the script with
``parser.error`` (exit status 2) and ``--threads must be an integer >= 1, got 0``, before any work.
"""
from __future__ import annotations

import argparse


class AtLeastOne(argparse.Action):
    """Store an integer option, or ``parser.error`` naming it when it is below 1."""

    def __call__(self, parser, namespace, value, option_string=None):
        if value < 1:
            parser.error(f"{option_string} must be an integer >= 1, got {value}")
        setattr(namespace, self.dest, value)


def add_threads(parser: argparse.ArgumentParser, default: int | None = 1,
                help: str = "torch threads (default 1)") -> None:
    """``--threads N``: an integer >= 1 (``default`` when absent; None leaves torch's own setting)."""
    parser.add_argument("--threads", type=int, default=default, action=AtLeastOne, help=help)
