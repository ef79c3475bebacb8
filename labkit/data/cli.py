"""Command line: ``python -m labkit.data download mnist fashion-mnist``."""

from __future__ import annotations

import argparse
import sys

from labkit.data.catalogue import DATASETS
from labkit.data.errors import ChecksumError, DownloadError
from labkit.data.fetch import download


def main(argv: list[str] | None = None) -> int:
    """``python -m labkit.data download NAME...``: fetch datasets, print where they are."""
    from labkit import data as package

    parser = argparse.ArgumentParser(prog="python -m labkit.data", description=package.__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    fetch = commands.add_parser("download", help="fetch original files, verify them, store them in the cache")
    fetch.add_argument("names", nargs="+", choices=DATASETS, metavar="NAME", help=", ".join(DATASETS))
    fetch.add_argument("--root", default=None, help="folder to store into (default: the cache folder)")
    fetch.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    for name in args.names:
        try:
            folder = download(name, root=args.root, progress=not args.quiet)
        except (ChecksumError, DownloadError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        print(f"{name}: {folder}")
    return 0
