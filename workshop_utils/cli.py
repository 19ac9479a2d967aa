"""Command line: ``python -m workshop_utils {download,run} ...``."""
from __future__ import annotations

import argparse
import sys

from . import download


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one sub-command per job."""
    parser = argparse.ArgumentParser(prog="python -m workshop_utils",
                                     description="Pneumonia chest X-ray workshop helpers.")
    sub = parser.add_subparsers(dest="command", required=True)
    download.add_download_arguments(sub.add_parser("download", help="download and verify the dataset"))
    from . import runner

    runner.add_run_arguments(sub.add_parser("run", help="run every lesson notebook in order"))
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = build_parser().parse_args(argv)
    if args.command == "download":
        return download.main_download(args)
    if args.command == "run":
        from . import runner

        return runner.main_run(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
